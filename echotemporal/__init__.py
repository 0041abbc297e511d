"""echotemporal: temporally and anatomically consistent echocardiography segmentations.

Method: Painchaud et al., "Echocardiography Segmentation With Enforced Temporal Consistency",
IEEE TMI 2022. The top-level package imports no torch, so the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

from echotemporal.core.labels import Label

__version__ = "0.1.0"

__all__ = ["Label", "__version__"]
