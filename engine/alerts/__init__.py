"""Alerts: rules over signals, price levels and pick status changes; delivery channels.

:class:`AlertEngine` (pure) decides what alerts; :class:`AlertDispatcher` logs each alert to
the alert log first, then delivers it asynchronously to the in-app, desktop, Telegram and
webhook channels with retries. The UI registers its toast callback on :class:`InAppChannel`.
"""

from engine.alerts.channels import (
    AlertChannel,
    ChannelError,
    DesktopChannel,
    InAppChannel,
    TelegramChannel,
    WebhookChannel,
    build_channels,
)
from engine.alerts.config import (
    AlertRule,
    AlertsConfig,
    DesktopConfig,
    InAppConfig,
    PriceAlert,
    TelegramConfig,
    WebhookConfig,
)
from engine.alerts.dispatcher import AlertDispatcher, ChannelHealth
from engine.alerts.message import render_json, render_telegram, render_text, title
from engine.alerts.rules import Alert, AlertEngine, AlertStats, PickStatusChange, top_reasons

__all__ = [
    "Alert",
    "AlertChannel",
    "AlertDispatcher",
    "AlertEngine",
    "AlertRule",
    "AlertStats",
    "AlertsConfig",
    "ChannelError",
    "ChannelHealth",
    "DesktopChannel",
    "DesktopConfig",
    "InAppChannel",
    "InAppConfig",
    "PickStatusChange",
    "PriceAlert",
    "TelegramChannel",
    "TelegramConfig",
    "WebhookChannel",
    "WebhookConfig",
    "build_channels",
    "render_json",
    "render_telegram",
    "render_text",
    "title",
    "top_reasons",
]
