"""The REST cooldown on disk, so a 429/418 halt survives a restart.

Binance bans an IP that keeps sending after a 429 (HTTP 418, 2 minutes to 3 days, longer for
repeat offenders; FEEDS.md §1.7, §4 item 30). While banned the app looks broken, so users
restart it; a fresh process that forgot the ban sends at once and extends it. The
:class:`~feeds.ratelimit.WeightBudget` therefore records the wall-clock end of every cooldown
it starts in a small JSON file (``<data_dir>/rest_cooldown.json``) and reads it back when it
is created.

The file holds wall-clock time (ms UTC): a monotonic clock does not carry across processes.
Only the live runner passes a path; replays and tests pass none and never touch the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import msgspec

logger = logging.getLogger(__name__)

COOLDOWN_STATE_FILE = "rest_cooldown.json"
"""File name of the state file inside the app's data directory."""

MAX_PLAUSIBLE_COOLDOWN_MS = (3 * 86_400 + 3_600) * 1000
"""Longest cooldown a state file may still hold: Binance's longest ban (3 days) plus an hour.
A later end means a wrong clock or a damaged file; honouring it could halt REST for good."""


class CooldownRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One persisted cooldown.

    Attributes:
        until_ms: Wall-clock end of the halt, ms UTC.
        reason: Why REST was halted (``"418 IP banned (on /fapi/v1/depth) until ...Z"``).
        saved_ms: When it was written, ms UTC (for the reader's information only).
    """

    until_ms: int
    reason: str
    saved_ms: int


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(CooldownRecord)


def load_cooldown(path: Path, now_ms: int) -> CooldownRecord | None:
    """Read the cooldown saved at ``path`` if it is still in force at ``now_ms`` (ms UTC).

    * No file: ``None``, silently.
    * The end has passed: ``None``, and the file is removed.
    * Unreadable, corrupt, or an implausible end (more than
      :data:`MAX_PLAUSIBLE_COOLDOWN_MS` ahead): one warning naming the file and the problem,
      then ``None``. The file is left for the user to inspect; the next cooldown replaces it.

    Never raises for a bad or missing file (the app must start regardless).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning(
            "ignoring REST cooldown state %s: cannot read it (%s)", path, exc.strerror or exc
        )
        return None
    try:
        record = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        logger.warning(
            "ignoring REST cooldown state %s: not a valid cooldown record (%s); "
            "it is replaced on the next 429/418",
            path,
            exc,
        )
        return None
    if record.until_ms <= now_ms:
        remove_cooldown(path)
        return None
    if record.until_ms - now_ms > MAX_PLAUSIBLE_COOLDOWN_MS:
        logger.warning(
            "ignoring REST cooldown state %s: its end %d ms UTC is %.1f h away, longer than "
            "any Binance ban (wrong clock?); it is replaced on the next 429/418",
            path,
            record.until_ms,
            (record.until_ms - now_ms) / 3_600_000,
        )
        return None
    return record


def save_cooldown(path: Path, record: CooldownRecord) -> bool:
    """Write ``record`` to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``), creating the folder if needed.

    A reader sees the old file or the new one, never a partial one. There is no ``fsync``:
    losing the file to a power cut only loses an advisory cooldown, and a truncated file is
    reported and ignored by :func:`load_cooldown`.

    Synchronous on purpose: it is called from ccxt's response hook, which is synchronous, and
    writes well under a kilobyte only when a 429/418 starts or extends a cooldown, while all
    REST traffic is halted anyway; a thread hop would only let writes land out of order.

    Returns:
        True when written. An ``OSError`` (read-only or full disk) is logged as a warning and
        gives False: the in-memory cooldown still holds for this run.
    """
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(_encode(record))
        os.replace(tmp_name, path)
        return True
    except OSError as exc:
        logger.warning(
            "could not save the REST cooldown to %s (%s): a restart before %d ms UTC would "
            "not know about it",
            path,
            exc.strerror or exc,
            record.until_ms,
        )
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        return False


def remove_cooldown(path: Path) -> None:
    """Delete the state file at ``path``; a missing file or an ``OSError`` is ignored (logged
    at debug level), since a stale file is harmless: its end is in the past."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.debug("could not remove expired REST cooldown state %s: %s", path, exc)
