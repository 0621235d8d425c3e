"""Errors raised by the replay loaders and server."""

from __future__ import annotations

from pathlib import Path


class ReplayDataError(Exception):
    """A recorded file cannot be used for replay.

    The message names the file and what is wrong with it (``"BTC.feather: missing column(s)
    'close'"``), so it can be shown to the user as is.

    Attributes:
        path: The offending file (or folder).
        reason: What is wrong, without the path.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
