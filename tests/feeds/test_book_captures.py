"""Local order-book sync on the recorded Binance USDⓈ-M sessions (FEEDS.md §1.6).

Each session's frames are decoded with the adapter's decoder and fed to a
:class:`feeds.book_sync.BookKeeper`; its snapshot requests are answered with the session's
recorded REST snapshot at the point the recording received it (at once if it was received
before the request). The strong check: whenever a ``bookTicker`` carries the same update id
as the ``u`` of an applied diff, the book's best bid/ask (price and size) after that diff must
equal the ticker's. Matching by id, not by arrival, because the two streams interleave
freely; the match counts are printed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.book_sync import BookKeeper, BookTotals
from feeds.config import BookConfig
from feeds.events import BookTicker, DepthDiff, DepthSnapshot, PriceLevel
from feeds.orderbook import OrderBook
from feeds.replay.captures import Capture, CaptureFrame, DepthRecord
from tests.conftest import SHARED_DATA

WS = SHARED_DATA / "binance-usdm" / "ws"
HFT = WS / "hftbacktest"
SESSIONS: dict[str, tuple[Path, ...]] = {
    "btc-2023": (HFT / "btcusdt_20230404.dat.gz", HFT / "btcusdt_20230405.dat.gz"),
    "btc-2024": (HFT / "btcusdt_20240718.gz", HFT / "btcusdt_20240719.gz"),
    "eth-2024": (HFT / "ethusdt_20240718.gz", HFT / "ethusdt_20240719.gz"),
    "cryptofeed": (WS / "cryptofeed" / "BINANCE_FUTURES.ws.1.0",),
}
# Id coincidences between bookTicker and diff ``u`` found in each session (all must match);
# the floor keeps the check meaningful should the pairing ever silently break.
MIN_TICKER_MATCHES = {"btc-2023": 1000, "btc-2024": 500, "eth-2024": 500, "cryptofeed": 40}

Event = DepthDiff | BookTicker | DepthSnapshot
Top = tuple[PriceLevel | None, PriceLevel | None]


def load_session(files: Iterable[Path]) -> list[Event]:
    """Depth diffs, bookTickers and REST snapshots of ``files``, in recorded order."""
    decoder = BinanceFrameDecoder()
    out: list[Event] = []
    for path in files:
        capture = Capture(path).files[0]
        records: Iterable[CaptureFrame | DepthRecord] = heapq.merge(
            capture.frames(), capture.depth_snapshots(), key=lambda r: r.recv_ms
        )
        for record in records:
            if isinstance(record, DepthRecord):
                out.append(decode_depth_snapshot(record.symbol, record.body, record.recv_ms))
                continue
            if "@depth" not in record.stream and "@bookTicker" not in record.stream:
                continue
            _, events = decoder.decode_frame(record.raw, record.recv_ms)
            out.extend(e for e in events if isinstance(e, DepthDiff | BookTicker))
    return out


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[Event]]:
    """Every session decoded once for the module."""
    return {name: load_session(files) for name, files in SESSIONS.items()}


@dataclass
class Replayer:
    """Feeds a session to a BookKeeper, answering snapshot requests from the recording.

    A request is answered with the symbol's recorded snapshot when the recording reaches it,
    or right after the current event if the recording already passed it. ``answer`` may
    override the snapshot served (tests hand in stale or rebuilt ones).
    """

    config: BookConfig = field(default_factory=BookConfig)
    now_ms: int = 0
    requests: list[str] = field(default_factory=list)
    answer: Callable[[str], DepthSnapshot | None] | None = None
    after_diff: dict[tuple[str, int], Top] = field(default_factory=dict)
    tickers: dict[tuple[str, int], Top] = field(default_factory=dict)
    unsynced_after_sync: int = 0
    keeper: BookKeeper = field(init=False)
    _waiting: set[str] = field(default_factory=set)
    _seen: dict[str, DepthSnapshot] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keeper = BookKeeper(self.config, self._request, lambda: self.now_ms)

    def _request(self, symbol: str) -> None:
        self.requests.append(symbol)
        self._waiting.add(symbol)

    def _serve(self) -> None:
        for symbol in list(self._waiting):
            snap = self.answer(symbol) if self.answer else self._seen.get(symbol)
            if snap is not None:
                self._waiting.discard(symbol)
                self.keeper.on_snapshot(snap)

    def feed(self, events: Iterable[Event]) -> None:
        keeper = self.keeper
        ever_synced: set[str] = set()
        for event in events:
            if isinstance(event, DepthSnapshot):
                self._seen[event.symbol] = event
            elif isinstance(event, DepthDiff):
                self.now_ms = max(self.now_ms, event.recv_time)
                if event.symbol not in keeper.tracked():
                    keeper.track(event.symbol)
                keeper.on_diff(event)
                book = keeper.book(event.symbol)
                if book is not None:
                    ever_synced.add(event.symbol)
                    self.after_diff[(event.symbol, book.update_id)] = (
                        book.best_bid(),
                        book.best_ask(),
                    )
                elif event.symbol in ever_synced:
                    self.unsynced_after_sync += 1
            else:
                self.tickers[(event.symbol, event.update_id)] = (
                    (event.bid_price, event.bid_qty),
                    (event.ask_price, event.ask_qty),
                )
            if self._waiting:
                self._serve()

    def ticker_matches(self) -> tuple[int, list[tuple[str, int]]]:
        """(ids seen in both a bookTicker and a diff's ``u``, those whose top differs)."""
        common = self.after_diff.keys() & self.tickers.keys()
        return len(common), sorted(k for k in common if self.after_diff[k] != self.tickers[k])


def diffs_of(events: list[Event], symbol: str) -> list[DepthDiff]:
    return [e for e in events if isinstance(e, DepthDiff) and e.symbol == symbol]


def snapshot_of(book: OrderBook) -> DepthSnapshot:
    """A REST-style snapshot of a synced book (rebuilt from the recorded session)."""
    return DepthSnapshot(
        symbol=book.symbol,
        last_update_id=book.update_id,
        bids=tuple(book.bids()),
        asks=tuple(book.asks()),
        exchange_time=0,
    )


@pytest.mark.parametrize("name", list(SESSIONS))
def test_session_stays_synced_and_matches_book_ticker(
    sessions: dict[str, list[Event]], name: str
) -> None:
    events = sessions[name]
    replay = Replayer()
    replay.feed(events)
    keeper = replay.keeper
    symbols = {e.symbol for e in events if isinstance(e, DepthDiff)}

    assert keeper.tracked() == symbols
    n = len(symbols)
    assert keeper.totals() == BookTotals(books=n, synced=n, resyncing=0, resyncs=0, gaps=0)
    for symbol in symbols:
        info = keeper.info(symbol)
        assert (info.state, info.resyncs, info.gaps, info.crossed, info.stale_snapshots) == (
            "synced",
            0,
            0,
            0,
            0,
        ), info
    assert sorted(replay.requests) == sorted(symbols)  # one snapshot per symbol, never again
    assert replay.unsynced_after_sync == 0
    # Every diff was either older than the snapshot (step 4) or applied: none skipped.
    syncs = [keeper.sync(s) for s in symbols]
    total = sum(1 for e in events if isinstance(e, DepthDiff))
    assert sum(s.applied + s.dropped_before_snapshot for s in syncs if s) == total
    assert all(s and s.buffered == 0 and s.dropped_before_snapshot < 50 for s in syncs)
    common, mismatched = replay.ticker_matches()
    print(f"{name}: {common} bookTicker/diff id coincidences, {len(mismatched)} mismatches")
    assert mismatched == []
    assert common >= MIN_TICKER_MATCHES[name]


def test_book_after_sync_equals_snapshot_plus_bridging_diff_trimmed(
    sessions: dict[str, list[Event]],
) -> None:
    """Right after sync the book is the snapshot with the bridging diff applied, cut to
    ``max_levels`` per side; checked against a plain-dict reference merge."""
    events = sessions["btc-2024"]
    snap = next(e for e in events if isinstance(e, DepthSnapshot))
    diffs = diffs_of(events, "BTCUSDT")
    bridge = next(d for d in diffs if d.first_update_id <= snap.last_update_id <= d.final_update_id)
    replay = Replayer(config=BookConfig(max_levels=50))
    replay.feed(events[: events.index(snap) + 1])
    book = replay.keeper.book("BTCUSDT")
    assert book is not None and book.update_id == bridge.final_update_id

    bids = {p: q for p, q in snap.bids}
    asks = {p: q for p, q in snap.asks}
    for side, levels in ((bids, bridge.bids), (asks, bridge.asks)):
        for price, size in levels:
            if size:
                side[price] = size
            else:
                side.pop(price, None)
    want_bids = sorted(bids.items(), reverse=True)[:50]
    want_asks = sorted(asks.items())[:50]
    assert book.bids() == want_bids and book.asks() == want_asks
    assert book.bid_levels == book.ask_levels == 50
    # The untouched snapshot levels really are the snapshot's (same objects, same order).
    assert book.bids(10)[-1] in snap.bids and book.asks(10)[-1] in snap.asks


def test_dropped_diff_is_a_gap_at_the_next_diff_and_a_rebuilt_snapshot_resyncs(
    sessions: dict[str, list[Event]],
) -> None:
    events = sessions["btc-2024"]
    reference = Replayer()
    reference.feed(events)
    synced_at = next(
        i for i, e in enumerate(events) if isinstance(e, DepthSnapshot)
    )  # btc-2024: the bridging diff precedes the snapshot line, so sync happens here
    diff_positions = [i for i, e in enumerate(events) if isinstance(e, DepthDiff) and i > synced_at]
    lost = diff_positions[100]
    nxt = diff_positions[101]
    later = diff_positions[140]
    # A snapshot as of a later diff, rebuilt from the intact session's book.
    rebuild = Replayer()
    rebuild.feed(events[: later + 1])
    book_later = rebuild.keeper.book("BTCUSDT")
    assert book_later is not None
    later_snapshot = snapshot_of(book_later)

    replay = Replayer()
    replay.feed(events[:lost])
    assert replay.keeper.info("BTCUSDT").state == "synced"
    replay.feed(events[lost + 1 : nxt])  # the bookTickers in between, no diff
    assert replay.keeper.info("BTCUSDT").state == "synced"
    replay.answer = lambda symbol: None  # the snapshot is "in flight"
    replay.feed([events[nxt]])
    info = replay.keeper.info("BTCUSDT")
    assert (info.state, info.gaps, info.resyncs) == ("resyncing", 1, 1)
    assert info.last_reason.startswith("gap: pu ")
    assert replay.requests == ["BTCUSDT", "BTCUSDT"]
    assert replay.keeper.book("BTCUSDT") is None
    assert replay.keeper.totals().gaps == 1

    # Diffs keep being buffered; the later snapshot arrives once its diff has been buffered.
    replay.feed(events[nxt + 1 : later + 1])
    assert replay.keeper.info("BTCUSDT").state == "resyncing"
    assert replay.requests == ["BTCUSDT", "BTCUSDT"]  # no request storm while waiting
    replay._waiting.clear()  # answered by hand
    replay.keeper.on_snapshot(later_snapshot)
    info = replay.keeper.info("BTCUSDT")
    assert (info.state, info.update_id) == ("synced", later_snapshot.last_update_id)
    replay.feed(events[later + 1 :])
    final, want = replay.keeper.book("BTCUSDT"), reference.keeper.book("BTCUSDT")
    assert final is not None and want is not None
    assert (final.update_id, final.bids(200), final.asks(200)) == (
        want.update_id,
        want.bids(200),
        want.asks(200),
    )
    common, mismatched = replay.ticker_matches()
    assert common > 400 and mismatched == []
    assert replay.keeper.info("BTCUSDT").gaps == 1


def test_stale_snapshot_is_rejected_counted_and_rerequested_after_delay(
    sessions: dict[str, list[Event]],
) -> None:
    events = sessions["eth-2024"]
    snap = next(e for e in events if isinstance(e, DepthSnapshot))
    diffs = diffs_of(events, "ETHUSDT")
    # Start listening one diff after the snapshot's follower: the diff that would bridge it
    # (U <= id <= u, or pu == id) was never heard.
    start = next(i for i, d in enumerate(diffs) if d.prev_final_update_id > snap.last_update_id)
    replay = Replayer(config=BookConfig(resync_delay_s=2.0))
    replay.answer = lambda symbol: None
    replay.feed(diffs[start : start + 5])
    assert replay.requests == ["ETHUSDT"]
    replay.keeper.on_snapshot(snap)
    info = replay.keeper.info("ETHUSDT")
    assert (info.state, info.stale_snapshots, info.resyncs) == ("resyncing", 1, 0)
    assert info.last_reason.startswith("stale snapshot: lastUpdateId 4984028386786")

    # Held back for resync_delay_s (2 s of recorded time), then re-requested on the next diff.
    t0 = diffs[start + 4].recv_time
    i = start + 5
    while diffs[i].recv_time < t0 + 2000:
        replay.feed([diffs[i]])
        assert replay.requests == ["ETHUSDT"], f"re-requested early at diff {i}"
        i += 1
    replay.feed([diffs[i]])
    assert replay.requests == ["ETHUSDT", "ETHUSDT"]
    # A snapshot rebuilt from the intact session at a buffered diff syncs the book.
    rebuild = Replayer()
    rebuild.feed(events[: events.index(diffs[i - 3]) + 1])
    book = rebuild.keeper.book("ETHUSDT")
    assert book is not None
    replay.keeper.on_snapshot(snapshot_of(book))
    assert replay.keeper.info("ETHUSDT").state == "synced"
    assert replay.keeper.book("ETHUSDT") is not None


def test_snapshot_taken_between_two_diffs_bridges_on_pu(
    sessions: dict[str, list[Event]],
) -> None:
    """A snapshot whose ``lastUpdateId`` is exactly the ``u`` of a diff the stream sent before
    the buffer began: the next diff has ``U > lastUpdateId`` but ``pu == lastUpdateId``, so
    nothing is missing in between (ccxt's futures rule); it must bridge, not count as stale."""
    events = sessions["btc-2024"]
    synced_at = next(i for i, e in enumerate(events) if isinstance(e, DepthSnapshot))
    diffs = [i for i, e in enumerate(events) if isinstance(e, DepthDiff) and i > synced_at]
    cut, resume = diffs[200], diffs[201]
    rebuild = Replayer()
    rebuild.feed(events[: cut + 1])
    book_at_cut = rebuild.keeper.book("BTCUSDT")
    assert book_at_cut is not None
    snap = snapshot_of(book_at_cut)
    first = events[resume]
    assert isinstance(first, DepthDiff)
    assert first.first_update_id > snap.last_update_id == first.prev_final_update_id

    replay = Replayer(answer=lambda symbol: snap)
    replay.feed(events[resume:])
    info = replay.keeper.info("BTCUSDT")
    assert (info.state, info.stale_snapshots, info.gaps, info.resyncs) == ("synced", 0, 0, 0)
    reference = Replayer()
    reference.feed(events)
    got, want = replay.keeper.book("BTCUSDT"), reference.keeper.book("BTCUSDT")
    assert got is not None and want is not None
    assert got.bids(200) == want.bids(200) and got.asks(200) == want.asks(200)
