"""Universe selection over real loopback servers (replay exchangeInfo/tickers, recorded 2021
exchangeInfo)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rest_support import EXCHANGE_INFO_2021, REPLAY_SYMBOLS, MakeRest, StartReplay

from feeds.config import UniverseConfig
from feeds.rest import RestError


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        return await response.json()


async def test_all_mode_is_every_trading_usdt_perpetual(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    info = await get_json(server.rest_url + "/fapi/v1/exchangeInfo")
    expected = sorted(
        s["symbol"]
        for s in info["symbols"]
        if s["status"] == "TRADING" and s["contractType"] == "PERPETUAL"
    )
    assert expected == sorted(REPLAY_SYMBOLS)
    assert await rest.universe(UniverseConfig(mode="all")) == expected
    assert await rest.universe(UniverseConfig(mode="all", exclude=["adausdt"])) == [
        s for s in expected if s != "ADAUSDT"
    ]


async def test_top_mode_ranks_by_24h_quote_volume(replay: StartReplay, make_rest: MakeRest) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    tickers = await get_json(server.rest_url + "/fapi/v1/ticker/24hr")
    ranked = [t["symbol"] for t in sorted(tickers, key=lambda t: -float(t["quoteVolume"]))]
    assert sorted(ranked) == sorted(REPLAY_SYMBOLS)

    assert await rest.universe(UniverseConfig(mode="top", top_n=2)) == ranked[:2]
    assert await rest.universe(UniverseConfig(mode="top", top_n=10)) == ranked
    # exclusions are removed before ranking, so top_n symbols remain
    excluded = UniverseConfig(mode="top", top_n=2, exclude=[ranked[0]])
    assert await rest.universe(excluded) == ranked[1:3]


async def test_list_mode_keeps_order_and_names_unknown_symbols(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    cfg = UniverseConfig(
        mode="list", symbols=["dogeusdt", "BTCUSDT", "ethusdt"], exclude=["BTCUSDT"]
    )
    assert await rest.universe(cfg) == ["DOGEUSDT", "ETHUSDT"]

    bad = UniverseConfig(mode="list", symbols=["ETHUSDT", "SOLUSDT", "NOPEUSDT"])
    with pytest.raises(RestError) as info:
        await rest.universe(bad)
    message = str(info.value)
    assert "SOLUSDT" in message
    assert "NOPEUSDT" in message
    assert "ETHUSDT" not in message
    assert server.rest_url in message


@pytest.fixture
async def recorded_exchange_info_url() -> AsyncIterator[str]:
    """A loopback server answering ``/fapi/v1/exchangeInfo`` with the recorded 2021 body."""
    body = EXCHANGE_INFO_2021.read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/fapi/v1/exchangeInfo", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_filters_status_contract_type_and_quote(
    recorded_exchange_info_url: str, make_rest: MakeRest
) -> None:
    info = json.loads(EXCHANGE_INFO_2021.read_text())
    expected = sorted(
        s["symbol"]
        for s in info["symbols"]
        if s["status"] == "TRADING"
        and s["contractType"] == "PERPETUAL"
        and s["quoteAsset"] == "USDT"
    )
    assert len(expected) == 123
    rest = make_rest(recorded_exchange_info_url)
    got = await rest.universe(UniverseConfig(mode="all"))
    assert got == expected
    # PENDING_TRADING, quarterly delivery and BUSD-margined contracts are all left out
    for symbol in ("BTCSTUSDT", "BTCUSDT_210924", "BTCBUSD"):
        assert symbol not in got

    with pytest.raises(RestError, match="BTCUSDT_210924, BTCSTUSDT"):
        await rest.universe(
            UniverseConfig(mode="list", symbols=["BTCUSDT", "BTCUSDT_210924", "BTCSTUSDT"])
        )


async def test_onboard_dates_come_from_exchange_info(
    replay: StartReplay, make_rest: MakeRest
) -> None:
    server = await replay()
    rest = make_rest(server.rest_url)
    info = await get_json(server.rest_url + "/fapi/v1/exchangeInfo")
    await rest.universe(UniverseConfig(mode="all"))
    recorded = {s["symbol"]: int(s["onboardDate"]) for s in info["symbols"] if "onboardDate" in s}
    assert recorded and rest.onboard_dates == recorded
    # BTCUSDT's record is the recorded 2021 one: listed 2019-09-25 (Binance's first perpetual).
    assert rest.onboard_dates["BTCUSDT"] == 1569398400000
