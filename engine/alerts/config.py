"""The ``[alerts]`` settings section: rules, price levels, pick status changes and channels.

Secrets (the Telegram bot token, the webhook URL, which often embeds a token) are
:class:`pydantic.SecretStr`: their ``repr`` and ``str`` are masked, so they never reach logs,
error messages or the UI. The token may also come from ``$PERPSCOPE_TELEGRAM_TOKEN`` and the chat
id from ``$PERPSCOPE_TELEGRAM_CHAT_ID`` (see :meth:`TelegramConfig.resolved_token`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from engine.config import RISK_PROFILE_NAMES
from engine.models import SignalType

TELEGRAM_TOKEN_ENV = "PERPSCOPE_TELEGRAM_TOKEN"
"""Environment variable read for the Telegram bot token when the config leaves it empty."""
TELEGRAM_CHAT_ENV = "PERPSCOPE_TELEGRAM_CHAT_ID"
"""Environment variable read for the Telegram chat id when the config leaves it empty."""
ALERT_SIGNAL_TYPES = tuple(t.value for t in SignalType if t is not SignalType.NEUTRAL)
"""Signal types a rule may name (every :class:`~engine.models.SignalType` but ``NEUTRAL``)."""
CHANNEL_NAMES = ("in_app", "desktop", "telegram", "webhook")
"""Channel names, as stored in the alert log's delivered / failed columns."""

_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _check_symbol(value: str) -> str:
    value = value.strip().upper()
    if not _SYMBOL.match(value):
        raise ValueError(f"{value!r} is not a venue symbol like BTCUSDT")
    return value


class AlertRule(_Section):
    """One signal alert rule; a signal alerts when it first appears and passes every test."""

    name: str = Field(min_length=1, max_length=60)
    """Rule name, shown in the alert and the alert log (unique among rules)."""
    signal_types: list[str] = Field(default_factory=list)
    """Signal types that alert (``STRONG_LONG``, ``MOMENTUM_SHORT``, ``MICRO_LONG``, ...);
    empty = every LONG or SHORT type."""
    min_score: float = Field(default=60.0, ge=50.0, le=100.0)
    """Score (0-100, 50 neutral) a LONG needs at least; a SHORT needs ``100 - min_score`` at
    most (the same distance from 50 on its side)."""
    min_confidence: float = Field(default=0.3, ge=0.0, le=1.0)
    """Confidence (0-1) the signal needs at least."""
    symbols: list[str] = Field(default_factory=list)
    """Only these venue symbols (``BTCUSDT``); empty = every symbol."""
    watchlist_only: bool = False
    """Only symbols on the watchlist (combined with ``symbols`` when both are set)."""
    risk_profile: str | None = None
    """Only while this risk profile is active (``conservative``, ``balanced``,
    ``aggressive``); empty = any profile."""
    cooldown_s: float = Field(default=1800.0, ge=0.0, le=7 * 86400.0)
    """After an alert for a symbol, further alerts of this rule for that symbol are held back
    for this many seconds."""
    daily_max: int = Field(default=5, ge=0, le=10_000)
    """Alerts of this rule per symbol per UTC day; 0 = no limit."""
    enabled: bool = True
    """A disabled rule never alerts."""

    @field_validator("signal_types")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str]:
        out = [v.strip().upper() for v in value]
        for code in out:
            if code not in ALERT_SIGNAL_TYPES:
                raise ValueError(
                    f"unknown signal type {code!r}; allowed: {', '.join(ALERT_SIGNAL_TYPES)}"
                )
        return out

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        return [_check_symbol(v) for v in value]

    @field_validator("risk_profile")
    @classmethod
    def _check_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in RISK_PROFILE_NAMES:
            raise ValueError(
                f"unknown risk profile {value!r}; allowed: {', '.join(RISK_PROFILE_NAMES)}"
            )
        return value


class PriceAlert(_Section):
    """Alert when a symbol's last price crosses a level."""

    symbol: str
    """Venue symbol (``BTCUSDT``)."""
    above: float | None = Field(default=None, gt=0.0)
    """Alert when the price is at or above this level (quote currency)."""
    below: float | None = Field(default=None, gt=0.0)
    """Alert when the price is at or below this level (quote currency)."""
    once: bool = True
    """Alert only the first time, ever: once the alert log holds a price alert with this
    symbol, side (above / below) and level (quote currency), on any day, it stays quiet,
    across restarts; otherwise re-arm once the price is back on the other side."""
    name: str = ""
    """Name shown in the alert; empty = ``price``."""

    @field_validator("symbol")
    @classmethod
    def _check_sym(cls, value: str) -> str:
        return _check_symbol(value)

    @model_validator(mode="after")
    def _check_levels(self) -> PriceAlert:
        if self.above is None and self.below is None:
            raise ValueError(f"price alert for {self.symbol}: set `above` and/or `below`")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError(
                f"price alert for {self.symbol}: below ({self.below}) must be under above "
                f"({self.above})"
            )
        return self


class InAppConfig(_Section):
    """In-app notification: a toast in the terminal UI and the terminal bell."""

    enabled: bool = True
    """Show a toast for each alert."""
    bell: bool = True
    """Ring the terminal bell with the toast."""


class DesktopConfig(_Section):
    """Desktop notification through ``notify-send`` (libnotify), where installed."""

    enabled: bool = False
    """Send desktop notifications (disabled with a reason when the command is not found)."""
    command: str = "notify-send"
    """Command run as ``<command> <title> <body>``."""

    def availability(self) -> tuple[bool, str]:
        """Whether the channel can run: ``(True, "")`` or ``(False, reason)``."""
        if not self.enabled:
            return False, "disabled in config"
        if shutil.which(self.command) is None:
            return False, f"{self.command} not found on PATH"
        return True, ""


class TelegramConfig(_Section):
    """Telegram Bot API (``sendMessage``)."""

    enabled: bool = False
    """Send alerts to Telegram."""
    bot_token: SecretStr | None = None
    """Bot token from @BotFather; empty = ``$PERPSCOPE_TELEGRAM_TOKEN``. Never logged."""
    chat_id: str = ""
    """Chat, group or channel id (``123456789`` or ``@channel``); empty =
    ``$PERPSCOPE_TELEGRAM_CHAT_ID``."""
    base_url: str = "https://api.telegram.org"
    """Bot API base URL (tests point it at a loopback server)."""

    def resolved_token(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        """The bot token: ``bot_token``, else ``$PERPSCOPE_TELEGRAM_TOKEN``, else ``None``."""
        env = os.environ if environ is None else environ
        if self.bot_token is not None and self.bot_token.get_secret_value():
            return self.bot_token
        value = env.get(TELEGRAM_TOKEN_ENV, "").strip()
        return SecretStr(value) if value else None

    def resolved_chat_id(self, environ: Mapping[str, str] | None = None) -> str:
        """The chat id: ``chat_id``, else ``$PERPSCOPE_TELEGRAM_CHAT_ID``, else empty."""
        env = os.environ if environ is None else environ
        return self.chat_id or env.get(TELEGRAM_CHAT_ENV, "").strip()


class WebhookConfig(_Section):
    """Generic webhook: one JSON POST per alert."""

    enabled: bool = False
    """POST alerts to ``url``."""
    url: SecretStr | None = None
    """Endpoint (http or https); kept secret because webhook URLs often embed a token."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            # The URL itself is not echoed: it may hold a token.
            raise ValueError("webhook url must start with http:// or https://")
        return value


def _default_rules() -> list[AlertRule]:
    return [
        AlertRule(
            name="strong",
            signal_types=["STRONG_LONG", "STRONG_SHORT"],
            min_score=65.0,
            min_confidence=0.5,
        )
    ]


class AlertsConfig(_Section):
    """Alerts: which events alert, and where they are sent."""

    enabled: bool = True
    """Master switch; off = no rule, price or pick alert fires."""
    rules: list[AlertRule] = Field(default_factory=_default_rules)
    """Signal alert rules."""
    price_alerts: list[PriceAlert] = Field(default_factory=list)
    """Price-level alerts."""
    pick_status: bool = True
    """Alert when a pick changes status (``TP1``, ``TP2``, ``SL``, ``EXPIRED``, ...)."""
    top_reasons: int = Field(default=3, ge=0, le=10)
    """Strongest factors listed in a signal alert."""
    in_app: InAppConfig = Field(default_factory=InAppConfig)
    """Toast and bell."""
    desktop: DesktopConfig = Field(default_factory=DesktopConfig)
    """Desktop notification."""
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    """Telegram."""
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    """Generic webhook."""
    retries: int = Field(default=3, ge=0, le=20)
    """Extra attempts per channel after a failed send."""
    backoff_s: float = Field(default=1.0, gt=0.0, le=600.0)
    """First retry delay; doubled after each failure (capped by ``backoff_max_s``)."""
    backoff_max_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    """Longest retry delay."""
    max_retry_after_s: float = Field(default=300.0, gt=0.0, le=3600.0)
    """Longest server-requested wait (Telegram ``retry_after``, HTTP ``Retry-After``) honoured;
    longer requests are cut to this."""
    queue_size: int = Field(default=200, ge=1, le=100_000)
    """Alerts waiting per channel; beyond this an alert is marked failed for that channel."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=300.0)
    """Give up one send attempt after this long."""

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[AlertRule]) -> list[AlertRule]:
        names = [r.name for r in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"alert rule names must be unique; repeated: {', '.join(dupes)}")
        return value
