"""Regime, mean reversion, candle clustering, TA-Lib patterns and Heikin Ashi on real klines.

Each detector is checked against a direct computation (numpy/polars/TA-Lib written out in the
test) on recorded bars where its condition holds and where it does not, and for causality: the
result at bar ``t`` from data ending at ``t`` equals the full series' result at ``t``.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import talib
from engine_data import ALL_BASES, arrays, frame

from engine import detectors
from engine.config import IndicatorConfig, SignalConfig
from engine.indicators import IndicatorSet, compute_indicators

SC = SignalConfig()
IC = IndicatorConfig()


def last_index_rows(df: pl.DataFrame, start: int = 60) -> range:
    return range(start, df.height)


def test_streak_and_exhaustion_match_a_direct_count() -> None:
    df = frame("BTC", "5m").head(3000)
    close = df["close"].to_numpy()
    seen = {True: 0, False: 0}
    for t in range(30, 3000):
        # Direct: walk back while each close moves the same way as the last one.
        run, k = 0, t
        first = np.sign(close[t] - close[t - 1])
        while first != 0 and k > 0 and np.sign(close[k] - close[k - 1]) == first:
            run, k = run + 1, k - 1
        assert detectors.streak(close[: t + 1]) == int(run * first)
        if t % 7 == 0 or run >= 4:
            a = arrays(df.head(t + 1))
            ind = compute_indicators(a, IC)
            got = detectors.reversion("5m", a, ind, SC)
            exhaustion = got.factors[0]
            assert exhaustion.name == "exhaustion"
            assert exhaustion.contribution == (-25.0 * first if run >= 4 else 0.0)
            seen[run >= 4] += 1
            assert got.score == abs(sum(f.contribution for f in got.factors))
    assert seen[True] > 20 and seen[False] > 20


def test_volume_exhaustion_and_excessive_move_match_polars() -> None:
    cfg = SignalConfig(reversion_move={"5m": 0.01})  # 1 % in 5 bars: occurs on real BTC 5m
    df = frame("ETH", "5m").head(4000)
    ref = df.with_columns(
        avg=pl.col("volume").rolling_mean(20).shift(2),
        move=pl.col("close") / pl.col("close").shift(5) - 1,
        prev_v=pl.col("volume").shift(1),
        prev_dir=(pl.col("close") - pl.col("open")).shift(1).sign(),
    ).with_columns(
        climax=(pl.col("prev_v") >= 1.5 * pl.col("avg"))
        & (pl.col("volume") <= 0.9 * pl.col("prev_v"))
    )
    climax_rows = ref.with_row_index().filter(pl.col("climax"))["index"].to_list()
    move_rows = ref.with_row_index().filter(pl.col("move").abs() >= 0.01)["index"].to_list()
    assert len(climax_rows) > 20 and len(move_rows) > 20
    quiet = (
        ref.with_row_index()
        .filter(~pl.col("climax") & (pl.col("move").abs() < 0.01) & (pl.col("index") > 30))["index"]
        .to_list()
    )
    for t in climax_rows[:15] + move_rows[:15] + quiet[:15]:
        if t < 30:
            continue
        a = arrays(df.head(t + 1))
        got = {
            f.name: f for f in detectors.reversion("5m", a, compute_indicators(a, IC), cfg).factors
        }
        row = ref.row(t, named=True)
        want_v = -25.0 * row["prev_dir"] if row["climax"] else 0.0
        assert got["volume_exhaustion"].contribution == want_v, t
        assert got["volume_exhaustion"].value == pytest.approx(row["prev_v"] / row["avg"])
        want_m = -25.0 * math.copysign(1, row["move"]) if abs(row["move"]) >= 0.01 else 0.0
        assert got["excessive_move"].contribution == want_m, t
        assert got["excessive_move"].value == pytest.approx(row["move"])


def test_rsi_extreme_on_real_bars() -> None:
    df = frame("ETC", "5m").head(3000)
    rsi = talib.RSI(df["close"].to_numpy(), timeperiod=14)
    high = [t for t in range(100, 3000) if rsi[t] > 70][:5]
    low = [t for t in range(100, 3000) if rsi[t] < 30][:5]
    mid = [t for t in range(100, 3000) if 40 < rsi[t] < 60][:5]
    assert len(high) == len(low) == len(mid) == 5
    for t, want in [
        *((t, -25.0) for t in high),
        *((t, 25.0) for t in low),
        *((t, 0.0) for t in mid),
    ]:
        a = arrays(df.head(t + 1))
        factors = detectors.reversion("5m", a, compute_indicators(a, IC), SC).factors
        assert factors[3].name == "rsi_extreme" and factors[3].contribution == want
        assert factors[3].value == pytest.approx(rsi[t])


def direct_cluster(df: pl.DataFrame, t: int, cfg: SignalConfig) -> tuple[int, int, int, float]:
    """up, down, count and follow-through at bar t, written out with polars."""
    ref = (
        df.head(t + 1)
        .with_row_index()
        .with_columns(
            avg=pl.col("volume").rolling_mean(cfg.volume_average_bars).shift(1),
            d=(pl.col("close") - pl.col("open")).sign(),
            fwd=pl.col("close").shift(-cfg.cluster_follow_bars) - pl.col("close"),
        )
    )
    window = ref.filter(
        (pl.col("index") >= max(cfg.volume_average_bars, t + 1 - cfg.cluster_lookback))
        & (pl.col("volume") >= cfg.cluster_volume * pl.col("avg"))
        & (pl.col("d") != 0)
    )
    up = window.filter(pl.col("d") > 0).height
    down = window.filter(pl.col("d") < 0).height
    major = 1 if up > down else (-1 if down > up else 0)
    eligible = window.filter((pl.col("d") == major) & pl.col("fwd").is_not_null())
    follow = (
        eligible.filter(pl.col("fwd") * major > 0).height / eligible.height
        if eligible.height and major
        else 0.0
    )
    return up, down, up + down, follow


def test_candle_cluster_matches_polars_and_flags_trend_formation() -> None:
    forming = quiet = 0
    for base in ("BTC", "DOGE", "ADA"):
        df = frame(base, "5m").head(2500)
        for t in range(100, 2500, 23):
            got = detectors.candle_cluster(arrays(df.head(t + 1)), SC)
            up, down, count, follow = direct_cluster(df, t, SC)
            assert (got.up, got.down, got.count) == (up, down, count), (base, t)
            assert got.follow_through == pytest.approx(follow)
            want_forming = (
                count >= 2 and max(up, down) / count >= 0.7 and follow >= 0.5 and up != down
                if count
                else False
            )
            assert got.trend_forming == want_forming
            forming += got.trend_forming
            quiet += not got.trend_forming
            if got.trend_forming:
                assert math.copysign(1, got.strength) == (1 if up > down else -1)
    assert forming > 3 and quiet > 30


def test_regime_from_adx_and_bollinger_width_percentile() -> None:
    labels: dict[str, int] = {}
    for base in ("BTC", "ETH", "AVAX"):
        df = frame(base, "5m").head(2000)
        c, h, lo = (df[k].to_numpy() for k in ("close", "high", "low"))
        upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2)
        width = (upper - lower) / middle
        adx = talib.ADX(h, lo, c, timeperiod=14)
        for t in range(300, 2000, 17):
            defined = width[: t + 1][np.isfinite(width[: t + 1])]
            pct = np.mean(defined <= width[t])
            want = "high_volatility" if pct >= 0.9 else ("trending" if adx[t] >= 25 else "ranging")
            a = arrays(df.head(t + 1))
            ind = compute_indicators(a, IC)
            got = detectors.regime(
                ind.last("adx"), detectors.bb_width_percentile(ind["bb_width"]), SC
            )
            assert got == want
            labels[got] = labels.get(got, 0) + 1
    assert set(labels) == {"trending", "ranging", "high_volatility"}, labels


def test_at_least_twelve_talib_patterns_found_on_real_bars() -> None:
    found: set[str] = set()
    for base in ALL_BASES[:20]:
        df = frame(base, "5m").head(3000)
        o, h, lo, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
        for label, fn in detectors.PATTERNS.items():
            out = getattr(talib, fn)(o, h, lo, c)
            hits = np.flatnonzero(out)
            hits = hits[hits > 100]
            if label in found or not hits.shape[0]:
                continue
            t = int(hits[0])
            got = detectors.patterns(arrays(df.head(t + 1)))
            sign = "" if label in detectors.UNSIGNED_PATTERNS else ("+" if out[t] > 0 else "-")
            assert f"{label}{sign}" in got
            # Where TA-Lib reports nothing, the label is absent.
            quiet = int(np.flatnonzero(out[100:] == 0)[0]) + 100
            assert not any(
                p.rstrip("+-") == label for p in detectors.patterns(arrays(df.head(quiet + 1)))
            )
            found.add(label)
    assert len(found) >= 12, sorted(set(detectors.PATTERNS) - found)


def test_heikin_ashi_equals_the_recursive_definition() -> None:
    df = frame("ADA", "5m").head(1500)
    o, h, lo, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    ha_close = (o + h + lo + c) / 4
    ha_open = np.empty_like(ha_close)
    ha_open[0] = (o[0] + c[0]) / 2
    for i in range(1, len(c)):
        ha_open[i] = (ha_open[i - 1] + ha_close[i - 1]) / 2
    got_open, got_close = detectors.heikin_ashi(arrays(df))
    np.testing.assert_allclose(got_close, ha_close, rtol=0, atol=0)
    np.testing.assert_allclose(got_open[60:], ha_open[60:], rtol=1e-12)
    trends = {1: 0, -1: 0, 0: 0}
    for t in range(100, 1500, 11):
        body = ha_close[t - 2 : t + 1] - ha_open[t - 2 : t + 1]
        want = 1 if np.all(body > 0) else (-1 if np.all(body < 0) else 0)
        got = detectors.heikin_ashi_trend(arrays(df.head(t + 1)))
        assert got == want
        trends[got] += 1
    assert min(trends.values()) > 0, trends


@pytest.mark.parametrize("base", ["BTC", "DOT"])
def test_detectors_have_no_lookahead(base: str) -> None:
    """Result at bar t from data ending at t == the full series' indicators read at t."""
    df = frame(base, "5m").head(2400)
    full = arrays(df)
    ind_full = compute_indicators(full, IC)
    o, h, lo, c = full.open, full.high, full.low, full.close
    pattern_full = {
        label: getattr(talib, fn)(o, h, lo, c) for label, fn in detectors.PATTERNS.items()
    }
    ha_open, ha_close = detectors.heikin_ashi(full)
    for t in (500, 1200, 2399):
        cut = full.window(stop=t + 1)
        sliced = IndicatorSet({k: v[: t + 1] for k, v in ind_full.items()})
        own = compute_indicators(cut, IC)
        assert detectors.reversion("5m", cut, sliced, SC) == detectors.reversion("5m", cut, own, SC)
        assert detectors.bb_width_percentile(sliced["bb_width"]) == detectors.bb_width_percentile(
            own["bb_width"]
        )
        labels = {p.rstrip("+-") for p in detectors.patterns(cut)}
        assert labels == {k for k, v in pattern_full.items() if v[t] != 0}
        body = ha_close[t - 2 : t + 1] - ha_open[t - 2 : t + 1]
        assert detectors.heikin_ashi_trend(cut) == (
            1 if np.all(body > 0) else (-1 if np.all(body < 0) else 0)
        )
