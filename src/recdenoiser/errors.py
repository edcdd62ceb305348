"""Exceptions for mistakes a user can fix.

The CLI prints these as one line (no traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class RecDenoiserError(Exception):
    """Base class for user-facing errors: bad input, bad configuration, bad requests."""


class ConfigError(RecDenoiserError):
    """An invalid configuration key or value."""


class TrainingError(RecDenoiserError):
    """Training cannot go on: the loss became NaN or infinite (settings too large)."""


class DataError(RecDenoiserError):
    """A data file or table that cannot be read or processed.

    ``path`` and ``line`` (1-based) say where, when known; they are part of the message.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class UnknownIdError(RecDenoiserError):
    """A raw user or item id that the dataset or checkpoint does not know."""
