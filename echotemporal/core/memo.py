"""Answers remembered by what decides them: a bounded, thread-safe memory of arrays.

A correction asks the same deterministic questions more than once (the readings of a near-total
failure share frames; a crop corrected again on the whole image repeats its searches). Such answers
are kept under a key naming everything they depend on, the least recently asked dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np

__all__ = ["ArrayMemo"]


class ArrayMemo:
    """Up to ``size`` arrays (or None answers) by key, the least recently asked dropped first.

    Callers get copies: what they do with an answer does not change what is remembered. Safe to use
    from several threads (a question asked by two at once is answered twice, the same way).
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._known: OrderedDict[Hashable, np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def answer(self, key: Hashable, compute: Callable[[], np.ndarray | None]) -> np.ndarray | None:
        """The answer remembered under ``key``, else ``compute()``'s, remembered."""
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                known = self._known[key]
                return None if known is None else known.copy()
        value = compute()
        with self._lock:
            self._known[key] = None if value is None else value.copy()
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._known.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)
