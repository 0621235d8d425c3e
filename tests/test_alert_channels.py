"""Telegram and webhook channels against loopback aiohttp servers, through the dispatcher and
the alert log: success, 429 with retry_after / Retry-After, 500 until retries run out,
timeouts, and the bot token kept out of logs, errors, reprs and the log store."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import polars as pl
import pytest
from aiohttp import web
from pydantic import SecretStr

from engine.alerts import (
    Alert,
    AlertDispatcher,
    AlertEngine,
    AlertsConfig,
    ChannelError,
    DesktopChannel,
    InAppChannel,
    PriceAlert,
    TelegramChannel,
    WebhookChannel,
    build_channels,
    render_json,
    title,
)
from engine.alerts.channels import parse_retry_after
from engine.alerts.config import TelegramConfig, WebhookConfig
from storage.alerts import AlertLogStore
from storage.db import Database
from tests.conftest import KLINES_55

TOKEN = "7355608:AAF-s3cr3t_T0ken-perpscope"
CHAT = "424242"
FAST = AlertsConfig(retries=2, backoff_s=0.01, backoff_max_s=0.05, timeout_s=2.0)


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    """Price alerts fired by real ETHUSDT 5m closes crossing their own quartiles."""
    df = pl.read_ipc(KLINES_55 / "ETH_USDT_USDT-5m-futures.feather").head(600)
    times = df["date"].dt.epoch("ms").to_list()
    closes = df["close"].to_list()
    lo, hi = sorted(closes)[150], sorted(closes)[450]
    engine = AlertEngine(
        AlertsConfig(
            rules=[],
            price_alerts=[PriceAlert(symbol="ETHUSDT", above=hi, below=lo, once=False)],
        )
    )
    out: list[Alert] = []
    for t, c in zip(times, closes, strict=True):
        out += engine.on_price("ETHUSDT", c, t + 300_000)
    assert len(out) >= 4
    return out


@dataclass
class Script:
    """Scripted replies of the loopback server, in order (the last one repeats)."""

    replies: list[Callable[[], web.Response] | float]
    requests: list[tuple[str, bytes, float]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, await request.read(), time.monotonic()))
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if isinstance(reply, float):
            await asyncio.sleep(reply)  # longer than the client timeout
            return web.json_response({"ok": True})
        return reply()  # a fresh response each time: aiohttp sends a response only once


@dataclass
class Server:
    url: str
    script: Script


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    script = Script(replies=[lambda: web.json_response({"ok": True, "result": {"id": 1}})])
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", script.handle)
    app.router.add_post("/hook/{secret}", script.handle)
    runner = web.AppRunner(app, access_log=None)  # the stand-in server's own log is not ours
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(f"http://127.0.0.1:{port}", script)
    finally:
        await runner.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertLogStore]:
    async with Database(tmp_path / "alerts.db") as db:
        yield AlertLogStore(db)


def telegram(server: Server) -> TelegramChannel:
    return TelegramChannel(SecretStr(TOKEN), CHAT, base_url=server.url)


def webhook(server: Server) -> WebhookChannel:
    return WebhookChannel(SecretStr(f"{server.url}/hook/{TOKEN}"))


async def run(
    channels: list[TelegramChannel | WebhookChannel | InAppChannel],
    store: AlertLogStore,
    alerts: list[Alert],
    cfg: AlertsConfig = FAST,
) -> AlertDispatcher:
    dispatcher = AlertDispatcher(channels, store, config=cfg)
    async with asyncio.timeout(5):
        async with dispatcher:
            for alert in alerts:
                assert dispatcher.submit(alert)
            await dispatcher.drain()
    return dispatcher


async def test_telegram_success(server: Server, store: AlertLogStore, alerts: list[Alert]) -> None:
    dispatcher = await run([telegram(server)], store, alerts[:2])
    assert [p for p, _, _ in server.script.requests] == [f"/bot{TOKEN}/sendMessage"] * 2
    body = msgspec.json.decode(server.script.requests[0][1])
    assert body["chat_id"] == CHAT and body["parse_mode"] == "HTML"
    assert body["text"].startswith("<b>ETHUSDT PRICE_") and alerts[0].time_utc in body["text"]
    rows = await store.recent(10)
    assert [r.delivered for r in rows] == [("telegram",)] * 2
    assert all(r.pending == () and r.failed == () for r in rows)
    assert rows[-1].alert == alerts[0]
    health = dispatcher.health()["telegram"]
    assert (health.label, health.delivered, health.failed) == ("ok", 2, 0)


async def test_telegram_429_retry_after_then_success(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [
        lambda: web.json_response(
            {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
             "parameters": {"retry_after": 1}},
            status=429,
        ),
        lambda: web.json_response({"ok": True}),
    ]
    await run([telegram(server)], store, alerts[:1])
    (first, second) = server.script.requests
    # The server's retry_after (1 s), not the 0.01 s backoff, set the wait.
    assert second[2] - first[2] >= 0.95
    (row,) = await store.recent(1)
    assert row.delivered == ("telegram",) and row.failed == ()


async def test_webhook_429_retry_after_header_then_success(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [
        lambda: web.Response(status=429, headers={"Retry-After": "1"}),
        lambda: web.Response(status=204),
    ]
    await run([webhook(server)], store, alerts[:1])
    (first, second) = server.script.requests
    assert second[2] - first[2] >= 0.95
    assert msgspec.json.decode(second[1]) == msgspec.json.decode(render_json(alerts[0]))
    (row,) = await store.recent(1)
    assert row.delivered == ("webhook",)


async def test_500_exhausts_retries_and_loses_nothing_the_log_shows(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [lambda: web.Response(status=500, text="boom")]
    shown: list[Alert] = []
    in_app = InAppChannel(shown.append)
    states: list[str] = []
    dispatcher = AlertDispatcher(
        [webhook(server), in_app], store, config=FAST,
        on_health=lambda h: states.append(h["webhook"].label),
    )
    async with asyncio.timeout(5), dispatcher:
        for alert in alerts[:3]:
            dispatcher.submit(alert)
        await dispatcher.drain()
    assert len(server.script.requests) == 3 * (1 + FAST.retries)
    rows = await store.recent(10)
    assert len(rows) == 3 and shown == alerts[:3]  # every alert logged and shown in-app
    for row in rows:
        assert row.failed == ("webhook",) and row.delivered == ("in_app",) and row.pending == ()
        assert row.errors["webhook"].endswith("HTTP 500")
    health = dispatcher.health()
    assert health["webhook"].label == f"failing: {rows[0].errors['webhook']}"
    assert health["webhook"].failed == 3 and health["in_app"].label == "ok"
    assert states and states[0].startswith("failing")


async def test_telegram_4xx_is_not_retried(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [
        lambda: web.json_response(
            {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
            status=400,
        )
    ]
    await run([telegram(server)], store, alerts[:1])
    assert len(server.script.requests) == 1
    (row,) = await store.recent(1)
    assert row.errors == {"telegram": "HTTP 400: Bad Request: chat not found"}


async def test_timeout_then_failed(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [0.8]
    cfg = AlertsConfig(retries=1, backoff_s=0.01, timeout_s=0.2)
    started = time.monotonic()
    dispatcher = await run([telegram(server)], store, alerts[:1], cfg)
    assert time.monotonic() - started < 2.0
    assert len(server.script.requests) == 2
    (row,) = await store.recent(1)
    assert row.failed == ("telegram",) and row.errors["telegram"] == "timed out after 0.2s"
    assert dispatcher.health()["telegram"].label == "failing: timed out after 0.2s"


async def test_token_never_leaks(
    server: Server,
    store: AlertLogStore,
    alerts: list[Alert],
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script.replies = [
        lambda: web.json_response({"ok": False, "description": "Unauthorized"}, status=401),
        lambda: web.Response(status=500),
    ]
    refused = TelegramChannel(
        SecretStr(TOKEN), CHAT, base_url=f"http://127.0.0.1:{unused_tcp_port}"
    )
    errors: list[str] = []
    for channel in (telegram(server), refused, webhook(server)):
        try:
            await channel.send(alerts[0])
        except ChannelError as exc:
            # The whole printed traceback (chained exceptions included) is clean.
            errors.append("".join(traceback.format_exception(exc)))
        finally:
            await channel.aclose()
    assert len(errors) == 3 and "connection failed" in errors[1] and "HTTP 401" in errors[0]
    dispatcher = await run([telegram(server), webhook(server)], store, alerts[:2])
    cfg = AlertsConfig(
        telegram=TelegramConfig(enabled=True, bot_token=SecretStr(TOKEN), chat_id=CHAT),
        webhook=WebhookConfig(enabled=True, url=SecretStr(f"{server.url}/hook/{TOKEN}")),
    )
    channels, _ = build_channels(cfg, environ={})
    seen = [
        *errors,
        caplog.text,
        repr(cfg), str(cfg), cfg.model_dump_json(),
        *(repr(c) for c in channels),
        repr(dispatcher.health()),
        *(repr(r) for r in await store.recent(20)),
    ]
    with sqlite3.connect(tmp_path / "alerts.db") as raw:
        seen.append(repr(raw.execute("SELECT * FROM alert_log").fetchall()))
    for text in seen:
        assert TOKEN not in text and "s3cr3t" not in text
    assert "failing" in repr(dispatcher.health())


async def test_in_app_callback_and_desktop_command(
    tmp_path: Path, store: AlertLogStore, alerts: list[Alert]
) -> None:
    # A stand-in notifier (real subprocess) that records its arguments.
    out = tmp_path / "args.txt"
    notifier = tmp_path / "notify"
    notifier.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {out}\n')
    notifier.chmod(0o755)
    shown: list[Alert] = []
    in_app = InAppChannel()  # the UI registers later: first attempt fails, retry delivers
    cfg = AlertsConfig(retries=3, backoff_s=0.05, backoff_max_s=0.05)
    dispatcher = AlertDispatcher([in_app, DesktopChannel(str(notifier))], store, config=cfg)
    async with asyncio.timeout(5), dispatcher:
        dispatcher.submit(alerts[0])
        await asyncio.sleep(0.02)
        in_app.register(shown.append)
        await dispatcher.drain()
    assert shown == [alerts[0]]
    args = out.read_text().splitlines()
    assert args[:3] == ["--app-name", "perpscope", title(alerts[0])]
    assert alerts[0].time_utc in out.read_text()
    (row,) = await store.recent(1)
    assert set(row.delivered) == {"in_app", "desktop"}
    missing = DesktopChannel(str(tmp_path / "absent"))
    with pytest.raises(ChannelError, match="cannot run") as info:
        await missing.send(alerts[0])
    assert not info.value.retryable


async def test_full_queues_refuse_with_a_count(
    server: Server, store: AlertLogStore, alerts: list[Alert]
) -> None:
    server.script.replies = [0.5]  # slow server: the channel queue fills up
    cfg = AlertsConfig(queue_size=1, retries=0, timeout_s=2.0)
    dispatcher = AlertDispatcher([telegram(server)], store, config=cfg)
    assert not dispatcher.submit(alerts[0])  # not started: refused, counted
    async with asyncio.timeout(5), dispatcher:
        ids = [await dispatcher.publish(a) for a in alerts[:4]]
        await dispatcher.drain()
    assert dispatcher.dropped == 1
    rows = {r.id: r for r in await store.recent(10)}
    assert set(rows) == set(ids)
    full = [r for r in rows.values() if r.errors.get("telegram", "").startswith("queue full")]
    sent = [r for r in rows.values() if r.delivered == ("telegram",)]
    assert full and sent and len(full) + len(sent) == 4


def test_channel_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = AlertsConfig(telegram=TelegramConfig(enabled=True), desktop={"enabled": True,
                       "command": "perpscope-no-such-notifier"})
    channels, disabled = build_channels(cfg, environ={})
    assert [c.name for c in channels] == ["in_app"]
    assert disabled == {
        "desktop": "perpscope-no-such-notifier not found on PATH",
        "telegram": "no bot token (set PERPSCOPE_TELEGRAM_TOKEN)",
    }
    env = {"PERPSCOPE_TELEGRAM_TOKEN": TOKEN, "PERPSCOPE_TELEGRAM_CHAT_ID": CHAT}
    channels, disabled = build_channels(cfg, environ=env)
    assert [c.name for c in channels] == ["in_app", "telegram"] and "telegram" not in disabled
    with pytest.raises(ValueError, match="webhook url must start with") as info:
        WebhookConfig(url=SecretStr(f"ftp://x/{TOKEN}"))
    assert TOKEN not in str(info.value)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now_s=1445412480.0) == 5.0
    assert parse_retry_after("soon") is None
