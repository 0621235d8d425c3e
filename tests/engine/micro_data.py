"""Recorded Binance USDⓈ-M captures as decoded events, and a book synced from them (tests only).

The captures are read in place from ../shared/data with the project's own reader
(``feeds.replay.captures.CaptureFile``) and decoder (``BinanceFrameDecoder``,
``decode_depth_snapshot``). The book follows the Binance local-book procedure (FEEDS.md §1.6):
drop diffs with ``u < lastUpdateId``, the first applied diff must bracket ``lastUpdateId``, then
every diff's ``pu`` must equal the previous ``u``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.events import DepthDiff, DepthSnapshot, Liquidation, MarketEvent
from feeds.orderbook import OrderBook
from feeds.replay.captures import CaptureFrame, DepthRecord, identify

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
"""Recorded exchange data beside the repo (never copied into it)."""
HFT = SHARED_DATA / "binance-usdm" / "ws" / "hftbacktest"
"""hftbacktest raw captures (depth@0ms, bookTicker, trade, markPrice@1s in 2023)."""
BTC_2023 = (HFT / "btcusdt_20230404.dat.gz", HFT / "btcusdt_20230405.dat.gz")
"""One continuous ~8.5 min BTCUSDT session across 00:00 UTC, starting with a REST snapshot;
the local clock agrees with the exchange's within ~10 ms."""
CRYPTOFEED_WS = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
"""30 s of SUSHI/AKRO/KEEP/CTK USDT: aggTrade, depth@100ms, bookTicker, kline_1m."""
BTC_TICK = 0.1
"""BTCUSDT PRICE_FILTER tickSize (exchangeInfo 2021, unchanged since)."""

Item = tuple[int, MarketEvent]
"""(local receive time ms UTC, decoded event)."""


@functools.lru_cache(maxsize=4)
def events(*paths: Path) -> tuple[Item, ...]:
    """Every decoded event of the capture files, in recorded order (snapshots included)."""
    decoder = BinanceFrameDecoder()
    out: list[Item] = []
    for path in paths:
        capture = identify(path)
        assert capture is not None, path
        for record in capture.records():
            if isinstance(record, DepthRecord):
                out.append((record.recv_ms, decode_depth_snapshot(record.symbol, record.body,
                                                                  record.recv_ms)))
            else:
                assert isinstance(record, CaptureFrame)
                _, decoded = decoder.decode_frame(record.raw, record.recv_ms)
                out.extend((record.recv_ms, e) for e in decoded)
        assert capture.skipped_lines == 0
    return tuple(out)


class SyncedBook:
    """An :class:`OrderBook` kept in sync from a snapshot and diffs (asserts on any gap).

    Diffs received before the snapshot are buffered and replayed on it, as a live client does.
    """

    def __init__(self, symbol: str) -> None:
        self.book = OrderBook(symbol)
        self.synced = False
        self._snapshot_id: int | None = None
        self._buffer: list[DepthDiff] = []
        self.applied = 0

    def on_event(self, event: MarketEvent) -> None:
        """Feed a depth snapshot or diff of this symbol; other events are ignored."""
        if isinstance(event, DepthSnapshot) and event.symbol == self.book.symbol:
            self.book.reset(event.bids, event.asks, event.last_update_id)
            self._snapshot_id = event.last_update_id
            self.synced = False
            buffered, self._buffer = self._buffer, []
            for diff in buffered:
                self._diff(diff)
        elif isinstance(event, DepthDiff) and event.symbol == self.book.symbol:
            if self._snapshot_id is None:
                self._buffer.append(event)
            else:
                self._diff(event)

    def _diff(self, event: DepthDiff) -> None:
        assert self._snapshot_id is not None
        if event.final_update_id < self._snapshot_id:
            return
        if not self.synced:
            assert event.first_update_id <= self._snapshot_id <= event.final_update_id
            self.synced = True
        else:
            assert event.prev_final_update_id == self.book.update_id, "diff chain gap"
        self.book.apply(event.bids, event.asks, event.final_update_id)
        self.applied += 1


def replay(*paths: Path, symbol: str) -> Iterator[tuple[int, MarketEvent, SyncedBook]]:
    """``(recv ms, event, book after the event)`` over the captures."""
    book = SyncedBook(symbol)
    for recv, event in events(*paths):
        book.on_event(event)
        yield recv, event, book


DOC_FORCE_ORDER = (
    '{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1568014460893,'
    '"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910",'
    '"X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}'
)
"""WIRE-FORMAT EXAMPLE, not market data: the response example of Binance's USDⓈ-M
"Liquidation Order Streams" docs (a long liquidated), as a combined-stream frame; mirrored in
qiuham/crypto-api-docs, docs/binance/derivatives/usds-margined-futures/
websocket-market-streams/Liquidation-Order-Streams.md. ../shared holds no forceOrder data."""


def doc_liquidation(side: str, shift_ms: int) -> Liquidation:
    """:data:`DOC_FORCE_ORDER` with its side and times changed (labelled example), decoded by
    the project's decoder."""
    frame = DOC_FORCE_ORDER.replace('"S":"SELL"', f'"S":"{side}"')
    frame = frame.replace("1568014460893", str(1568014460893 + shift_ms))
    _, decoded = BinanceFrameDecoder().decode_frame(frame, 0)
    (event,) = decoded
    assert isinstance(event, Liquidation)
    return event
