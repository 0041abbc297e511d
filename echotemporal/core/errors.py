"""Exceptions raised by echotemporal; the CLI turns them into one-line messages."""

from __future__ import annotations

__all__ = [
    "EchoTemporalError",
    "InvalidLabelsError",
    "InputFileError",
    "OutputExistsError",
    "ConfigError",
    "WeightsError",
]


class EchoTemporalError(Exception):
    """Base class: an error whose message names the culprit and the fix."""


class InvalidLabelsError(EchoTemporalError, ValueError):
    """A label map holds values that are not CAMUS labels."""


class InputFileError(EchoTemporalError, OSError):
    """An input file is missing, unreadable, or of an unsupported shape/format."""


class OutputExistsError(EchoTemporalError, FileExistsError):
    """An output file exists and ``overwrite`` was not requested."""


class ConfigError(EchoTemporalError, ValueError):
    """A configuration file or value is invalid."""


class WeightsError(EchoTemporalError, ValueError):
    """Model weights are missing, tampered with, or incompatible."""
