"""Capture replay: recorded frames re-sent with their recorded pacing, plus REST answers.

The timeline is the capture's frames in receive order (frames before ``start_ms`` and of
symbols outside the filter are skipped). REST answers are derived from the same frames as of
the replay clock:

* ``depth``: for a symbol with a recorded snapshot *and* a recorded diff-depth stream, the
  exchange's current book (:mod:`feeds.replay.depth_book`): the first recorded snapshot plus
  every recorded diff the timeline has passed (delivered or not), ``lastUpdateId`` = ``u``
  of the last one; before any diff passed, the recorded snapshot itself. A symbol with
  snapshots but no diff stream gets the latest snapshot received at or before the clock
  (before any, the first one). Cut to ``limit`` levels;
* ``klines``: the capture's own ``kline_<interval>`` frames (latest state per candle) when it
  has that interval, else candles aggregated from its ``trade``/``aggTrade`` frames (real
  trade prices; a quote volume of Σ price × qty);
* ``ticker/24hr``: from the trades of the last 24 h of the capture;
* ``premiumIndex``: the latest ``markPrice`` frame; a symbol without one gets its last trade
  price as mark/index and a funding rate of 0 (not recorded);
* ``fundingRate``: captures hold no funding history: always empty.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from feeds.intervals import interval_ms
from feeds.replay.captures import Capture, CaptureFrame, DepthRecord, split_envelope
from feeds.replay.depth_book import DepthBooks
from feeds.replay.exchange_info import exchange_info, symbol_record
from feeds.replay.timeline import TimelineEvent
from feeds.replay.wire import decimals_of, fmt, premium_index_row, stream_key

logger = logging.getLogger(__name__)

MAX_GAP_MS = 60_000
"""Timeline silences longer than this are skipped at finite speed (separate sessions)."""

DAY_MS = 86_400_000
FUNDING_MS = 8 * 3_600_000


class _Trade(msgspec.Struct):
    T: int  # trade time, ms
    p: str  # price
    q: str  # quantity


class _MarkData(msgspec.Struct):
    E: int  # event time
    p: str  # mark price
    i: str = ""  # index price
    P: str = ""  # estimated settle price
    r: str = ""  # funding rate
    T: int = 0  # next funding time


class _KlineBody(msgspec.Struct):
    t: int
    i: str
    o: str
    h: str
    l: str  # noqa: E741 - Binance field name
    c: str
    v: str
    q: str = "0"
    n: int = 0
    V: str = "0"
    Q: str = "0"


class _KlineData(msgspec.Struct):
    E: int
    k: _KlineBody


_trade = msgspec.json.Decoder(_Trade)
_mark = msgspec.json.Decoder(_MarkData)
_kline = msgspec.json.Decoder(_KlineData)
_depth = msgspec.json.Decoder(dict[str, Any])


@dataclass(eq=False)
class _SymbolData:
    trade_ms: list[int] = field(default_factory=list)
    trade_price: list[float] = field(default_factory=list)
    trade_qty: list[float] = field(default_factory=list)
    price_text: list[str] = field(default_factory=list)
    marks: list[_MarkData] = field(default_factory=list)
    # (interval, open ms) → list of (event ms, kline row)
    klines: dict[str, dict[int, list[tuple[int, list[Any]]]]] = field(default_factory=dict)
    depth: list[DepthRecord] = field(default_factory=list)


def _symbol_of(stream: str) -> str | None:
    head = stream.split("@", 1)[0]
    return None if head.startswith("!") else head.upper()


class CaptureSource:
    """Replay of a :class:`Capture` (module docstring gives the REST rules).

    Args:
        path: Capture file or folder.
        symbols: Replay only these symbols (upper or lower case); ``None`` = all.
        start_ms: Skip frames received before this, ms UTC; default the first frame.

    Raises:
        ReplayDataError: nothing usable at ``path``.
        ValueError: the capture has no frames (for the symbols asked).
    """

    kind: Literal["klines", "capture"] = "capture"
    max_gap_ms: int | None = MAX_GAP_MS

    def __init__(
        self, path: Path, symbols: list[str] | None = None, start_ms: int | None = None
    ) -> None:
        self.capture = Capture(path)
        self._wanted = {s.upper() for s in symbols} if symbols is not None else None
        self._data: dict[str, _SymbolData] = {}
        first: int | None = None
        last = 0
        frames = 0
        self.streams: set[str] = set()
        """Stream names that occur in the capture (after the symbol filter)."""
        early_diffs: list[CaptureFrame] = []
        for frame in self._frames():
            if start_ms is not None and frame.recv_ms < start_ms:
                if stream_key(frame.stream).kind == "depth":
                    early_diffs.append(frame)
                continue
            frames += 1
            self.streams.add(frame.stream)
            first = frame.recv_ms if first is None else first
            last = frame.recv_ms
            self._index(frame)
        if first is None:
            raise ValueError(f"{path}: no frames to replay")
        snapshots = [
            snap
            for snap in self.capture.depth_snapshots()
            if self._wanted is None or snap.symbol in self._wanted
        ]
        for snap in snapshots:
            self._sym(snap.symbol).depth.append(snap)
        diff_symbols = {
            sym
            for stream in self.streams | {f.stream for f in early_diffs}
            if stream_key(stream).kind == "depth" and (sym := _symbol_of(stream)) is not None
        }
        self.books = DepthBooks(snapshots, diff_symbols)
        """The exchange's reference order books (symbols with a snapshot and a diff stream)."""
        for frame in early_diffs:
            # Diffs before the replay start happened on the exchange all the same.
            self._pass_diff(frame.stream, _data_of(frame.raw))
        self.frame_count = frames
        self.start_ms = start_ms if start_ms is not None else first
        self.end_ms = last
        self.symbols = sorted(s for s, d in self._data.items() if d is not None)
        self._symbol_set = set(self.symbols)
        self._arrays: dict[str, tuple[Any, Any, Any]] = {}
        for sym, data in self._data.items():
            self._arrays[sym] = (
                np.asarray(data.trade_ms, dtype=np.int64),
                np.asarray(data.trade_price, dtype=np.float64),
                np.asarray(data.trade_qty, dtype=np.float64),
            )
        self._exchange_records: list[dict[str, Any]] | None = None

    @property
    def skipped(self) -> list[str]:
        """Notes on malformed lines skipped while reading."""
        count = self.capture.skipped_lines
        return [f"{self.capture.path}: {count} malformed line(s) skipped"] if count else []

    def _frames(self) -> Iterator[CaptureFrame]:
        for frame in self.capture.frames():
            sym = _symbol_of(frame.stream)
            if self._wanted is not None and sym is not None and sym not in self._wanted:
                continue
            yield frame

    def _sym(self, symbol: str) -> _SymbolData:
        data = self._data.get(symbol)
        if data is None:
            data = self._data[symbol] = _SymbolData()
        return data

    def _index(self, frame: CaptureFrame) -> None:
        sym = _symbol_of(frame.stream)
        if sym is None:
            return
        data = self._sym(sym)
        kind = stream_key(frame.stream).kind
        try:
            if kind in ("trade", "aggTrade"):
                _, raw = split_envelope(frame.raw)
                trade = _trade.decode(raw)
                data.trade_ms.append(trade.T)
                data.trade_price.append(float(trade.p))
                data.trade_qty.append(float(trade.q))
                if len(data.price_text) < 200:
                    data.price_text.append(trade.p)
            elif kind == "markPrice":
                _, raw = split_envelope(frame.raw)
                data.marks.append(_mark.decode(raw))
            elif kind.startswith("kline_"):
                _, raw = split_envelope(frame.raw)
                kl = _kline.decode(raw)
                k = kl.k
                row = [
                    k.t,
                    k.o,
                    k.h,
                    k.l,
                    k.c,
                    k.v,
                    k.t + interval_ms(k.i) - 1,
                    k.q,
                    k.n,
                    k.V,
                    k.Q,
                    "0",
                ]
                data.klines.setdefault(k.i, {}).setdefault(k.t, []).append((kl.E, row))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            logger.debug("frame on %s not indexed for REST: %s", frame.stream, exc)

    def has_symbol(self, symbol: str) -> bool:
        """True if ``symbol`` appears in the capture (after the filter)."""
        return symbol in self._symbol_set

    # ----------------------------------------------------------------- timeline

    def events(self) -> Iterator[TimelineEvent]:
        """The capture's frames from ``start_ms``, in receive order."""
        for frame in self._frames():
            if frame.recv_ms < self.start_ms:
                continue
            yield TimelineEvent(
                frame.recv_ms, stream_key(frame.stream), frame.stream, partial(_data_of, frame.raw)
            )

    def mark_updates(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """Captures replay their own markPrice frames: nothing is generated."""
        return {}

    def event_passed(self, event: TimelineEvent) -> None:
        """The timeline passed ``event``: a recorded depth diff updates the reference book."""
        if event.key.kind == "depth":
            self._pass_diff(event.stream, event.data())

    def _pass_diff(self, stream: str, data: bytes) -> None:
        symbol = _symbol_of(stream)
        if symbol is not None and symbol in self.books:
            self.books.apply(symbol, data)

    # ----------------------------------------------------------------- REST

    def _price_decimals(self, symbol: str) -> int:
        texts = self._data[symbol].price_text
        if texts:
            return max(len(t.split(".", 1)[1]) if "." in t else 0 for t in texts)
        prices = self._arrays[symbol][1]
        return decimals_of(prices) if len(prices) else 2

    def exchange_info(self) -> dict[str, Any]:
        """exchangeInfo body with the capture's symbols as TRADING USDT perpetuals."""
        if self._exchange_records is None:
            records = []
            for sym in self.symbols:
                qty = self._arrays[sym][2]
                qty_dec = decimals_of(qty) if len(qty) else 3
                price_dec = self._price_decimals(sym)
                records.append(symbol_record(sym, price_dec, qty_dec, self.start_ms))
            self._exchange_records = records
        return exchange_info(self._exchange_records, 0)

    def tickers_24h(self, now_ms: int) -> list[dict[str, Any]]:
        """24 h stats from the trades recorded in the 24 h before ``now_ms``."""
        out = []
        for sym in self.symbols:
            times, prices, qtys = self._arrays[sym]
            hi = int(np.searchsorted(times, now_ms, side="right"))
            lo = int(np.searchsorted(times, now_ms - DAY_MS, side="left"))
            if hi <= lo:
                continue
            dec = self._price_decimals(sym)
            first, last = float(prices[lo]), float(prices[hi - 1])
            volume = float(qtys[lo:hi].sum())
            quote = float((prices[lo:hi] * qtys[lo:hi]).sum())
            out.append(
                {
                    "symbol": sym,
                    "priceChange": fmt(last - first, dec),
                    "priceChangePercent": fmt((last - first) / first * 100 if first else 0.0, 3),
                    "weightedAvgPrice": fmt(quote / volume if volume else last, dec),
                    "lastPrice": fmt(last, dec),
                    "lastQty": fmt(float(qtys[hi - 1]), 8).rstrip("0").rstrip("."),
                    "openPrice": fmt(first, dec),
                    "highPrice": fmt(float(prices[lo:hi].max()), dec),
                    "lowPrice": fmt(float(prices[lo:hi].min()), dec),
                    "volume": fmt(volume, 8).rstrip("0").rstrip("."),
                    "quoteVolume": fmt(quote, 2),
                    "openTime": int(times[lo]),
                    "closeTime": int(times[hi - 1]),
                    "firstId": -1,
                    "lastId": -1,
                    "count": hi - lo,
                }
            )
        return out

    def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[list[Any]] | None:
        """Kline rows as of ``now_ms`` (module docstring); ``None`` for an unknown symbol.

        Raises:
            ValueError: unknown interval code.
        """
        if symbol not in self._symbol_set:
            return None
        length = interval_ms(interval)
        data = self._data[symbol]
        rows: list[list[Any]] = []
        recorded = data.klines.get(interval)
        if recorded:
            for open_ms in sorted(recorded):
                states = [row for event_ms, row in recorded[open_ms] if event_ms <= now_ms]
                if open_ms < now_ms and states:
                    rows.append(states[-1])
        else:
            rows = self._trade_klines(symbol, length, now_ms)
        if start_ms is not None:
            rows = [r for r in rows if r[0] >= start_ms]
        if end_ms is not None:
            rows = [r for r in rows if r[0] <= end_ms]
        return rows[:limit] if start_ms is not None else rows[-limit:]

    def _trade_klines(self, symbol: str, length: int, now_ms: int) -> list[list[Any]]:
        times, prices, qtys = self._arrays[symbol]
        hi = int(np.searchsorted(times, now_ms, side="right"))
        if hi == 0:
            return []
        times, prices, qtys = times[:hi], prices[:hi], qtys[:hi]
        buckets = times - times % length
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        ends = np.r_[starts[1:], len(times)] - 1
        dec = self._price_decimals(symbol)
        rows: list[list[Any]] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            seg = slice(a, b + 1)
            open_ms = int(buckets[a])
            rows.append(
                [
                    open_ms,
                    fmt(float(prices[a]), dec),
                    fmt(float(prices[seg].max()), dec),
                    fmt(float(prices[seg].min()), dec),
                    fmt(float(prices[b]), dec),
                    fmt(float(qtys[seg].sum()), 8),
                    open_ms + length - 1,
                    fmt(float((prices[seg] * qtys[seg]).sum()), 8),
                    b - a + 1,
                    "0",
                    "0",
                    "0",
                ]
            )
        return rows

    def depth(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """The FIRST recorded snapshot of ``symbol`` cut to ``limit`` levels (``None`` if none
        was recorded), whatever the clock: what a stale-snapshot fault serves."""
        return self._recorded_depth(symbol, limit, None)

    def depth_at(self, symbol: str, limit: int, now_ms: int | None) -> dict[str, Any] | None:
        """``GET /fapi/v1/depth`` body as of ``now_ms`` (module docstring), ``None`` if no
        snapshot was recorded for ``symbol``."""
        body = self.books.body(symbol, limit)
        if body is not None:
            return body
        return self._recorded_depth(symbol, limit, now_ms)

    def _recorded_depth(self, symbol: str, limit: int, now_ms: int | None) -> dict[str, Any] | None:
        data = self._data.get(symbol)
        if data is None or not data.depth:
            return None
        snaps = data.depth
        idx = 0
        if now_ms is not None:
            idx = max(bisect.bisect_right([s.recv_ms for s in snaps], now_ms) - 1, 0)
        body = _depth.decode(snaps[idx].body)
        body["bids"] = list(body.get("bids", []))[:limit]
        body["asks"] = list(body.get("asks", []))[:limit]
        return body

    def premium_index(self, symbol: str | None, now_ms: int) -> list[dict[str, Any]]:
        """premiumIndex rows from the latest markPrice frame (module docstring for fallback)."""
        rows = []
        for sym in [symbol] if symbol is not None else self.symbols:
            data = self._data.get(sym)
            if data is None:
                continue
            marks = [m for m in data.marks if now_ms >= m.E]
            if marks:
                m = marks[-1]
                rows.append(
                    premium_index_row(
                        sym, mark=m.p, index=m.i or m.p, settle=m.P or m.p,
                        funding_rate=m.r or "0.00000000", next_funding_ms=m.T, time_ms=m.E,
                    )
                )
                continue
            times, prices, _ = self._arrays[sym]
            hi = int(np.searchsorted(times, now_ms, side="right"))
            if hi == 0:
                continue
            price = fmt(float(prices[hi - 1]), self._price_decimals(sym))
            rows.append(
                premium_index_row(
                    sym, mark=price, index=price, settle=price, funding_rate="0.00000000",
                    next_funding_ms=(now_ms // FUNDING_MS + 1) * FUNDING_MS, time_ms=now_ms,
                )
            )
        return rows

    def funding_rates(
        self,
        symbol: str | None,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[dict[str, Any]] | None:
        """Captures hold no funding history: ``[]`` (``None`` for an unknown symbol)."""
        if symbol is not None and symbol not in self._symbol_set:
            return None
        return []


def _data_of(raw: str) -> bytes:
    return split_envelope(raw)[1]


__all__ = ["MAX_GAP_MS", "CaptureFrame", "CaptureSource"]
