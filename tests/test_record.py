"""`perpscope record` writes what the real adapter receives, and the file replays."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from feeds.replay.recording import iter_recording, read_header
from feeds.replay.server import ReplayServer
from tests.conftest import KLINES_55

REPO = Path(__file__).resolve().parents[1]


async def run_cli(*args: str, env_config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "--config", str(env_config), *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_record_then_replay_the_recording(tmp_path: Path) -> None:
    source = KLINES_55 / "ETH_USDT_USDT-5m-futures.feather"
    out = tmp_path / "session.psrec.gz"
    async with ReplayServer(
        source, speed=None, start_ms=1690848000000, timeframes=["5m", "15m", "1h", "4h"],
    ) as server:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[endpoints]\nrest_url = "{server.rest_url}"\nws_url = "{server.ws_url}"\n',
            encoding="utf-8",
        )
        code, _, err = await run_cli("record", "--out", str(out), "--duration", "4",
                                     env_config=config)
        sent = server.frames_sent
    assert code == 0, err
    assert f"wrote {out}" in err and "Traceback" not in err

    header = read_header(out)
    assert header["format"] == "perpscope-rec" and header["ws_url"] == server.ws_url
    lines = list(iter_recording(out))
    assert 0 < len(lines) <= sent
    streams = {json.loads(line.raw)["stream"] for line in lines}
    assert "ethusdt@kline_5m" in streams
    assert all(line.route == "market" for line in lines)
    times = [line.recv_ms for line in lines]
    assert times == sorted(times)

    # The recording is replayable like any capture: its klines reach the engine.
    code, stdout, err = await run_cli("scan", "--replay", str(out), "--json", env_config=config)
    assert code == 0, err
    (record,) = [json.loads(line) for line in stdout.splitlines()]
    last_kline = next(
        json.loads(line.raw)["data"]["k"] for line in reversed(lines)
        if json.loads(line.raw)["stream"] == "ethusdt@kline_5m"
    )
    assert record["symbol"] == "ETHUSDT"
    assert record["last_price"] == float(last_kline["c"])
