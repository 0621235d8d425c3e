"""Constants shared by the REST tests (paths of the recorded data, replay settings)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from feeds.replay.server import ReplayServer
from feeds.rest import BinanceRest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KLINES_DIR = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"
"""55 recorded USDT perpetuals, 5m/1h klines, 2023-07-04..2023-08-03."""
EXCHANGE_INFO_2021 = SHARED_DATA / "binance-usdm" / "rest" / "rezbot" / "exchangeInfo.json"
"""Recorded ``GET /fapi/v1/exchangeInfo`` body of 2021-09-06 (133 symbols)."""

REPLAY_SYMBOLS = ["BTCUSDT", "ETHUSDT", "ADAUSDT", "DOGEUSDT"]
REPLAY_TIMEFRAMES = ["5m", "15m", "1h", "4h"]
DAY0_MS = 1_688_947_200_000
"""2023-07-10 00:00:00 UTC: six days into the recorded window."""
START_MS = DAY0_MS + 7 * 60_000
"""Replay start 00:07 UTC: inside a candle of every timeframe, so each has a forming one."""

StartReplay = Callable[..., Awaitable[ReplayServer]]
MakeRest = Callable[..., BinanceRest]
