"""CandleStore on recorded Binance USDⓈ-M klines: ring buffers, forming/closed rules,
higher-timeframe aggregation at UTC boundaries, and continuing a backfilled forming candle."""

from __future__ import annotations

import numpy as np
import pytest
from engine_data import (
    BASES_WITH_1H,
    aggregate,
    arrays,
    as_kline,
    assert_arrays_equal,
    frame,
    klines,
    rows,
)

from engine.candles import CandleStore
from engine.config import TimeframeConfig
from feeds.intervals import interval_ms

HOUR = 3_600_000
FOUR_HOURS = 4 * HOUR


def store_for(
    timeframes: list[str], streamed: set[str], bars: int = 1000, base: str | None = None
) -> CandleStore:
    cfg = TimeframeConfig(timeframes=timeframes, history_bars=dict.fromkeys(timeframes, bars))
    return CandleStore(cfg, base or min(streamed, key=interval_ms), streamed)


@pytest.mark.parametrize("base", ["BTC", "ETH", "DOGE", "YFI", "ZIL"])
def test_1h_built_from_5m_stream_equals_recorded_1h(base: str) -> None:
    assert base in BASES_WITH_1H
    symbol = f"{base}USDT"
    five = frame(base, "5m")
    store = store_for(["5m", "1h", "4h"], {"5m"}, bars=2000)
    closed_1h = 0
    for k in klines(five, symbol, "5m"):
        closed_1h += ("1h" in {tf for _, tf in store.apply(k)})
    built = store.arrays(symbol, "1h")
    recorded = arrays(frame(base, "1h"))
    # The recorded 5m stream starts mid-hour (12:35 or 23:30): that hour is skipped, never
    # fabricated from part of its candles; the first built hour is the next full one.
    first_5m = int(five["open_time"][0])
    assert first_5m % HOUR != 0
    assert built.open_time[0] == first_5m - first_5m % HOUR + HOUR
    assert store.counters(symbol, "1h").partial_periods == 1  # type: ignore[union-attr]
    common, gi, ri = np.intersect1d(built.open_time, recorded.open_time, return_indices=True)
    assert common.shape[0] == recorded.open_time.shape[0] >= 700
    sub_built = type(built).from_columns(*(getattr(built, c)[gi] for c in _COLS))
    sub_rec = type(recorded).from_columns(*(getattr(recorded, c)[ri] for c in _COLS))
    assert_arrays_equal(sub_built, sub_rec, volume_rtol=1e-9)
    assert closed_1h == len(built)
    assert store.counters(symbol, "1h").gaps == 0  # type: ignore[union-attr]


_COLS = ("open_time", "open", "high", "low", "close", "volume")


@pytest.mark.parametrize("base", ["BTC", "TRX", "XMR"])
def test_4h_built_from_5m_opens_on_utc_4h_boundaries(base: str) -> None:
    symbol = f"{base}USDT"
    five = frame(base, "5m")
    store = store_for(["5m", "4h"], {"5m"}, bars=2000)
    for k in klines(five, symbol, "5m"):
        store.apply(k)
    built = store.arrays(symbol, "4h")
    assert len(built) >= 170
    assert np.all(built.open_time % FOUR_HOURS == 0)
    hours = set(((built.open_time // HOUR) % 24).tolist())
    assert hours == {0, 4, 8, 12, 16, 20}
    reference = arrays(aggregate(five, "4h", "5m"))
    assert_arrays_equal(built, reference, volume_rtol=1e-9)
    # The forming 4h candle covers the 5m candles after the last closed 4h period.
    forming = store.forming(symbol, "4h")
    assert forming is not None
    tail = five.filter(five["open_time"] >= forming[0])
    assert forming[0] == built.open_time[-1] + FOUR_HOURS
    assert forming[1:5] == (
        tail["open"][0], tail["high"].max(), tail["low"].min(), tail["close"][-1]
    )
    assert forming[5] == pytest.approx(tail["volume"].sum(), rel=1e-12)


def test_forming_upsert_then_close_from_real_1m_states() -> None:
    # Real intra-candle states of a 5m candle: the cumulative 1m candles inside it.
    symbol = "ETHUSDT"
    five = rows(frame("ETH", "5m"))
    ones = frame("ETH", "1m")
    store = store_for(["5m"], {"5m"})
    for row in five[:20]:
        store.apply(as_kline(row, symbol, "5m", closed=True))
    target = five[20]
    minutes = rows(ones.filter((ones["open_time"] >= target[0])
                               & (ones["open_time"] < target[0] + 300_000)))
    assert len(minutes) == 5
    for m in range(1, 6):
        part = minutes[:m]
        state = (target[0], part[0][1], max(r[2] for r in part), min(r[3] for r in part),
                 part[-1][4], sum(r[5] for r in part))
        stamp = target[0] + m * 60_000 - 1
        assert store.apply(as_kline(state, symbol, "5m", closed=False, exchange_time=stamp)) == []
        assert store.closed_count(symbol, "5m") == 20  # upsert, never append
        assert store.forming(symbol, "5m") == state
        series = store.series(symbol, "5m", limit=10)
        assert series is not None and series.forming_included and len(series.close) == 10
        assert series.close[-1] == state[4] and series.open_time[-1] == target[0]
    # An older forming update (earlier event time) is ignored and counted.
    first = (target[0], minutes[0][1], minutes[0][2], minutes[0][3], minutes[0][4], minutes[0][5])
    store.apply(as_kline(first, symbol, "5m", closed=False, exchange_time=target[0] + 59_999))
    assert store.forming(symbol, "5m")[4] == minutes[-1][4]  # type: ignore[index]
    assert store.counters(symbol, "5m").out_of_order == 1  # type: ignore[union-attr]
    # x=true: the candle closes with the recorded 5m values (volume: sum of 1m floats).
    assert store.apply(as_kline(target, symbol, "5m", closed=True)) == [(symbol, "5m")]
    assert store.forming(symbol, "5m") is None
    got = store.arrays(symbol, "5m")
    assert len(got) == 21 and got.close[-1] == target[4] and got.high[-1] == target[2]


def test_duplicate_closed_is_idempotent_and_older_klines_are_ignored() -> None:
    symbol = "BTCUSDT"
    five = rows(frame("BTC", "5m"))
    store = store_for(["5m"], {"5m"})
    for row in five[:30]:
        assert store.apply(as_kline(row, symbol, "5m", closed=True)) == [(symbol, "5m")]
    before = store.arrays(symbol, "5m")
    # x=true of the last candle again: nothing changes, nothing recomputes.
    assert store.apply(as_kline(five[29], symbol, "5m", closed=True)) == []
    # Older closed and forming klines: ignored, counted.
    assert store.apply(as_kline(five[10], symbol, "5m", closed=True)) == []
    assert store.apply(as_kline(five[29], symbol, "5m", closed=False)) == []
    after = store.arrays(symbol, "5m")
    assert_arrays_equal(after, before)
    c = store.counters(symbol, "5m")
    assert c is not None
    assert (c.duplicates, c.out_of_order, c.gaps) == (1, 2, 0)
    assert store.forming(symbol, "5m") is None


def test_gap_is_counted_and_candle_appended() -> None:
    symbol = "ADAUSDT"
    five = rows(frame("ADA", "5m"))
    store = store_for(["5m"], {"5m"})
    for row in five[:10] + five[13:20]:
        store.apply(as_kline(row, symbol, "5m", closed=True))
    got = store.arrays(symbol, "5m")
    assert len(got) == 17 and got.open_time[10] == five[13][0]
    assert store.counters(symbol, "5m").gaps == 1  # type: ignore[union-attr]


def test_newer_candle_closes_a_forming_candle_that_missed_x_true() -> None:
    symbol = "BTCUSDT"
    five = rows(frame("BTC", "5m"))
    store = store_for(["5m", "15m"], {"5m"})
    for row in five[:9]:  # 12:35 .. 13:15
        store.apply(as_kline(row, symbol, "5m", closed=True))
    store.apply(as_kline(five[9], symbol, "5m", closed=False))
    # The next candle's first update arrives; x=true for five[9] never came.
    closed = store.apply(as_kline(five[10], symbol, "5m", closed=False))
    assert (symbol, "5m") in closed
    c = store.counters(symbol, "5m")
    assert c is not None and c.implicit_closes == 1
    assert store.arrays(symbol, "5m").open_time[-1] == five[9][0]
    # The late x=true with the same values is a duplicate: idempotent.
    assert store.apply(as_kline(five[9], symbol, "5m", closed=True)) == []


def test_ring_buffer_keeps_the_last_capacity_candles() -> None:
    symbol = "DOTUSDT"
    df = frame("DOT", "5m")
    store = store_for(["5m"], {"5m"}, bars=50)
    for k in klines(df.head(173), symbol, "5m"):
        store.apply(k)
    assert_arrays_equal(store.arrays(symbol, "5m"), arrays(df.slice(123, 50)))
    series = store.series(symbol, "5m", limit=500)
    assert series is not None and len(series.open_time) == 50 and not series.forming_included


def test_view_reads_the_ring_in_place_and_arrays_copy_it() -> None:
    symbol = "DOTUSDT"
    df = frame("DOT", "5m")
    store = store_for(["5m"], {"5m"}, bars=50)
    rows = klines(df.head(174), symbol, "5m")
    for k in rows[:173]:
        store.apply(k)
    view, copy = store.view(symbol, "5m"), store.arrays(symbol, "5m")
    assert_arrays_equal(view, arrays(df.slice(123, 50)))
    assert_arrays_equal(copy, view)
    assert np.shares_memory(view.close, store.view(symbol, "5m").close)
    assert not np.shares_memory(copy.close, view.close)
    assert all(c.flags.c_contiguous for c in (view.open, view.high, view.low, view.close))
    store.apply(rows[173])  # the copy keeps its candles; a new view has the new one
    assert_arrays_equal(copy, arrays(df.slice(123, 50)))
    assert_arrays_equal(store.view(symbol, "5m"), arrays(df.slice(124, 50)))
    assert len(store.view("NOPEUSDT", "5m")) == 0


def test_history_merges_by_open_time_and_stream_continues() -> None:
    symbol = "LTCUSDT"
    df = frame("LTC", "5m")
    store = store_for(["5m"], {"5m"}, bars=400)
    store.load_history(symbol, "5m", klines(df.slice(100, 100), symbol, "5m"))
    store.load_history(symbol, "5m", klines(df.slice(0, 150), symbol, "5m"))  # older + overlap
    assert_arrays_equal(store.arrays(symbol, "5m"), arrays(df.slice(0, 200)))
    last_forming = as_kline(rows(df)[200], symbol, "5m", closed=False)
    store.load_history(symbol, "5m", [*klines(df.slice(150, 50), symbol, "5m"), last_forming])
    assert store.forming(symbol, "5m") == rows(df)[200]
    for k in klines(df.slice(200, 10), symbol, "5m"):
        store.apply(k)
    assert_arrays_equal(store.arrays(symbol, "5m"), arrays(df.slice(0, 210)))
    c = store.counters(symbol, "5m")
    assert c is not None and c.gaps == 0 and c.out_of_order == 0


@pytest.mark.parametrize("k", [3, 7, 11])
@pytest.mark.parametrize("with_as_of", [True, False])
def test_backfilled_forming_1h_is_continued_without_double_counting(
    k: int, with_as_of: bool
) -> None:
    base, symbol = "BTC", "BTCUSDT"
    five, hour = frame(base, "5m"), frame(base, "1h")
    h_open = int(hour["open_time"][100])
    five_rows = rows(five)
    first = next(i for i, r in enumerate(five_rows) if r[0] == h_open)
    in_hour = five_rows[first : first + 12]
    store = store_for(["5m", "1h"], {"5m"})
    # REST backfill taken while 5m candle k of the hour was forming (its recorded final state).
    store.load_history(
        symbol,
        "5m",
        [*[as_kline(r, symbol, "5m", closed=True) for r in five_rows[first - 300 : first + k]],
         as_kline(in_hour[k], symbol, "5m", closed=False)],
    )
    part = in_hour[: k + 1]
    forming_1h = (h_open, part[0][1], max(r[2] for r in part), min(r[3] for r in part),
                  part[-1][4], sum(r[5] for r in part))
    history_1h = [as_kline(r, symbol, "1h", closed=True) for r in rows(hour)[60:100]]
    as_of = in_hour[k][0] + 123_456 if with_as_of else None
    store.load_history(
        symbol, "1h", [*history_1h, as_kline(forming_1h, symbol, "1h", closed=False)], as_of=as_of
    )
    assert store.forming(symbol, "1h") == forming_1h
    # The stream then repeats candle k's final update and closes it: already counted.
    store.apply(as_kline(in_hour[k], symbol, "5m", closed=False))
    assert store.forming(symbol, "1h")[5] == pytest.approx(forming_1h[5])  # type: ignore[index]
    closed_1h = []
    for i, r in enumerate(in_hour[k:], start=k):
        if i > k:
            store.apply(as_kline(r, symbol, "5m", closed=False))
            view = store.forming(symbol, "1h")
            assert view is not None
            assert view[5] == pytest.approx(sum(x[5] for x in in_hour[: i + 1]), rel=1e-12)
        closed_1h += store.apply(as_kline(r, symbol, "5m", closed=True))
    assert closed_1h == [(symbol, "5m")] * (12 - k - 1) + [(symbol, "5m"), (symbol, "1h")]
    got = store.arrays(symbol, "1h")
    assert got.open_time[-1] == h_open and len(got) == 41
    recorded = rows(hour)[100]
    assert (got.open[-1], got.high[-1], got.low[-1], got.close[-1]) == recorded[1:5]
    assert got.volume[-1] == pytest.approx(recorded[5], rel=1e-9)
    # The following hour is built from the stream alone.
    for r in five_rows[first + 12 : first + 24]:
        store.apply(as_kline(r, symbol, "5m", closed=True))
    nxt = rows(hour)[101]
    got = store.arrays(symbol, "1h")
    assert got.open_time[-1] == nxt[0] and got.close[-1] == nxt[4]
    assert got.volume[-1] == pytest.approx(nxt[5], rel=1e-9)


def test_forming_htf_loaded_before_base_never_double_counts() -> None:
    # Without as_of and without base data, the backfilled forming candle is assumed to contain
    # the whole period so far: volume may undercount, never double count; OHLC stays exact.
    base, symbol = "ETH", "ETHUSDT"
    five, hour = frame(base, "5m"), frame(base, "1h")
    h_open = int(hour["open_time"][50])
    five_rows = rows(five)
    first = next(i for i, r in enumerate(five_rows) if r[0] == h_open)
    in_hour = five_rows[first : first + 12]
    part = in_hour[:6]
    forming_1h = (h_open, part[0][1], max(r[2] for r in part), min(r[3] for r in part),
                  part[-1][4], sum(r[5] for r in part))
    store = store_for(["5m", "1h"], {"5m"})
    store.load_history(symbol, "1h", [as_kline(forming_1h, symbol, "1h", closed=False)])
    for r in in_hour:
        store.apply(as_kline(r, symbol, "5m", closed=True))
    got = store.arrays(symbol, "1h")
    recorded = rows(hour)[50]
    assert (got.open[-1], got.high[-1], got.low[-1], got.close[-1]) == recorded[1:5]
    assert got.volume[-1] == pytest.approx(forming_1h[5]) and got.volume[-1] <= recorded[5]


def test_built_timeframe_klines_from_the_stream_are_ignored_and_counted() -> None:
    store = store_for(["5m", "1h"], {"5m"})
    row = rows(frame("BTC", "1h"))[0]
    assert store.apply(as_kline(row, "BTCUSDT", "1h", closed=True)) == []
    assert store.ignored_klines == 1 and store.closed_count("BTCUSDT", "1h") == 0


def test_bad_configuration_and_history_rows_raise_clear_errors() -> None:
    cfg = TimeframeConfig(timeframes=["3m", "5m"])
    with pytest.raises(ValueError, match="cannot be built from '3m'"):
        CandleStore(cfg, "3m", {"3m"})
    with pytest.raises(ValueError, match="must be one of the streamed"):
        CandleStore(cfg, "1m", {"3m"})
    store = store_for(["5m"], {"5m"})
    rs = rows(frame("BTC", "5m"))[:3]
    bad = [as_kline(rs[0], "BTCUSDT", "5m", closed=False),
           as_kline(rs[1], "BTCUSDT", "5m", closed=True)]
    with pytest.raises(ValueError, match=r"BTCUSDT 5m history row 0 .* not closed"):
        store.load_history("BTCUSDT", "5m", bad)
    with pytest.raises(ValueError, match="history row 0 is BTCUSDT 1h"):
        store.load_history("BTCUSDT", "5m", [as_kline(rs[0], "BTCUSDT", "1h", closed=True)])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.series("BTCUSDT", "5m", 0)


def test_change_24h_from_candles() -> None:
    symbol = "BTCUSDT"
    df = frame("BTC", "5m")
    store = store_for(["5m", "1h"], {"5m"}, bars=400)
    for k in klines(df.head(300), symbol, "5m"):
        store.apply(k)
    close = df["close"].to_numpy()
    want = (close[299] / close[299 - 288] - 1.0) * 100.0
    assert store.change_24h_pct(symbol) == pytest.approx(want, rel=1e-12)
    assert store.change_24h_pct("NOPEUSDT") is None
