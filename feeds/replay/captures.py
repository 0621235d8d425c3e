"""Raw Binance USDⓈ-M WebSocket captures: frames in recorded order, plus REST depth snapshots.

Three formats are read (see ``shared/data/README.md`` §1–2 and :mod:`feeds.replay.recording`):

* cryptofeed ``*.ws.N.0``: first line ``<ws url> <-> <connect ts>``, then
  ``<recv unix ts (float s)>: <raw frame>``; sent-message lines (``<url> <- …``) are skipped.
  The sibling ``*.http.*`` file (same prefix) holds REST depth snapshots as
  ``<request url> -> <recv ts>: <body>``; the symbol is the URL's ``symbol=`` parameter.
* hftbacktest ``*.gz``: ``<recv ts> <raw frame>`` per line; the timestamp unit (ns in the
  2024 files, µs in the 2023 ``.dat.gz`` files) is recognised by magnitude. A line whose
  JSON has no ``stream`` key is the REST depth snapshot for the file's symbol (the file
  name's first ``_`` token, ``btcusdt_20240718.gz`` → BTCUSDT).
* perpscope recordings (gzip with a ``perpscope-rec`` header): route ``rest:depth:<SYM>``
  lines are snapshots, other lines frames.

Frames must be combined-stream envelopes (``{"stream":..,"data":..}``); anything else is
counted, logged and skipped.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import parse_qs, urlsplit

import msgspec

from feeds.replay.errors import ReplayDataError
from feeds.replay.recording import REST_PREFIX, is_recording, iter_recording

logger = logging.getLogger(__name__)

CaptureKind = Literal["cryptofeed", "hftbacktest", "recording"]


class CaptureFrame(NamedTuple):
    """One recorded WebSocket frame.

    Attributes:
        recv_ms: Recorder's receive time, ms UTC (its local clock).
        stream: The frame's ``stream`` (``btcusdt@depth@0ms``).
        raw: The frame text exactly as recorded.
    """

    recv_ms: int
    stream: str
    raw: str


class DepthRecord(NamedTuple):
    """A recorded ``GET /fapi/v1/depth`` response.

    Attributes:
        recv_ms: Receive time, ms UTC.
        symbol: Symbol, upper case.
        body: Raw JSON body (``lastUpdateId``, ``E``, ``T``, ``bids``, ``asks``).
    """

    recv_ms: int
    symbol: str
    body: str


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw


_envelope = msgspec.json.Decoder(_Envelope)


def split_envelope(raw: str | bytes) -> tuple[str, bytes]:
    """(stream, raw data JSON) of a combined-stream frame.

    Raises:
        msgspec.DecodeError: not JSON, or no ``stream``/``data``.
    """
    env = _envelope.decode(raw)
    return env.stream, bytes(env.data)


def to_ms(stamp: float) -> int:
    """Recorder timestamp → ms, unit recognised by magnitude (s, ms, µs or ns)."""
    value = abs(stamp)
    if value < 1e11:
        return round(stamp * 1000)
    if value < 1e14:
        return round(stamp)
    if value < 1e17:
        return round(stamp / 1000)
    return round(stamp / 1_000_000)


@dataclass(eq=False)
class CaptureFile:
    """One capture file and what kind it is.

    Attributes:
        path: The file.
        kind: Its format.
        symbol: Symbol a bare REST snapshot belongs to (hftbacktest), else ``None``.
        rest_files: Sibling REST snapshot files (cryptofeed ``*.http.*``).
        skipped_lines: Lines skipped as malformed during the last full read.
    """

    path: Path
    kind: CaptureKind
    symbol: str | None = None
    rest_files: list[Path] = field(default_factory=list)
    skipped_lines: int = 0

    def records(self) -> Iterator[CaptureFrame | DepthRecord]:
        """Frames and depth snapshots of this file in recorded order.

        Raises:
            ReplayDataError: unreadable file.
        """
        self.skipped_lines = 0
        if self.kind == "cryptofeed":
            yield from self._cryptofeed()
        elif self.kind == "hftbacktest":
            yield from self._hftbacktest()
        else:
            yield from self._recording()

    def frames(self) -> Iterator[CaptureFrame]:
        """Frames only, in recorded order."""
        for record in self.records():
            if isinstance(record, CaptureFrame):
                yield record

    def depth_snapshots(self) -> list[DepthRecord]:
        """All REST depth snapshots of the file and its siblings."""
        out = [r for r in self.records() if isinstance(r, DepthRecord)]
        for rest in self.rest_files:
            out.extend(_cryptofeed_http(rest))
        return sorted(out, key=lambda r: r.recv_ms)

    def _skip(self, lineno: int, why: str) -> None:
        self.skipped_lines += 1
        if self.skipped_lines <= 5:
            logger.warning("%s:%d skipped: %s", self.path, lineno, why)

    def _frame(self, lineno: int, recv_ms: int, raw: str) -> CaptureFrame | None:
        try:
            stream = _envelope.decode(raw).stream
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._skip(lineno, f"not a combined-stream frame ({exc})")
            return None
        return CaptureFrame(recv_ms, stream, raw)

    def _cryptofeed(self) -> Iterator[CaptureFrame]:
        try:
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    line = line.rstrip("\n")
                    if not line or " <-> " in line or " <- " in line:
                        continue  # connect / sent-message lines
                    stamp, sep, raw = line.partition(": ")
                    try:
                        recv = to_ms(float(stamp))
                    except ValueError:
                        self._skip(lineno, "no '<timestamp>: ' prefix")
                        continue
                    if not sep:
                        self._skip(lineno, "no frame after the timestamp")
                        continue
                    frame = self._frame(lineno, recv, raw)
                    if frame is not None:
                        yield frame
        except OSError as exc:
            raise ReplayDataError(self.path, f"cannot read: {exc}") from exc

    def _hftbacktest(self) -> Iterator[CaptureFrame | DepthRecord]:
        try:
            with gzip.open(self.path, "rt", encoding="utf-8", errors="replace") as fh:
                lineno = 0
                while True:
                    try:
                        line = fh.readline()
                    except (EOFError, zlib.error) as exc:
                        logger.warning(
                            "%s: ends abruptly after line %d (%s)", self.path, lineno, exc
                        )
                        break
                    if not line:
                        break
                    lineno += 1
                    if not line.endswith("\n"):
                        logger.warning("%s: dropped truncated last line %d", self.path, lineno)
                        break
                    stamp, _, raw = line.rstrip("\n").partition(" ")
                    try:
                        recv = to_ms(int(stamp))
                    except ValueError:
                        self._skip(lineno, "no '<timestamp> ' prefix")
                        continue
                    try:
                        stream = _envelope.decode(raw).stream
                    except msgspec.ValidationError:
                        # No stream envelope: the session's REST depth snapshot.
                        if '"lastUpdateId"' in raw[:64] and self.symbol is not None:
                            yield DepthRecord(recv, self.symbol, raw)
                        else:
                            self._skip(lineno, "neither a stream frame nor a depth snapshot")
                        continue
                    except msgspec.DecodeError as exc:
                        self._skip(lineno, f"not JSON ({exc})")
                        continue
                    yield CaptureFrame(recv, stream, raw)
        except (OSError, zlib.error) as exc:
            raise ReplayDataError(self.path, f"cannot read as gzip: {exc}") from exc

    def _recording(self) -> Iterator[CaptureFrame | DepthRecord]:
        for lineno, line in enumerate(iter_recording(self.path), 2):
            if line.route.startswith(REST_PREFIX):
                _, kind, symbol = [*line.route.split(":", 2), "", ""][:3]
                if kind == "depth" and symbol:
                    yield DepthRecord(line.recv_ms, symbol.upper(), line.raw)
                continue
            frame = self._frame(lineno, line.recv_ms, line.raw)
            if frame is not None:
                yield frame


def _cryptofeed_http(path: Path) -> list[DepthRecord]:
    """Depth snapshots of a cryptofeed ``*.http.*`` file (other requests are ignored)."""
    out: list[DepthRecord] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReplayDataError(path, f"cannot read: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        url, sep, rest = line.partition(" -> ")
        stamp, sep2, body = rest.partition(": ")
        parts = urlsplit(url)
        symbols = parse_qs(parts.query).get("symbol")
        if not sep or not sep2 or not parts.path.endswith("/depth") or not symbols:
            logger.debug("%s:%d not a depth snapshot, ignored", path, lineno)
            continue
        try:
            recv = to_ms(float(stamp))
        except ValueError:
            logger.warning("%s:%d skipped: bad timestamp %r", path, lineno, stamp)
            continue
        out.append(DepthRecord(recv, symbols[0].upper(), body))
    return out


_CRYPTOFEED_WS = re.compile(r"^(?P<prefix>.+)\.ws\.\d+\.\d+$")


def identify(path: Path) -> CaptureFile | None:
    """What kind of capture ``path`` is, or ``None`` if it is none of the known formats."""
    name = path.name
    match = _CRYPTOFEED_WS.match(name)
    if match:
        prefix = match["prefix"]
        rest = sorted(path.parent.glob(f"{glob_escape(prefix)}.http.*"))
        return CaptureFile(path, "cryptofeed", rest_files=rest)
    if name.endswith(".gz"):
        if is_recording(path):
            return CaptureFile(path, "recording")
        symbol = name.split("_", 1)[0].split(".", 1)[0].upper()
        return CaptureFile(path, "hftbacktest", symbol=symbol or None)
    return None


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a literal file-name part."""
    return re.sub(r"([*?\[])", r"[\1]", text)


class Capture:
    """The capture files of a replay, merged into one timeline.

    Args:
        path: A capture file or a folder of them (not searched recursively).

    Raises:
        ReplayDataError: nothing usable at ``path``.
    """

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ReplayDataError(path, "no such file or folder")
        if path.is_file():
            found = identify(path)
            if found is None:
                raise ReplayDataError(
                    path,
                    "not a known capture format (cryptofeed *.ws.N.0, hftbacktest *.gz, "
                    "perpscope recording)",
                )
            self.files = [found]
        else:
            self.files = [f for p in sorted(path.iterdir()) if p.is_file() and (f := identify(p))]
            if not self.files:
                raise ReplayDataError(path, "no capture files in this folder")
        self.path = path

    def frames(self) -> Iterator[CaptureFrame]:
        """All frames of all files, merged by receive time (stable within a file)."""
        if len(self.files) == 1:
            return self.files[0].frames()
        return heapq.merge(*(f.frames() for f in self.files), key=lambda fr: fr.recv_ms)

    def depth_snapshots(self) -> list[DepthRecord]:
        """All recorded depth snapshots, by receive time."""
        out: list[DepthRecord] = []
        for f in self.files:
            out.extend(f.depth_snapshots())
        return sorted(out, key=lambda r: r.recv_ms)

    @property
    def skipped_lines(self) -> int:
        """Malformed lines skipped so far, over all files."""
        return sum(f.skipped_lines for f in self.files)


def iter_capture(path: Path) -> Iterable[CaptureFrame]:
    """Frames of a capture file or folder in recorded order (see :class:`Capture`)."""
    return Capture(path).frames()
