"""Known answers for the bounded memory of arrays (core.memo)."""

from __future__ import annotations

import numpy as np

from echotemporal.core.memo import ArrayMemo


def test_answers_are_remembered_copied_and_the_least_recently_asked_dropped() -> None:
    asked = []
    memo = ArrayMemo(2)

    def compute(key: str):  # noqa: ANN202
        return lambda: asked.append(key) or (None if key == "none" else np.array([len(asked)]))

    first = memo.answer("a", compute("a"))
    first[0] = 99  # the caller's copy
    assert memo.answer("a", compute("a")).tolist() == [1] and asked == ["a"]
    assert memo.answer("none", compute("none")) is None and memo.answer("none", compute("none")) is None
    assert asked == ["a", "none"]  # a None answer is remembered too
    memo.answer("a", compute("a"))  # "a" asked last: "none" is now the least recently asked
    memo.answer("b", compute("b"))
    assert len(memo) == 2 and asked == ["a", "none", "b"]
    memo.answer("a", compute("a"))
    assert asked == ["a", "none", "b"]  # kept
    memo.answer("none", compute("none"))
    assert asked == ["a", "none", "b", "none"]  # dropped, asked again
    memo.clear()
    assert len(memo) == 0
    memo.answer("a", compute("a"))
    assert asked[-1] == "a"
