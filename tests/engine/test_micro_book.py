"""Book features and liquidity flips on books synced from real Binance captures."""

from __future__ import annotations

import statistics

import pydantic
import pytest
from micro_data import BTC_2023, HFT, replay

from engine.micro import BookError, LiquidityFlip, MicroConfig, book_features
from engine.models import BookFeatures
from feeds.events import PriceLevel
from feeds.orderbook import OrderBook

CFG = MicroConfig()


def _reference(
    bids: list[PriceLevel], asks: list[PriceLevel], cfg: MicroConfig
) -> dict[str, object]:
    """Plain-Python features over the full level lists, best first."""
    mid = (bids[0][0] + asks[0][0]) / 2
    out: dict[str, object] = {
        "mid": mid,
        "spread_bps": (asks[0][0] - bids[0][0]) / mid * 1e4,
    }
    bid_depth = {cfg.top_key: sum(p * q for p, q in bids[: cfg.depth_top_levels])}
    ask_depth = {cfg.top_key: sum(p * q for p, q in asks[: cfg.depth_top_levels])}
    for pct in cfg.depth_bands_pct:
        key = f"{pct:g}%"
        bid_depth[key] = sum(p * q for p, q in bids if (mid - p) / mid <= pct / 100)
        ask_depth[key] = sum(p * q for p, q in asks if (p - mid) / mid <= pct / 100)
    b, a = bid_depth[cfg.imbalance_band], ask_depth[cfg.imbalance_band]
    out["bid_depth"], out["ask_depth"] = bid_depth, ask_depth
    out["imbalance"] = (b - a) / (b + a)
    walls = []
    for side, levels in (("bid", bids), ("ask", asks)):
        near = [(p, q) for p, q in levels if abs(p - mid) / mid <= cfg.wall_band_pct / 100]
        if len(near) < cfg.wall_min_levels:
            continue
        median = statistics.median(q for _, q in near)
        walls += [(side, p, q, q / median) for p, q in near if q / median >= cfg.wall_k]
    out["walls"] = walls
    return out


def _check(f: BookFeatures, book: OrderBook, cfg: MicroConfig) -> None:
    ref = _reference(book.bids(), book.asks(), cfg)
    assert f.best_bid == book.bids(1)[0][0] and f.best_ask == book.asks(1)[0][0]
    assert f.mid == pytest.approx(ref["mid"])
    assert f.spread_bps == pytest.approx(ref["spread_bps"])
    assert f.bid_depth == pytest.approx(ref["bid_depth"], rel=1e-9)
    assert f.ask_depth == pytest.approx(ref["ask_depth"], rel=1e-9)
    assert f.imbalance == pytest.approx(ref["imbalance"], abs=1e-9)
    ref_walls = ref["walls"]
    assert isinstance(ref_walls, list)
    expected = sorted((w[3] for w in ref_walls), reverse=True)[: cfg.wall_max]
    assert [w.multiple for w in f.walls] == pytest.approx(expected)
    qualifying = {(w[0], w[1]): w for w in ref_walls}
    for wall in f.walls:
        _, price, size, multiple = qualifying[(wall.side, wall.price)]
        assert wall.size == size and wall.multiple == pytest.approx(multiple)
        assert wall.notional == pytest.approx(price * size)
        assert wall.distance_bps == pytest.approx(abs(price - f.mid) / f.mid * 1e4)


def test_btc_features_match_reference_along_the_session() -> None:
    checked = walls = 0
    for n, (recv, _, synced) in enumerate(replay(*BTC_2023, symbol="BTCUSDT")):
        if synced.synced and n % 4000 == 0:
            f = book_features(synced.book, recv, CFG)
            assert f.time == recv
            _check(f, synced.book, CFG)
            checked += 1
            walls += len(f.walls)
    assert checked >= 15 and walls > 0
    # The 1000-level BTC snapshot spans less than 0.5 %, so the wide bands hold everything.
    assert f.bid_depth["0.5%"] == f.bid_depth["1%"]


def test_eth_features_with_other_bands() -> None:
    cfg = MicroConfig(
        depth_top_levels=5, depth_bands_pct=[0.05, 0.2], imbalance_band="top5",
        wall_k=4.0, wall_band_pct=0.2, wall_max=3,
    )
    checked = 0
    for n, (recv, _, synced) in enumerate(replay(HFT / "ethusdt_20240718.gz", symbol="ETHUSDT")):
        if synced.synced and n % 1500 == 0:
            f = book_features(synced.book, recv, cfg)
            assert set(f.bid_depth) == {"top5", "0.05%", "0.2%"}
            assert len(f.walls) <= 3
            _check(f, synced.book, cfg)
            checked += 1
    assert checked >= 5


def test_unusable_books_raise_naming_the_symbol() -> None:
    book = OrderBook("BTCUSDT")
    with pytest.raises(BookError, match="BTCUSDT: book has an empty side"):
        book_features(book, 0, CFG)
    # A crossed book built from a real recorded top of book (2023-04-04 snapshot levels).
    book.reset([(28145.2, 1.0)], [(28145.1, 2.0)], 1)
    with pytest.raises(BookError, match="crossed"):
        book_features(book, 0, CFG)


def test_liquidity_flips_match_reference_state_machine() -> None:
    cfg = MicroConfig(flip_min_imbalance=0.15, flip_min_depth_quote=5_000_000)
    flip = LiquidityFlip(cfg)
    band = cfg.imbalance_band
    last: float | None = None
    got, want = [], []
    for n, (recv, _, synced) in enumerate(replay(*BTC_2023, symbol="BTCUSDT")):
        if not synced.synced or n % 50:
            continue
        f = book_features(synced.book, recv, cfg)
        event = flip.update(f)
        if event is not None:
            got.append((event.time, event.from_imbalance, event.to_imbalance))
            assert event.depth == pytest.approx(f.bid_depth[band] + f.ask_depth[band])
        depth = f.bid_depth[band] + f.ask_depth[band]
        if abs(f.imbalance) >= 0.15 and depth >= 5_000_000:
            if last is not None and (last > 0) != (f.imbalance > 0):
                want.append((recv, last, f.imbalance))
            last = f.imbalance
    assert got == want
    assert len(got) >= 2
    assert flip.side == (1 if last is not None and last > 0 else -1)


def test_config_rejects_bad_values_with_clear_messages() -> None:
    with pytest.raises(pydantic.ValidationError, match="imbalance_band 'top10' is not a depth"):
        MicroConfig(imbalance_band="top10")
    with pytest.raises(pydantic.ValidationError, match="unknown window '2m'"):
        MicroConfig(flow_windows=["1m", "2m"])
    with pytest.raises(pydantic.ValidationError, match="tp1_pct must be smaller"):
        MicroConfig(tp1_pct=1.0, tp2_pct=0.5)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        MicroConfig(wall_multiple=3)  # type: ignore[call-arg]
    assert MicroConfig(flow_windows=["15m", "1m"]).flow_windows == ["1m", "15m"]
