"""File I/O: label-sequence files (NIfTI, MetaImage), CAMUS ``Info_*.cfg`` files, CAMUS folder discovery.

The only SimpleITK user for sequences (DESIGN.md §1-2). One concept per module:

- :mod:`~echotemporal.io.sequence` read/write a ``(T, H, W)`` label map with its geometry;
- :mod:`~echotemporal.io.integrity` truncated/corrupt file detection before SimpleITK reads;
- :mod:`~echotemporal.io.info_cfg` CAMUS ``Info_{2CH,4CH}.cfg`` parse/write;
- :mod:`~echotemporal.io.camus` CAMUS tree discovery;
- :mod:`~echotemporal.io.atomic` the one atomic-write helper every writer uses.
"""

from __future__ import annotations

from echotemporal.io import camus as _camus
from echotemporal.io import info_cfg as _info_cfg
from echotemporal.io import sequence as _sequence
from echotemporal.io.camus import CamusCase, discover_camus
from echotemporal.io.info_cfg import InfoCfg, read_info_cfg, write_info_cfg
from echotemporal.io.sequence import (
    SEQUENCE_SUFFIXES,
    ImageGeometry,
    LabelSequence,
    frame_time_ms_from_header,
    geometry_from_spacing,
    read_sequence,
    write_sequence,
)

# The public names of the three user-facing modules (the same as before the split into a package);
# ``atomic`` and ``integrity`` are internal helpers, importable from their modules. The ``+=`` form is
# the one type checkers follow.
__all__: list[str] = []
__all__ += _sequence.__all__
__all__ += _info_cfg.__all__
__all__ += _camus.__all__
