"""Configuration section owned by the TUI (a plain pydantic model; loaded by tui/settings.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UiConfig(BaseModel):
    """How the terminal UI looks and behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    refresh_hz: float = Field(default=4.0, ge=0.5, le=10.0)
    """How often the screen pulls a new engine snapshot (Hz)."""
    chart_timeframe: str = "1h"
    """Timeframe the symbol view opens on (must be one of the configured timeframes, else the
    smallest is used)."""
    chart_bars: int = Field(default=120, ge=20, le=1000)
    """Candles drawn in the symbol view chart."""
    theme: str = "textual-dark"
    """Textual theme name (``textual-dark``, ``textual-light``, ``nord``, ``gruvbox``, ...)."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Key overrides: binding id → keys, e.g. ``{"table.sort" = "o"}``. Ids are listed in the
    help screen (``?``)."""
    bell: bool = False
    """Ring the terminal bell on important events."""
