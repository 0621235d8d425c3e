"""Alert channels: in-app callback, desktop (``notify-send``), Telegram Bot API, webhook.

A channel sends one :class:`~engine.alerts.rules.Alert` per :meth:`AlertChannel.send` call and
reports failure as :class:`ChannelError` (retryable or not, with the wait the server asked for).
Retries, timeouts and health live in :mod:`engine.alerts.dispatcher`.

Secrets (bot token, webhook URL) are held as :class:`pydantic.SecretStr` and scrubbed from every
error text; errors are raised without chaining, so no traceback carries a request URL.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec
from pydantic import SecretStr

from engine.alerts.config import AlertsConfig
from engine.alerts.message import render_json, render_telegram, render_text, title
from engine.alerts.rules import Alert

log = logging.getLogger(__name__)

InAppCallback = Callable[[Alert], None]
"""What the UI registers: called on the event loop with each alert (toast + bell)."""


class ChannelError(Exception):
    """A failed send.

    Args:
        reason: Short reason for the status bar and the alert log (never holds a secret).
        retryable: False when retrying cannot help (bad token, chat not found, 4xx).
        retry_after: Seconds the server asked to wait before the next attempt, if any.
    """

    def __init__(
        self, reason: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class AlertChannel(Protocol):
    """One delivery channel."""

    @property
    def name(self) -> str:
        """Channel name (``in_app``, ``desktop``, ``telegram``, ``webhook``)."""
        ...

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``.

        Raises:
            ChannelError: when it was not delivered.
        """
        ...

    async def aclose(self) -> None:
        """Release connections (idempotent)."""
        ...


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (RFC 9110 §10.2.3).

    Args:
        value: Header value: delay seconds (``"3"``) or an HTTP date.
        now_s: Current time, s since the epoch (default: wall clock), for the date form.

    Returns:
        Seconds (>= 0), or ``None`` when absent or unparseable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


class InAppChannel:
    """Toast + bell in the terminal UI: calls the callback the UI registers.

    Without a registered callback a send fails (retryable), so alerts raised before the UI is
    up are delivered once it registers, within the dispatcher's retries.
    """

    name = "in_app"

    def __init__(self, callback: InAppCallback | None = None) -> None:
        self._callback = callback

    def register(self, callback: InAppCallback | None) -> None:
        """Set (or clear, with ``None``) the UI callback."""
        self._callback = callback

    async def send(self, alert: Alert) -> None:
        """Call the callback with ``alert``.

        Raises:
            ChannelError: no callback registered, or it raised.
        """
        if self._callback is None:
            raise ChannelError("no in-app listener registered")
        try:
            self._callback(alert)
        except Exception as exc:
            raise ChannelError(f"in-app callback failed: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Nothing to release."""


class DesktopChannel:
    """Desktop notification: runs ``<command> --app-name perpscope <title> <body>``.

    Args:
        command: The notifier (``notify-send`` from libnotify, or a path).
    """

    name = "desktop"

    def __init__(self, command: str = "notify-send") -> None:
        self._command = command

    async def send(self, alert: Alert) -> None:
        """Run the notifier and wait for it.

        Raises:
            ChannelError: the command is missing (not retryable) or exits non-zero.
        """
        text = render_text(alert).split("\n", 1)
        body = text[1] if len(text) > 1 else ""
        try:
            proc = await asyncio.create_subprocess_exec(
                self._command, "--app-name", "perpscope", title(alert), body,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ChannelError(
                f"cannot run {self._command}: {exc.strerror or exc}", retryable=False
            ) from None
        try:
            _, stderr = await proc.communicate()
        except asyncio.CancelledError:
            # A timeout cancels us: do not leave the notifier running.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            detail = _short(stderr.decode(errors="replace")) if stderr else ""
            raise ChannelError(f"{self._command} exited {proc.returncode}: {detail}".rstrip(": "))

    async def aclose(self) -> None:
        """Nothing to release."""


class _HttpChannel:
    """Shared aiohttp session handling of the HTTP channels."""

    def __init__(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session
        self._own_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def aclose(self) -> None:
        """Close the session this channel opened (a passed-in one is left to its owner)."""
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()
        if self._own_session:
            self._session = None


class TelegramChannel(_HttpChannel):
    """Telegram Bot API: ``POST {base_url}/bot{token}/sendMessage`` with HTML text.

    Args:
        token: Bot token (never logged or put in errors).
        chat_id: Target chat id or ``@channel``.
        base_url: API base (``https://api.telegram.org``; tests use a loopback server).
        session: aiohttp session to use; default: one of its own, closed by :meth:`aclose`.

    A 429 reply's ``parameters.retry_after`` (seconds) becomes ``ChannelError.retry_after``.
    """

    name = "telegram"

    def __init__(
        self,
        token: SecretStr,
        chat_id: str,
        *,
        base_url: str = "https://api.telegram.org",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(session)
        self._token = token
        self._chat_id = chat_id
        self._base = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self._chat_id!r}, base_url={self._base!r})"

    def _fail(
        self, reason: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> ChannelError:
        return ChannelError(
            _short(_scrub(reason, [self._token.get_secret_value()])),
            retryable=retryable,
            retry_after=retry_after,
        )

    async def send(self, alert: Alert) -> None:
        """Send ``alert`` as an HTML message.

        Raises:
            ChannelError: on a connection error or non-2xx reply; 429 carries
                ``retry_after``, other 4xx are not retryable.
        """
        url = f"{self._base}/bot{self._token.get_secret_value()}/sendMessage"
        payload = {
            "chat_id": self._chat_id,
            "text": render_telegram(alert),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        try:
            async with self._client().post(url, json=payload) as resp:
                status = resp.status
                raw = await resp.read()
        except aiohttp.ClientError as exc:
            raise self._fail(f"connection failed: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return
        description, retry_after = _telegram_error(raw)
        reason = f"HTTP {status}" + (f": {description}" if description else "")
        if status == 429:
            raise self._fail(reason, retry_after=retry_after)
        raise self._fail(reason, retryable=status >= 500)


class _TelegramParams(msgspec.Struct):
    retry_after: float | None = None


class _TelegramReply(msgspec.Struct):
    ok: bool = False
    description: str = ""
    parameters: _TelegramParams | None = None


def _telegram_error(raw: bytes) -> tuple[str, float | None]:
    """``(description, retry_after)`` of a Bot API error reply (empty / None if unreadable)."""
    try:
        reply = msgspec.json.decode(raw, type=_TelegramReply)
    except msgspec.DecodeError:
        return "", None
    retry = reply.parameters.retry_after if reply.parameters is not None else None
    return reply.description, retry


class WebhookChannel(_HttpChannel):
    """Generic webhook: ``POST url`` with the alert as JSON (:func:`render_json`).

    Args:
        url: Endpoint; kept secret (errors name only its scheme and host).
        session: aiohttp session to use; default: one of its own, closed by :meth:`aclose`.

    2xx is success; 408, 429 and 5xx are retried (``Retry-After`` honoured); other 4xx are not.
    """

    name = "webhook"

    def __init__(self, url: SecretStr, *, session: aiohttp.ClientSession | None = None) -> None:
        super().__init__(session)
        self._url = url
        parts = urlsplit(url.get_secret_value())
        self._where = f"{parts.scheme}://{parts.hostname or '?'}" + (
            f":{parts.port}" if parts.port else ""
        )

    def __repr__(self) -> str:
        return f"WebhookChannel({self._where})"

    async def send(self, alert: Alert) -> None:
        """POST ``alert`` as JSON.

        Raises:
            ChannelError: on a connection error or non-2xx reply.
        """
        secret = self._url.get_secret_value()
        try:
            async with self._client().post(
                secret,
                data=render_json(alert),
                headers={"Content-Type": "application/json"},
            ) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                await resp.read()
        except aiohttp.ClientError as exc:
            reason = f"{self._where}: connection failed: {type(exc).__name__}: {exc}"
            raise ChannelError(_short(_scrub(reason, [secret]))) from None
        if 200 <= status < 300:
            return
        retryable = status in (408, 429) or status >= 500
        raise ChannelError(
            f"{self._where}: HTTP {status}", retryable=retryable, retry_after=retry_after
        )


def build_channels(
    config: AlertsConfig,
    *,
    in_app: InAppChannel | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[list[AlertChannel], dict[str, str]]:
    """The enabled channels of ``config``, and why each configured-but-unusable one is off.

    Args:
        config: The ``[alerts]`` section.
        in_app: The in-app channel the UI registers on (created when ``None`` and enabled).
        environ: Environment for the Telegram token / chat id (default ``os.environ``).

    Returns:
        ``(channels, disabled)``: channels to give the dispatcher, and channel name → reason
        for channels that are enabled in config but cannot run (no token, no command, ...).
    """
    channels: list[AlertChannel] = []
    disabled: dict[str, str] = {}
    if config.in_app.enabled:
        channels.append(in_app or InAppChannel())
    if config.desktop.enabled:
        ok, reason = config.desktop.availability()
        if ok:
            channels.append(DesktopChannel(config.desktop.command))
        else:
            disabled["desktop"] = reason
    if config.telegram.enabled:
        token = config.telegram.resolved_token(environ)
        chat = config.telegram.resolved_chat_id(environ)
        if token is None:
            disabled["telegram"] = "no bot token (set PERPSCOPE_TELEGRAM_TOKEN)"
        elif not chat:
            disabled["telegram"] = "no chat id (set [alerts.telegram] chat_id)"
        else:
            channels.append(TelegramChannel(token, chat, base_url=config.telegram.base_url))
    if config.webhook.enabled:
        if config.webhook.url is None:
            disabled["webhook"] = "no url (set [alerts.webhook] url)"
        else:
            channels.append(WebhookChannel(config.webhook.url))
    for name, reason in disabled.items():
        log.warning("alert channel %s disabled: %s", name, reason)
    return channels, disabled
