"""Configuration section owned by the TUI (a plain pydantic model; loaded by tui/settings.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from feeds.intervals import interval_ms

TABLE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "last",
    "change",
    "signal",
    "score",
    "conf",
    "votes",
    "rr",
    "track",
    "fund",
    "fund_in",
    "oi",
    "spread",
    "imb",
    "micro",
    "age",
)
"""Signal table column keys in display order (``votes`` stands for every per-timeframe vote
column); the allowed values of ``[ui] columns``."""


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
    columns: list[str] = Field(default_factory=lambda: list(TABLE_COLUMNS))
    """Signal table columns to show (default: all of them): ``symbol``, ``last``, ``change``,
    ``signal``, ``score``, ``conf``, ``votes`` (one glyph per timeframe), ``rr``, ``track``
    (measured hit rate of the row's signal type, when signals are stored), ``fund``
    (funding rate), ``fund_in`` (time to funding), ``oi`` (open-interest change), ``spread``
    (bps), ``imb`` (book imbalance), ``micro`` (microstructure score), ``age``. ``symbol`` is
    always shown. Narrow terminals still drop the least important ones; ``v`` picks columns
    at runtime."""
    oi_window: str = "1h"
    """Open-interest change window of the ``oi`` column (``5m``, ``15m``, ``1h``); when the
    poll history does not cover it yet, the longest covered window is shown."""

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: list[str]) -> list[str]:
        unknown = [c for c in columns if c not in TABLE_COLUMNS]
        if unknown:
            raise ValueError(
                f"unknown column(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(TABLE_COLUMNS)}"
            )
        # Duplicates collapse; the table keeps its own display order either way.
        return list(dict.fromkeys(columns))

    @field_validator("oi_window")
    @classmethod
    def _known_window(cls, window: str) -> str:
        interval_ms(window)  # ValueError naming the allowed codes
        return window
