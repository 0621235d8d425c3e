"""Kline-history replay: the timeline of kline/markPrice messages and the REST answers.

Streaming (from ``start_ms`` on; earlier history is REST backfill only): for every symbol and
every configured interval, each candle produces forming updates (``x`` = false) and one
closing update (``x`` = true, the complete candle, sent at its close boundary). Forming
updates are true partial states built from recorded candles, never made-up prices:

* when a finer file covers all of the candle's constituents (1m for 5m, 5m for 15m, the
  finest such file), one forming update after each constituent but the last, aggregating
  the constituents closed so far (15m from 5m: after bar 1, after bar 2, closing after 3);
* otherwise a single forming update at the open: o = h = l = c = open, volume 0.

Messages at the same instant go closes first, then shorter intervals, then symbol order.

Mark price / funding (``<sym>@markPrice@1s``, ``!markPrice@arr@1s``): the latest mark price
known from mark-price klines (the open of the current mark candle; after the last one, its
close). A symbol without a mark file uses the close of its latest closed trade candle as the
mark. The index price ``i`` and estimated settle price ``P`` are not in the files and are
sent equal to the mark. ``r`` is the latest settled funding rate from the funding file
(before the first settlement, the first recorded rate; no funding file: 0), ``T`` the next
8-hour UTC boundary.

All-market tickers (``!ticker@arr``): the files hold no ticker tape, so each one is derived
from the klines served: per symbol, the 24 h rolling open/high/low/close/volume of the closed
candles of its finest file (the same window as ``GET /fapi/v1/ticker/24hr``), with ``st`` = 1
(USDⓈ-M), sent whenever the replay clock reaches a new kline event time.

Quote volumes are estimated as Σ volume × (o+h+l+c)/4 (the files keep OHLCV only); trade
counts and taker-buy volumes are 0.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any, Literal

import msgspec
import numpy as np

from feeds.intervals import interval_ms
from feeds.replay.exchange_info import exchange_info, symbol_record
from feeds.replay.klines import Candle, KlineHistory, candle_row
from feeds.replay.timeline import TimelineEvent
from feeds.replay.wire import StreamKey, fmt, premium_index_row

logger = logging.getLogger(__name__)

FUNDING_PERIOD_MS = 8 * 3_600_000
"""Binance's default funding interval (00:00, 08:00, 16:00 UTC)."""

DAY_MS = 86_400_000

_encode = msgspec.json.Encoder().encode


def next_funding_ms(now_ms: int) -> int:
    """Next 8-hour UTC boundary strictly after ``now_ms``."""
    return (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS


def kline_payload(
    symbol: str,
    interval: str,
    candle: Candle,
    closed: bool,
    event_ms: int,
    price_decimals: int,
    qty_decimals: int,
) -> dict[str, Any]:
    """Binance ``kline`` stream payload for one candle state."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": candle.open_ms,
            "T": candle.open_ms + interval_ms(interval) - 1,
            "s": symbol,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": fmt(candle.open, price_decimals),
            "c": fmt(candle.close, price_decimals),
            "h": fmt(candle.high, price_decimals),
            "l": fmt(candle.low, price_decimals),
            "v": fmt(candle.volume, qty_decimals),
            "n": 0,
            "x": closed,
            "q": fmt(candle.quote_volume, 8),
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


class KlineSource:
    """Replay of a :class:`KlineHistory` (module docstring gives the rules).

    Args:
        history: Loaded klines, marks and funding.
        timeframes: Intervals streamed (``["5m", "15m", "1h", "4h"]``).
        history_bars: Backfill depth wanted per interval; the smallest timeframe's entry
            sets the default start.
        start_ms: Replay start, ms UTC; default: the earliest time that leaves
            ``history_bars[smallest]`` candles of the smallest timeframe before it for every
            symbol, clamped so at least one candle streams.

    Raises:
        ValueError: empty or unknown ``timeframes``.
    """

    kind: Literal["klines", "capture"] = "klines"
    max_gap_ms: int | None = None

    def __init__(
        self,
        history: KlineHistory,
        timeframes: list[str],
        history_bars: dict[str, int],
        start_ms: int | None = None,
    ) -> None:
        if not timeframes:
            raise ValueError("timeframes is empty")
        self.history = history
        self.timeframes = sorted(set(timeframes), key=interval_ms)
        self.symbols = history.symbols
        self._symbol_set = set(self.symbols)
        smallest = self.timeframes[0]
        self.start_ms = (
            start_ms if start_ms is not None else self._default_start(smallest, history_bars)
        )
        self.end_ms = self._end()
        for symbol in self.symbols:
            history.decimals(symbol)  # computed here (a loader thread), not on the event loop
        self._exchange_records: list[dict[str, Any]] | None = None
        self._ticker_sent: dict[str, tuple[int, str, int]] = {}

    @property
    def skipped(self) -> list[str]:
        """Files left out of the replay, ``"<path>: <reason>"``."""
        return [f"{s.path}: {s.reason}" for s in self.history.skipped]

    def _default_start(self, smallest: str, history_bars: dict[str, int]) -> int:
        bars = max(int(history_bars.get(smallest, 0)), 0)
        length = interval_ms(smallest)
        firsts: list[int] = []
        lasts: list[int] = []
        for symbol in self.symbols:
            series = self.history.candles(symbol, smallest)
            if series is not None and len(series):
                firsts.append(int(series.open_ms[0]))
                lasts.append(int(series.open_ms[-1]))
        if not firsts:
            raise ValueError(f"no symbol has {smallest} klines (from a file or aggregated)")
        start = max(firsts) + bars * length
        return max(min(start, max(lasts)), min(firsts))

    def _end(self) -> int:
        end = self.start_ms
        for symbol in self.symbols:
            for interval in self.timeframes:
                series = self.history.candles(symbol, interval)
                if series is not None and len(series):
                    end = max(end, int(series.open_ms[-1]) + interval_ms(interval))
        return end

    def has_symbol(self, symbol: str) -> bool:
        """True if ``symbol`` is replayed."""
        return symbol in self._symbol_set

    # ----------------------------------------------------------------- timeline

    def events(self) -> Iterator[TimelineEvent]:
        """Kline events of every symbol × timeframe from ``start_ms``, merged in time order."""
        cursors = [
            self._kline_cursor(symbol, interval, idx)
            for idx, symbol in enumerate(self.symbols)
            for interval in self.timeframes
        ]
        for item in heapq.merge(*cursors):
            yield item[4]

    def _kline_cursor(
        self, symbol: str, interval: str, symbol_idx: int
    ) -> Iterator[tuple[int, int, int, int, TimelineEvent]]:
        series = self.history.candles(symbol, interval)
        if series is None or not len(series):
            return
        length = interval_ms(interval)
        start = self.start_ms
        key = StreamKey(symbol.lower(), f"kline_{interval}")
        stream = f"{symbol.lower()}@kline_{interval}"
        price_dec, qty_dec = self.history.decimals(symbol)
        first = int(np.searchsorted(series.open_ms, start - length, side="right"))

        def event(time_ms: int, candle: Candle, closed: bool) -> TimelineEvent:
            build = partial(
                _encode_kline, symbol, interval, candle, closed, time_ms, price_dec, qty_dec
            )
            return TimelineEvent(time_ms, key, stream, build)

        for idx in range(first, len(series)):
            open_ms = int(series.open_ms[idx])
            parts = self.history.constituents(symbol, interval, open_ms)
            if parts is not None:
                finer, row, count = parts
                step = finer.interval_ms
                for done in range(1, count):
                    at = open_ms + done * step
                    if at >= start:
                        yield at, 1, length, symbol_idx, event(at, finer.partial(row, done), False)
            elif open_ms >= start:
                price = float(series.open[idx])
                at_open = Candle(open_ms, price, price, price, price, 0.0, 0.0)
                yield open_ms, 1, length, symbol_idx, event(open_ms, at_open, False)
            close_at = open_ms + length
            yield close_at, 0, length, symbol_idx, event(close_at, series.candle(idx), True)

    def mark_updates(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """``markPriceUpdate`` payload per symbol as of ``now_ms`` (module doc for the rules)."""
        out: dict[str, dict[str, Any]] = {}
        next_funding = next_funding_ms(now_ms)
        for symbol in self.symbols:
            until = self.history.trading_until(symbol)
            if until is None or now_ms > until:
                continue
            mark = self.history.mark_at(symbol, now_ms)
            if mark is None:
                mark = self.history.last_close(symbol, now_ms)
            if mark is None:
                continue
            rate = self.history.funding_at(symbol, now_ms)
            mark_text = fmt(mark, 8)
            out[symbol] = {
                "e": "markPriceUpdate",
                "E": now_ms,
                "s": symbol,
                "p": mark_text,
                "P": mark_text,
                "i": mark_text,
                "r": fmt(rate if rate is not None else 0.0, 8),
                "T": next_funding,
            }
        return out

    # ----------------------------------------------------------------- REST

    def exchange_info(self) -> dict[str, Any]:
        """exchangeInfo body with every replayed symbol as a TRADING USDT perpetual.

        ``serverTime`` is 0 here; the server sets it to the replay clock.
        """
        if self._exchange_records is None:
            records = []
            for symbol in self.symbols:
                price_dec, qty_dec = self.history.decimals(symbol)
                finest = self.history.finest(symbol)
                onboard = int(finest.open_ms[0]) if finest is not None and len(finest) else 0
                records.append(symbol_record(symbol, price_dec, qty_dec, onboard))
            self._exchange_records = records
        return exchange_info(self._exchange_records, 0)

    def tickers_24h(self, now_ms: int) -> list[dict[str, Any]]:
        """24 h rolling stats per symbol from the closed candles of its finest kline file.

        The window is the candles that opened at or after ``now_ms`` − 24 h and closed by
        ``now_ms``. ``quoteVolume`` is the estimate described in the module docstring;
        trade ids and counts are not recorded (−1 / 0).
        """
        out: list[dict[str, Any]] = []
        for symbol in self.symbols:
            series = self.history.finest(symbol, now_ms)
            if series is None:
                continue
            step = series.interval_ms
            hi = int(np.searchsorted(series.open_ms, now_ms - step, side="right"))
            lo = int(np.searchsorted(series.open_ms, now_ms - DAY_MS, side="left"))
            if hi <= lo:
                continue
            price_dec, qty_dec = self.history.decimals(symbol)
            open_price = float(series.open[lo])
            last = float(series.close[hi - 1])
            volume = float(series.volume[lo:hi].sum())
            quote = float(series.quote_volume[lo:hi].sum())
            change = last - open_price
            out.append(
                {
                    "symbol": symbol,
                    "priceChange": fmt(change, price_dec),
                    "priceChangePercent": fmt(change / open_price * 100 if open_price else 0.0, 3),
                    "weightedAvgPrice": fmt(quote / volume if volume else last, price_dec),
                    "lastPrice": fmt(last, price_dec),
                    "lastQty": "0",
                    "openPrice": fmt(open_price, price_dec),
                    "highPrice": fmt(float(series.high[lo:hi].max()), price_dec),
                    "lowPrice": fmt(float(series.low[lo:hi].min()), price_dec),
                    "volume": fmt(volume, qty_dec),
                    "quoteVolume": fmt(quote, 2),
                    "openTime": int(series.open_ms[lo]),
                    "closeTime": int(series.open_ms[hi - 1]) + step - 1,
                    "firstId": -1,
                    "lastId": -1,
                    "count": 0,
                }
            )
        return out

    def ticker_updates(self, now_ms: int) -> list[dict[str, Any]]:
        """``!ticker@arr`` items (``24hrTicker``) as of ``now_ms``, from :meth:`tickers_24h`
        (only candles closed by ``now_ms``).

        Like Binance, only symbols whose statistics changed since the previous call are sent,
        and a symbol whose recorded trading ended (after its last candle) gets none.
        """
        items: list[dict[str, Any]] = []
        for row in self.tickers_24h(now_ms):
            symbol = row["symbol"]
            until = self.history.trading_until(symbol)
            if until is None or now_ms > until:
                continue
            state = (row["closeTime"], row["lastPrice"], row["openTime"])
            if self._ticker_sent.get(symbol) == state:
                continue
            self._ticker_sent[symbol] = state
            items.append(self._ticker_item(row, now_ms))
        return items

    @staticmethod
    def _ticker_item(row: dict[str, Any], now_ms: int) -> dict[str, Any]:
        return {
            "e": "24hrTicker",
            "E": now_ms,
            "s": row["symbol"],
            "p": row["priceChange"],
            "P": row["priceChangePercent"],
            "w": row["weightedAvgPrice"],
            "c": row["lastPrice"],
            "Q": "0",
            "o": row["openPrice"],
            "h": row["highPrice"],
            "l": row["lowPrice"],
            "v": row["volume"],
            "q": row["quoteVolume"],
            "O": row["openTime"],
            "C": row["closeTime"],
            "F": -1,
            "L": -1,
            "n": 0,
            "ps": row["symbol"],
            "st": 1,
        }

    def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[list[Any]] | None:
        """``GET /fapi/v1/klines`` rows as of ``now_ms`` (Binance selection rules).

        Candles opened before ``now_ms``: the closed ones, then the forming one cut at
        ``now_ms``. With ``start_ms`` the first ``limit`` rows from it; otherwise the last
        ``limit`` rows up to ``end_ms``. An interval the files cannot make gives ``[]``.

        Raises:
            ValueError: unknown interval code.
        """
        if symbol not in self._symbol_set:
            return None
        length = interval_ms(interval)
        series = self.history.candles(symbol, interval)
        price_dec, qty_dec = self.history.decimals(symbol)
        rows: list[list[Any]] = []
        if series is not None and len(series):
            hi = int(np.searchsorted(series.open_ms, now_ms - length, side="right"))
            lo = 0
            if start_ms is not None:
                lo = int(np.searchsorted(series.open_ms, start_ms, side="left"))
            if end_ms is not None:
                hi = min(hi, int(np.searchsorted(series.open_ms, end_ms, side="right")))
            if start_ms is None:
                lo = max(lo, hi - limit)
            if hi > lo:
                rows = series.binance_rows(lo, hi, price_dec, qty_dec)
        forming_open = now_ms - now_ms % length
        if (
            forming_open < now_ms
            and (start_ms is None or forming_open >= start_ms)
            and (end_ms is None or forming_open <= end_ms)
        ):
            candle = self.history.forming(symbol, interval, forming_open, now_ms)
            if candle is not None:
                rows.append(candle_row(candle, interval, price_dec, qty_dec))
        return rows[:limit] if start_ms is not None else rows[-limit:]

    def depth(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """Kline history has no order book: always ``None``."""
        return None

    def event_passed(self, event: TimelineEvent) -> None:
        """Kline history keeps no REST state that events advance: nothing to do."""

    def depth_at(self, symbol: str, limit: int, now_ms: int | None) -> dict[str, Any] | None:
        """Kline history has no order book: always ``None``."""
        return None

    def premium_index(self, symbol: str | None, now_ms: int) -> list[dict[str, Any]]:
        """``GET /fapi/v1/premiumIndex`` rows from :meth:`mark_updates` as of ``now_ms``."""
        updates = self.mark_updates(now_ms)
        rows = []
        for sym, upd in updates.items():
            if symbol is not None and sym != symbol:
                continue
            rows.append(
                premium_index_row(
                    sym, mark=upd["p"], index=upd["i"], settle=upd["P"], funding_rate=upd["r"],
                    next_funding_ms=upd["T"], time_ms=now_ms,
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
        """Settled funding rates (funding time ≤ ``now_ms``), Binance selection rules.

        With ``start_ms`` the first ``limit`` rows from it, else the last ``limit`` rows up to
        ``end_ms``. ``markPrice`` is the mark known at the funding time ("" if none).
        """
        if symbol is not None and symbol not in self._symbol_set:
            return None
        rows: list[tuple[int, str, float]] = []
        for sym in [symbol] if symbol is not None else self.symbols:
            funding = self.history.funding.get(sym)
            if funding is None:
                continue
            for t, rate in zip(funding.time_ms.tolist(), funding.rate.tolist(), strict=True):
                if t > now_ms or (start_ms is not None and t < start_ms):
                    continue
                if end_ms is not None and t > end_ms:
                    continue
                rows.append((t, sym, rate))
        rows.sort()
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        out = []
        for t, sym, rate in rows:
            mark = self.history.mark_at(sym, t)
            out.append(
                {
                    "symbol": sym,
                    "fundingRate": fmt(rate, 8),
                    "fundingTime": t,
                    "markPrice": fmt(mark, 8) if mark is not None else "",
                }
            )
        return out


def _encode_kline(
    symbol: str,
    interval: str,
    candle: Candle,
    closed: bool,
    event_ms: int,
    price_decimals: int,
    qty_decimals: int,
) -> bytes:
    return _encode(
        kline_payload(symbol, interval, candle, closed, event_ms, price_decimals, qty_decimals)
    )
