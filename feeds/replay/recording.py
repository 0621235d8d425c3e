"""perpscope's own recording format for raw Binance traffic (``perpscope record``).

gzip text. Line 1 is a JSON header::

    {"format":"perpscope-rec","version":1,"exchange":"binanceusdm","ws_url":"wss://…","started":1721347200000}

then one line per received WebSocket frame, tab-separated::

    <recv_ms>\\t<route>\\t<raw JSON frame exactly as received>

``route`` is the routed path the frame came on (``public`` / ``market``). REST depth
snapshots taken during the recording are lines with route ``rest:depth:<SYMBOL>`` and the
raw response body::

    1721347021281\\trest:depth:BTCUSDT\\t{"lastUpdateId":4984028384061,"E":…,"bids":[…],"asks":[…]}

The writer flushes the gzip stream periodically (a sync flush), so a recording cut by an
abrupt stop is readable up to the last flush; the reader tolerates the missing gzip trailer
and a truncated last line (with a warning).
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

from feeds.replay.errors import ReplayDataError

logger = logging.getLogger(__name__)

FORMAT = "perpscope-rec"
VERSION = 1
REST_PREFIX = "rest:"


class RecordedLine(NamedTuple):
    """One line of a recording.

    Attributes:
        recv_ms: Local receive time, ms UTC.
        route: ``public``/``market`` for WebSocket frames, ``rest:depth:<SYMBOL>`` for REST.
        raw: The frame or body exactly as received (JSON text).
    """

    recv_ms: int
    route: str
    raw: str


class RecordingWriter:
    """Appends frames to a new recording file (gzip), flushing every ``flush_interval_s``.

    Writes are buffered in memory and compressed in the calling thread; each call costs
    microseconds, so it may be used from the event loop. Use as a context manager or call
    :meth:`close`.

    Args:
        path: File to create (overwritten if it exists). ``.rec.gz`` is the usual suffix.
        ws_url: WebSocket root the frames came from (stored in the header).
        exchange: ccxt exchange id.
        started_ms: Start time for the header, ms UTC (default: now).
        flush_interval_s: Longest time written data may stay only in memory.

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(
        self,
        path: Path,
        *,
        ws_url: str = "",
        exchange: str = "binanceusdm",
        started_ms: int | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.path = path
        self.frames_written = 0
        self._flush_interval = flush_interval_s
        self._last_flush = time.monotonic()
        # Kept open across calls on purpose; close() / __exit__ closes it.
        self._file: IO[str] | None = gzip.open(  # noqa: SIM115
            path, "wt", encoding="utf-8", newline="\n"
        )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "exchange": exchange,
            "ws_url": ws_url,
            "started": started_ms if started_ms is not None else int(time.time() * 1000),
        }
        self._file.write(json.dumps(header, separators=(",", ":")) + "\n")
        self.flush()

    def write_frame(self, route: str, recv_ms: int, raw: str | bytes) -> None:
        """Append one WebSocket frame received on ``route`` (``public``/``market``).

        The argument order matches the live adapter's ``frame_hook(route, recv_time_ms,
        raw_text)``, so ``frame_hook=writer.write_frame`` records everything it receives.

        Raises:
            ValueError: the writer is closed, or ``route`` contains a tab or newline.
            TypeError: ``recv_ms`` is not an integer.
        """
        self._write(recv_ms, route, raw)
        self.frames_written += 1

    def write_rest(self, kind: str, symbol: str, recv_ms: int, body: str | bytes) -> None:
        """Append one REST response (``kind`` = ``depth``) for ``symbol`` (``BTCUSDT``)."""
        self._write(recv_ms, f"{REST_PREFIX}{kind}:{symbol.upper()}", body)

    def _write(self, recv_ms: int, route: str, raw: str | bytes) -> None:
        if self._file is None:
            raise ValueError(f"recording {self.path} is closed")
        if isinstance(recv_ms, bool) or not isinstance(recv_ms, int):
            raise TypeError(f"recv_ms must be an int (ms UTC), got {recv_ms!r}")
        if any(c in route for c in "\t\r\n"):
            raise ValueError(f"route {route!r} contains a tab or newline")
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        # Frames are single-line JSON; a newline inside would split the record.
        text = text.replace("\r", "").replace("\n", "")
        self._file.write(f"{recv_ms}\t{route}\t{text}\n")
        if time.monotonic() - self._last_flush >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        """Push everything written so far to the file (gzip sync flush)."""
        if self._file is None:
            return
        self._file.flush()  # text layer → GzipFile
        inner = getattr(self._file, "buffer", None)
        if isinstance(inner, gzip.GzipFile):
            inner.flush(zlib.Z_SYNC_FLUSH)
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close (writes the gzip trailer). Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def is_recording(path: Path) -> bool:
    """True if ``path`` is a gzip file whose first line is a perpscope recording header."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            first = fh.readline(4096)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return False
    return first.startswith("{") and f'"format":"{FORMAT}"' in first.replace(" ", "")


def read_header(path: Path) -> dict[str, Any]:
    """The recording's JSON header.

    Raises:
        ReplayDataError: not a gzip file or no valid perpscope header.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise ReplayDataError(path, f"not a gzip recording: {exc}") from exc
    try:
        header = json.loads(first)
    except ValueError as exc:
        raise ReplayDataError(path, f"first line is not a JSON header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ReplayDataError(path, f"header does not say format {FORMAT!r}")
    if header.get("version") != VERSION:
        raise ReplayDataError(path, f"unsupported recording version {header.get('version')!r}")
    return header


def iter_recording(path: Path) -> Iterator[RecordedLine]:
    """Lines of a recording after the header, in recorded order.

    A cut-off end (missing gzip trailer, truncated last line) ends the iteration with a
    warning; a malformed line in the middle is skipped with a warning.

    Raises:
        ReplayDataError: the header is missing or wrong.
    """
    read_header(path)
    bad = 0
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        fh.readline()
        lineno = 1
        while True:
            try:
                line = fh.readline()
            except (EOFError, zlib.error, OSError) as exc:
                logger.warning("%s: recording ends abruptly after line %d (%s)", path, lineno, exc)
                break
            if not line:
                break
            lineno += 1
            complete = line.endswith("\n")
            parts = line.rstrip("\n").split("\t", 2)
            if not complete:
                logger.warning("%s: dropped truncated last line %d", path, lineno)
                break
            if len(parts) != 3 or not parts[0].isdigit():
                bad += 1
                logger.warning("%s: line %d is not <recv_ms>\\t<route>\\t<frame>", path, lineno)
                continue
            yield RecordedLine(int(parts[0]), parts[1], parts[2])
    if bad:
        logger.warning("%s: skipped %d malformed line(s)", path, bad)
