"""Paths and helpers for the replay tests (real recorded data, read in place)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import polars as pl
import websockets

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
"""Recorded exchange data beside the repo (never copied into it)."""
BINANCE = SHARED_DATA / "binance-usdm"
KLINES_55 = BINANCE / "klines" / "alpergulsen-freqtrade"
"""55 USDT perpetuals, 2023-07-04 .. 2023-08-03: 5m (55), 1h (51), 1m (10), 8h mark, funding."""
KLINES_XRP = BINANCE / "klines" / "freqtrade-testdata"
"""XRPUSDT 5m/1h klines, 1h/8h mark, funding (Nov-Dec 2021)."""
CRYPTOFEED_WS = BINANCE / "ws" / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
HFT = BINANCE / "ws" / "hftbacktest"

MINUTE = 60_000


def read_feather(name: str, folder: Path = KLINES_55) -> pl.DataFrame:
    """A recorded kline file with ``t`` = open time in ms."""
    frame = pl.read_ipc(folder / name)
    return frame.with_columns(pl.col("date").dt.epoch("ms").alias("t"))


async def recv_json(ws: websockets.ClientConnection, within_s: float = 5.0) -> Any:
    """Next message as JSON, within ``within_s`` seconds."""
    async with asyncio.timeout(within_s):
        return json.loads(await ws.recv())


async def control(ws: websockets.ClientConnection, method: str, params: Any, req_id: int) -> Any:
    """Send a control message and return the reply with that id (data frames are skipped)."""
    await ws.send(json.dumps({"method": method, "params": params, "id": req_id}))
    async with asyncio.timeout(5):
        while True:
            msg = json.loads(await ws.recv())
            if isinstance(msg, dict) and msg.get("id") == req_id:
                return msg


@contextlib.asynccontextmanager
async def connect(url: str, **kwargs: Any) -> AsyncIterator[websockets.ClientConnection]:
    """WebSocket client that is aborted on exit instead of closed gracefully.

    At max speed the server keeps the socket full; a client that stopped reading cannot
    receive the server's close frame behind that data, so a graceful close would wait for
    ``close_timeout``.
    """
    ws = await websockets.connect(url, **kwargs)
    try:
        yield ws
    finally:
        ws.transport.abort()


async def eventually(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (polled), at most ``within_s`` seconds."""
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - polling plain server state
            await asyncio.sleep(0.01)
