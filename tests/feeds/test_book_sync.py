"""BookKeeper / BookSync state machine on the recorded cryptofeed capture (4 symbols, 30 s).

The whole-session checks live in ``test_book_captures.py``; these cover the API contract:
tracking, dropped input counted, change versions, totals, overflow, crossed books, duplicate
diffs, held-back re-requests and failed snapshots.
"""

from __future__ import annotations

import msgspec
import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.book_sync import BookKeeper, BookTotals
from feeds.config import BookConfig
from feeds.events import DepthDiff, DepthSnapshot
from feeds.replay.captures import Capture
from tests.conftest import SHARED_DATA

Recorded = tuple[dict[str, list[DepthDiff]], dict[str, DepthSnapshot]]
"""Diffs per symbol and each symbol's REST snapshot."""
CAPTURE = SHARED_DATA / "binance-usdm" / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Diffs per symbol (recorded order) and each symbol's recorded REST snapshot."""
    capture = Capture(CAPTURE)
    decoder = BinanceFrameDecoder()
    diffs: dict[str, list[DepthDiff]] = {}
    for frame in capture.frames():
        if "@depth" in frame.stream:
            for event in decoder.decode_frame(frame.raw, frame.recv_ms)[1]:
                assert isinstance(event, DepthDiff)
                diffs.setdefault(event.symbol, []).append(event)
    snaps = {
        r.symbol: decode_depth_snapshot(r.symbol, r.body, r.recv_ms)
        for r in capture.depth_snapshots()
    }
    return diffs, snaps


class Harness:
    def __init__(self, config: BookConfig | None = None) -> None:
        self.now = 0
        self.requests: list[str] = []
        self.keeper = BookKeeper(config or BookConfig(), self.requests.append, lambda: self.now)


def synced(
    recorded: Recorded,
    symbol: str,
    harness: Harness | None = None,
) -> tuple[Harness, list[DepthDiff]]:
    """A harness with ``symbol`` synced from its recorded snapshot; returns the diffs left."""
    diffs, snaps = recorded
    h = harness or Harness()
    h.keeper.track(symbol)
    snap = snaps[symbol]
    seq = diffs[symbol]
    bridge = next(
        i
        for i, d in enumerate(seq)
        if d.first_update_id <= snap.last_update_id <= d.final_update_id
    )
    for diff in seq[: bridge + 1]:
        h.keeper.on_diff(diff)
    h.keeper.on_snapshot(snap)
    assert h.keeper.info(symbol).state == "synced"
    return h, seq[bridge + 1 :]


def test_untracked_input_is_counted_and_dropped(recorded: Recorded) -> None:
    diffs, snaps = recorded
    h = Harness()
    h.keeper.on_diff(diffs["SUSHIUSDT"][0])
    h.keeper.on_snapshot(snaps["SUSHIUSDT"])
    assert (h.keeper.untracked_diffs, h.keeper.untracked_snapshots) == (1, 1)
    assert h.keeper.info("SUSHIUSDT") == msgspec.structs.replace(h.keeper.info("X"), state="none")
    assert h.keeper.book("SUSHIUSDT") is None and h.requests == []


def test_first_diff_requests_one_snapshot_and_buffers(recorded: Recorded) -> None:
    diffs, _ = recorded
    h = Harness()
    h.keeper.track("sushiusdt")
    assert h.keeper.tracked() == frozenset({"SUSHIUSDT"}) and h.requests == []
    for diff in diffs["SUSHIUSDT"][:5]:
        h.keeper.on_diff(diff)
    assert h.requests == ["SUSHIUSDT"]
    info = h.keeper.info("SUSHIUSDT")
    assert (info.state, info.update_id) == ("resyncing", 0)
    assert h.keeper.book("SUSHIUSDT") is None
    sync = h.keeper.sync("SUSHIUSDT")
    assert sync is not None and sync.buffered == 5
    assert h.keeper.totals() == BookTotals(books=1, synced=0, resyncing=1, resyncs=0, gaps=0)


def test_snapshot_nobody_waits_for_is_ignored(recorded: Recorded) -> None:
    _, snaps = recorded
    h, _ = synced(recorded, "AKROUSDT")
    before = h.keeper.info("AKROUSDT")
    h.keeper.on_snapshot(snaps["AKROUSDT"])
    sync = h.keeper.sync("AKROUSDT")
    assert sync is not None and sync.ignored_snapshots == 1
    assert h.keeper.info("AKROUSDT") == before


def test_versions_list_only_books_that_changed(recorded: Recorded) -> None:
    h, sushi_rest = synced(recorded, "SUSHIUSDT")
    h, ctk_rest = synced(recorded, "CTKUSDT", h)
    v0 = h.keeper.version
    assert h.keeper.changed_since(v0) == []
    for diff in sushi_rest[:3]:
        h.keeper.on_diff(diff)
    assert h.keeper.changed_since(v0) == ["SUSHIUSDT"]
    v1 = h.keeper.version
    assert v1 == v0 + 3 and h.keeper.version_of("SUSHIUSDT") == v1
    h.keeper.on_diff(ctk_rest[0])
    assert h.keeper.changed_since(v1) == ["CTKUSDT"]
    assert h.keeper.changed_since(v0) == ["CTKUSDT", "SUSHIUSDT"]
    assert h.keeper.totals() == BookTotals(books=2, synced=2, resyncing=0, resyncs=0, gaps=0)
    h.keeper.untrack("CTKUSDT")
    assert h.keeper.changed_since(v0) == ["SUSHIUSDT"]
    assert h.keeper.totals().books == 1 and h.keeper.info("CTKUSDT").state == "none"
    h.keeper.on_diff(ctk_rest[1])
    assert h.keeper.untracked_diffs == 1


def test_duplicate_diff_after_sync_is_a_gap(recorded: Recorded) -> None:
    h, rest = synced(recorded, "KEEPUSDT")
    h.keeper.on_diff(rest[0])
    h.keeper.on_diff(rest[0])  # replayed: pu != current u
    info = h.keeper.info("KEEPUSDT")
    assert (info.state, info.gaps, info.resyncs) == ("resyncing", 1, 1)
    assert h.requests == ["KEEPUSDT", "KEEPUSDT"]
    assert h.keeper.totals() == BookTotals(books=1, synced=0, resyncing=1, resyncs=1, gaps=1)


def test_buffer_overflow_restarts_without_a_request_storm(recorded: Recorded) -> None:
    diffs, _ = recorded
    h = Harness(BookConfig(max_buffered_diffs=10))
    h.keeper.track("SUSHIUSDT")
    for diff in diffs["SUSHIUSDT"][:25]:
        h.keeper.on_diff(diff)
    info = h.keeper.info("SUSHIUSDT")
    sync = h.keeper.sync("SUSHIUSDT")
    assert sync is not None
    assert (info.state, info.resyncs, sync.overflows) == ("resyncing", 2, 2)
    assert info.last_reason == "buffer overflow: more than 10 diffs"
    assert sync.buffered <= 10
    assert h.requests == ["SUSHIUSDT"]  # the pending request is kept, not repeated


def test_crossed_book_resyncs(recorded: Recorded) -> None:
    """A snapshot mixed up between symbols (AKRO's levels under SUSHI's id) crosses the book
    at the first SUSHI diff; it must be caught, not shown."""
    diffs, snaps = recorded
    wrong = msgspec.structs.replace(
        snaps["SUSHIUSDT"], bids=snaps["AKROUSDT"].bids, asks=snaps["AKROUSDT"].asks
    )
    h = Harness()
    h.keeper.track("SUSHIUSDT")
    seq = diffs["SUSHIUSDT"]
    bridge = next(
        i
        for i, d in enumerate(seq)
        if d.first_update_id <= wrong.last_update_id <= d.final_update_id
    )
    for diff in seq[: bridge + 1]:
        h.keeper.on_diff(diff)
    h.keeper.on_snapshot(wrong)
    info = h.keeper.info("SUSHIUSDT")
    assert (info.state, info.crossed, info.resyncs) == ("resyncing", 1, 1)
    assert info.last_reason.startswith("crossed book")
    assert h.keeper.book("SUSHIUSDT") is None
    assert h.requests == ["SUSHIUSDT", "SUSHIUSDT"]


def test_stale_rerequest_waits_for_delay_even_without_diffs(recorded: Recorded) -> None:
    diffs, snaps = recorded
    h = Harness(BookConfig(resync_delay_s=1.5))
    h.keeper.track("CTKUSDT")
    snap = snaps["CTKUSDT"]
    newer = [d for d in diffs["CTKUSDT"] if d.prev_final_update_id > snap.last_update_id]
    h.keeper.on_diff(newer[0])
    h.keeper.on_snapshot(snap)
    assert h.keeper.info("CTKUSDT").stale_snapshots == 1
    h.now = 1499
    h.keeper.poll()
    assert h.requests == ["CTKUSDT"]
    h.now = 1500
    h.keeper.poll()
    assert h.requests == ["CTKUSDT", "CTKUSDT"]


def test_failed_snapshot_keeps_resyncing_with_reason(recorded: Recorded) -> None:
    diffs, snaps = recorded
    h = Harness()
    h.keeper.track("AKROUSDT")
    h.keeper.on_diff(diffs["AKROUSDT"][0])
    h.keeper.on_snapshot_failed("AKROUSDT", "HTTP 503")
    info = h.keeper.info("AKROUSDT")
    assert (info.state, info.last_reason) == ("resyncing", "snapshot failed: HTTP 503")
    assert h.requests == ["AKROUSDT"]  # the fetcher retries, not the keeper
    for diff in diffs["AKROUSDT"][1:]:
        h.keeper.on_diff(diff)
    h.keeper.on_snapshot(snaps["AKROUSDT"])  # the retry's answer
    assert h.keeper.info("AKROUSDT").state == "synced"
