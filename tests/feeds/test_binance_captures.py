"""Decode every message of the recorded Binance USDⓈ-M captures.

Counts per event type must match the per-file tables of ``shared/data/README.md``; field
values are checked against the raw JSON with an independent ``json`` + ``float`` oracle.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from feeds.binance_futures import BinanceFrameDecoder
from feeds.binance_schemas import decode_depth_snapshot
from feeds.events import BookTicker, DepthDiff, Kline, MarketEvent, MarkPrice, Trade

# shared/data/README.md §1: lines, per-type counts, REST snapshot lastUpdateId.
HFTBACKTEST = {
    "btcusdt_20230404.dat.gz": (13_384, 4_322, 6_765, 2_197, 99, 2710246765483),
    "btcusdt_20230405.dat.gz": (60_381, 11_788, 37_440, 10_738, 415, None),
    "btcusdt_20240718.gz": (11_414, 3_326, 7_113, 974, 0, 4984028384061),
    "btcusdt_20240719.gz": (60_570, 5_696, 45_147, 9_727, 0, None),
    "ethusdt_20240718.gz": (14_003, 3_273, 9_089, 1_640, 0, 4984028386786),
    "ethusdt_20240719.gz": (55_910, 5_656, 38_239, 12_015, 0, None),
}
SPOT_CHECK_EVERY = 53  # plus the first frame of every stream


def _levels(raw: list[list[str]]) -> tuple[tuple[float, float], ...]:
    return tuple((float(price), float(qty)) for price, qty in raw)


def expected_event(stream: str, data: dict[str, Any], recv_time: int) -> MarketEvent:
    """The event a frame must decode to, built straight from the parsed JSON."""
    kind = stream.split("@")[1]
    if kind.startswith("depth"):
        return DepthDiff(
            symbol=data["s"],
            first_update_id=data["U"],
            final_update_id=data["u"],
            prev_final_update_id=data["pu"],
            bids=_levels(data["b"]),
            asks=_levels(data["a"]),
            exchange_time=data["E"],
            recv_time=recv_time,
        )
    if kind == "bookTicker":
        return BookTicker(
            symbol=data["s"],
            update_id=data["u"],
            bid_price=float(data["b"]),
            bid_qty=float(data["B"]),
            ask_price=float(data["a"]),
            ask_qty=float(data["A"]),
            exchange_time=data["E"],
            recv_time=recv_time,
        )
    if kind in ("trade", "aggTrade"):
        return Trade(
            symbol=data["s"],
            trade_id=data["t" if kind == "trade" else "a"],
            price=float(data["p"]),
            quantity=float(data["q"]),
            buyer_is_maker=data["m"],
            trade_time=data["T"],
            exchange_time=data["E"],
            recv_time=recv_time,
        )
    if kind == "markPrice":
        return MarkPrice(
            symbol=data["s"],
            mark_price=float(data["p"]),
            index_price=float(data["i"]),
            funding_rate=float(data["r"]),
            next_funding_time=data["T"],
            exchange_time=data["E"],
            recv_time=recv_time,
        )
    if kind.startswith("kline_"):
        k = data["k"]
        return Kline(
            symbol=data["s"],
            interval=k["i"],
            open_time=k["t"],
            close_time=k["T"],
            open=float(k["o"]),
            high=float(k["h"]),
            low=float(k["l"]),
            close=float(k["c"]),
            volume=float(k["v"]),
            quote_volume=float(k["q"]),
            trades=k["n"],
            closed=k["x"],
            exchange_time=data["E"],
            recv_time=recv_time,
        )
    raise AssertionError(f"no oracle for {stream}")


@pytest.mark.parametrize("name", sorted(HFTBACKTEST))
def test_hftbacktest_capture_decodes_completely(name: str, hftbacktest_reader) -> None:
    lines, depth, book, trades, marks, snapshot_id = HFTBACKTEST[name]
    symbol = name.split("_")[0].upper()
    # Recorder stamps: ns in the 2024 files, µs in the 2023 .dat.gz files.
    per_ms = 1_000 if name.endswith(".dat.gz") else 1_000_000
    decoder = BinanceFrameDecoder()
    counts: Counter[str] = Counter()
    seen_streams: set[str] = set()
    prev_depth: DepthDiff | None = None
    snapshots = []
    for index, (stamp, raw) in enumerate(hftbacktest_reader(name)):
        if not raw.startswith(b'{"stream"'):
            snapshots.append(decode_depth_snapshot(symbol.lower(), raw, stamp // per_ms))
            continue
        recv_time = stamp // per_ms
        stream, events = decoder.decode_frame(raw, recv_time)
        assert len(events) == 1
        event = events[0]
        counts[type(event).__name__] += 1
        assert event.symbol == symbol and event.recv_time == recv_time
        if isinstance(event, DepthDiff):
            if prev_depth is not None:  # the recorded pu chain has no gaps
                assert event.prev_final_update_id == prev_depth.final_update_id
            prev_depth = event
        if stream not in seen_streams or index % SPOT_CHECK_EVERY == 0:
            seen_streams.add(stream)
            data = json.loads(raw)["data"]
            assert event == expected_event(stream, data, recv_time), (name, index)
    assert sum(counts.values()) + len(snapshots) == lines
    assert counts == Counter(
        {
            k: v
            for k, v in {
                "DepthDiff": depth,
                "BookTicker": book,
                "Trade": trades,
                "MarkPrice": marks,
            }.items()
            if v
        }
    )
    if snapshot_id is None:
        assert snapshots == []
    else:
        assert [s.last_update_id for s in snapshots] == [snapshot_id]
        assert len(snapshots[0].bids) == len(snapshots[0].asks) == 1000
        assert snapshots[0].symbol == symbol
        assert snapshots[0].bids[0][0] < snapshots[0].asks[0][0]  # best bid below best ask


def test_hftbacktest_snapshot_fields_match_raw_json(hftbacktest_reader) -> None:
    _stamp, raw = next(
        (s, r)
        for s, r in hftbacktest_reader("btcusdt_20240718.gz")
        if r.startswith(b'{"lastUpdateId"')
    )
    body = json.loads(raw)
    snapshot = decode_depth_snapshot("btcusdt", raw, 123)
    assert snapshot.last_update_id == body["lastUpdateId"] == 4984028384061
    assert snapshot.exchange_time == body["E"]
    assert snapshot.bids == _levels(body["bids"])
    assert snapshot.asks == _levels(body["asks"])
    assert snapshot.bids[0] == (63943.9, 46.372)  # README sample line
    assert snapshot.recv_time == 123


def test_cryptofeed_capture_decodes_completely(cryptofeed_frames) -> None:
    decoder = BinanceFrameDecoder()
    counts: Counter[str] = Counter()
    last_u: dict[str, int] = {}
    for frame in cryptofeed_frames:
        recv_time = int(frame.recv_ts * 1000)
        stream, events = decoder.decode_frame(frame.raw, recv_time)
        assert stream == frame.stream
        assert len(events) == 1
        event = events[0]
        counts[stream.split("@")[1]] += 1
        assert event == expected_event(stream, json.loads(frame.raw)["data"], recv_time)
        if isinstance(event, DepthDiff):
            if event.symbol in last_u:
                assert event.prev_final_update_id == last_u[event.symbol]
            last_u[event.symbol] = event.final_update_id
    assert len(cryptofeed_frames) == 1535
    assert counts == {"depth": 764, "bookTicker": 613, "aggTrade": 91, "kline_1m": 67}


def test_cryptofeed_kline_sample_from_readme(cryptofeed_frames) -> None:
    frame = next(f for f in cryptofeed_frames if f.recv_ts == 1626992742.2895691)
    _, (kline,) = BinanceFrameDecoder().decode_frame(frame.raw, 1)
    assert kline == Kline(
        symbol="CTKUSDT",
        interval="1m",
        open_time=1626992700000,
        close_time=1626992759999,
        open=1.01,
        high=1.011,
        low=1.01,
        close=1.011,
        volume=3917.0,
        quote_volume=3957.899,
        trades=48,
        closed=False,
        exchange_time=1626992741424,
        recv_time=1,
    )


def test_cryptofeed_rest_snapshots_sync_with_the_diffs(
    cryptofeed_snapshot_lines, cryptofeed_frames
) -> None:
    decoder = BinanceFrameDecoder()
    snapshots = {}
    for url, body in cryptofeed_snapshot_lines:
        symbol = url.split("symbol=")[1].split("&")[0]
        snapshots[symbol] = decode_depth_snapshot(symbol, body)
    assert sorted(snapshots) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    assert snapshots["SUSHIUSDT"].last_update_id == 600859605926
    assert snapshots["SUSHIUSDT"].bids[0] == (7.611, 6.0)
    # The first diff reaching each snapshot brackets it (Binance sync procedure step 5).
    bracketed = set()
    for frame in cryptofeed_frames:
        if "@depth" not in frame.stream:
            continue
        _, (diff,) = decoder.decode_frame(frame.raw, 0)
        assert isinstance(diff, DepthDiff)
        snap = snapshots[diff.symbol]
        if diff.symbol not in bracketed and diff.final_update_id >= snap.last_update_id:
            assert diff.first_update_id <= snap.last_update_id
            bracketed.add(diff.symbol)
    assert bracketed == set(snapshots)
