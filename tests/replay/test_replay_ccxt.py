"""ccxt's async binanceusdm, built by make_binanceusdm, against the replay server's REST."""

from __future__ import annotations

import pytest
from replay_data import KLINES_55, read_feather

from feeds.ccxt_factory import make_binanceusdm
from feeds.replay.server import ReplayServer


async def test_ccxt_loads_markets_tickers_and_ohlcv_from_the_replay() -> None:
    server = ReplayServer(
        KLINES_55,
        speed=None,
        timeframes=["5m", "1h"],
        history_bars={"5m": 300},
        symbols=["BTCUSDT", "ETHUSDT", "ARUSDT"],
    )
    await server.start()
    exchange = make_binanceusdm(server.rest_url, timeout_s=5)
    exchange.enableRateLimit = False  # ccxt's cost throttle would add ~2 s (ticker weight 40)
    try:
        markets = await exchange.load_markets()
        assert sorted(markets) == ["AR/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"]
        btc = markets["BTC/USDT:USDT"]
        assert (btc["id"], btc["linear"], btc["swap"], btc["active"]) == (
            "BTCUSDT",
            True,
            True,
            True,
        )
        assert btc["precision"]["price"] == 0.01  # recorded exchangeInfo filters
        assert markets["AR/USDT:USDT"]["precision"]["price"] == 0.001  # derived from prices

        start = server.start_ms
        tickers = await exchange.fetch_tickers()
        btc_5m = read_feather("BTC_USDT_USDT-5m-futures.feather")
        before = btc_5m.filter(btc_5m["t"] < start)
        assert tickers["BTC/USDT:USDT"]["last"] == before["close"][-1]
        assert tickers["BTC/USDT:USDT"]["high"] == before.tail(288)["high"].max()

        ohlcv = await exchange.fetch_ohlcv("BTC/USDT:USDT", "5m", limit=100)
        expected = before.tail(100).select("t", "open", "high", "low", "close", "volume")
        assert ohlcv == [list(row) for row in expected.iter_rows()]
        since = int(btc_5m["t"][10])
        first = await exchange.fetch_ohlcv("BTC/USDT:USDT", "5m", since=since, limit=5)
        assert [c[0] for c in first] == btc_5m["t"].slice(10, 5).to_list()
        hourly = await exchange.fetch_ohlcv("ETH/USDT:USDT", "1h", limit=3)
        eth_1h = read_feather("ETH_USDT_USDT-1h-futures.feather")
        closed = eth_1h.filter(eth_1h["t"] + 3_600_000 <= start).tail(2)
        assert [c[0] for c in hourly[:2]] == closed["t"].to_list()
        assert hourly[-1][0] == start - start % 3_600_000  # the forming hour
    finally:
        await exchange.close()
        await server.stop()
    paths = {path for _, path, _ in server.rest_log}
    assert paths == {"/fapi/v1/exchangeInfo", "/fapi/v1/ticker/24hr", "/fapi/v1/klines"}


def test_make_binanceusdm_rewrites_only_usdm_urls() -> None:
    exchange = make_binanceusdm("http://127.0.0.1:9/", timeout_s=2.5)
    api = exchange.urls["api"]
    assert api["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
    assert api["fapiPublicV2"] == "http://127.0.0.1:9/fapi/v2"
    assert api["fapiData"] == "http://127.0.0.1:9/futures/data"
    assert api["sapi"].startswith("https://api.binance.com")
    assert exchange.timeout == 2500
    assert exchange.options["fetchMarkets"]["types"] == ["linear"]
    assert exchange.options["fetchCurrencies"] is False
    with pytest.raises(ValueError, match="http"):
        make_binanceusdm("ws://127.0.0.1:9", 1)
    with pytest.raises(ValueError, match="timeout"):
        make_binanceusdm("http://127.0.0.1:9", 0)
