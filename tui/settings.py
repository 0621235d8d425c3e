"""Settings: one pydantic-settings root of nested sections, loaded from TOML and environment.

Precedence, highest first: environment variables ``PERPSCOPE_<SECTION>__<KEY>``, then the
config file, then the defaults documented in the repository's ``config.toml``.

The config file is, in order: ``--config PATH``, ``$PERPSCOPE_CONFIG``, then
``<user config dir>/perpscope/config.toml`` if it exists (platformdirs), else none.

Only this module imports pydantic-settings; the engine and feeds get their sections through
constructors.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ai.config import AiConfig
from engine.alerts.config import AlertsConfig
from engine.config import EngineConfig, IndicatorConfig, SignalConfig, TimeframeConfig
from engine.micro import MicroConfig
from engine.outcomes import OutcomeConfig
from engine.picks import PicksConfig
from feeds.config import (
    BookConfig,
    EndpointConfig,
    FeedConfig,
    OpenInterestConfig,
    UniverseConfig,
)
from tui.ui_config import UiConfig

APP_NAME = "perpscope"
ENV_PREFIX = "PERPSCOPE_"
CONFIG_ENV = "PERPSCOPE_CONFIG"


class ConfigError(Exception):
    """A configuration problem, with a message meant for the user (no traceback)."""


class GeneralConfig(BaseModel):
    """Exchange and where perpscope keeps its files."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    exchange: Literal["binanceusdm"] = "binanceusdm"
    """Exchange (ccxt id). Only Binance USDⓈ-M futures is supported."""
    data_dir: Path | None = None
    """Where the kline cache and databases live; empty = the user data dir
    (``~/.local/share/perpscope`` on Linux)."""


class EngineSection(BaseModel):
    """Engine-wide settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    stale_after_s: float = Field(default=30.0, gt=0.0, le=86400.0)
    """A symbol with no market data for this long is stale: dimmed, no new signal."""


class Settings(BaseSettings):
    """The whole configuration; one attribute per ``[section]`` of ``config.toml``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    general: GeneralConfig = Field(default_factory=GeneralConfig)
    """Exchange and data directory."""
    endpoints: EndpointConfig = Field(default_factory=EndpointConfig)
    """REST and WebSocket base URLs."""
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    """Which symbols to scan."""
    feed: FeedConfig = Field(default_factory=FeedConfig)
    """WebSocket and REST policy."""
    book: BookConfig = Field(default_factory=BookConfig)
    """Local order books (diff depth + REST snapshots)."""
    open_interest: OpenInterestConfig = Field(default_factory=OpenInterestConfig)
    """Open interest polling."""
    timeframes: TimeframeConfig = Field(default_factory=TimeframeConfig)
    """Timeframes and history bars."""
    indicators: IndicatorConfig = Field(default_factory=IndicatorConfig)
    """Indicator parameters."""
    signals: SignalConfig = Field(default_factory=SignalConfig)
    """Vote weights, thresholds, trade plan."""
    engine: EngineSection = Field(default_factory=EngineSection)
    """Engine-wide settings."""
    micro: MicroConfig = Field(default_factory=MicroConfig)
    """Microstructure features, score and scalp signals (symbols with an order book)."""
    outcomes: OutcomeConfig = Field(default_factory=OutcomeConfig)
    """How emitted signals are judged: horizon per timeframe, fees and slippage."""
    picks: PicksConfig = Field(default_factory=PicksConfig)
    """Picks: expiry, the TP1 part taken, optional paper sizing."""
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    """Alert rules and delivery channels (in-app, desktop, Telegram, webhook)."""
    ui: UiConfig = Field(default_factory=UiConfig)
    """Terminal UI."""
    ai: AiConfig = Field(default_factory=AiConfig)
    """AI analyst: local Ollama server and model, context budget, freshness limits."""

    _toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Env beats the file on purpose: a one-off `PERPSCOPE_UNIVERSE__TOP_N=20` must win.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    def engine_config(self) -> EngineConfig:
        """The engine's view of these settings."""
        return EngineConfig(
            timeframes=self.timeframes,
            indicators=self.indicators,
            signals=self.signals,
            stale_after_s=self.engine.stale_after_s,
        )

    def data_path(self) -> Path:
        """Data directory (created on demand by its users)."""
        if self.general.data_dir is not None:
            return self.general.data_dir.expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME))


def default_config_path() -> Path:
    """``<user config dir>/perpscope/config.toml``."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def resolve_config_path(cli_path: str | None) -> tuple[Path | None, str]:
    """Which config file to read, and why.

    Returns:
        (path or None, origin) where origin is ``--config``, ``$PERPSCOPE_CONFIG``,
        ``user config`` or ``defaults``.

    Raises:
        ConfigError: if an explicitly given file does not exist.
    """
    if cli_path:
        path, origin = Path(cli_path).expanduser(), "--config"
    elif os.environ.get(CONFIG_ENV):
        path, origin = Path(os.environ[CONFIG_ENV]).expanduser(), f"${CONFIG_ENV}"
    else:
        user = default_config_path()
        return (user, "user config") if user.is_file() else (None, "defaults")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (given by {origin})")
    return path, origin


def load_settings(config_path: str | None = None, **overrides: Any) -> Settings:
    """Load settings from the resolved config file and the environment.

    Args:
        config_path: ``--config`` value, if given.
        **overrides: Section values that beat every source (used by tests).

    Raises:
        ConfigError: with one readable message naming the file (or env var), key, value and
            what is allowed.
    """
    path, _origin = resolve_config_path(config_path)
    if path is not None:
        _check_toml(path)
    cls = type("LoadedSettings", (Settings,), {"_toml_file": path})
    try:
        return cls(**overrides)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error in {path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(root)"
        env_name = ENV_PREFIX + "__".join(part.upper() for part in loc[:2])
        origin = f"environment variable {env_name}" if env_name in os.environ else (
            f"{path}" if path is not None else "defaults"
        )
        if error["type"] == "extra_forbidden":
            lines.append(f"{origin}: unknown key {key!r}{_allowed_keys(loc)}")
            continue
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        lines.append(f"{origin}: {key}{shown}: {message}")
    head = "config error" if len(lines) == 1 else f"{len(lines)} config errors"
    return head + ":\n  " + "\n  ".join(lines)


def _allowed_keys(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    return f" (allowed: {', '.join(model.model_fields)})"
