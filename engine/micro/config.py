"""Configuration of the microstructure features, score and signal gate (``MicroConfig``).

Defaults are tuned for BTC-like books (tick 0.1 USDT, ~10-50 M USDT within 1 % of the mid):
thresholds in quote currency scale with the symbol's liquidity, so thinner symbols need lower
``sweep_min_quote`` / ``flip_min_depth_quote``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feeds.intervals import INTERVAL_MS

FACTOR_NAMES = (
    "orderflow_imbalance",
    "liquidity_pressure",
    "sweeps",
    "oi_divergence",
    "funding",
    "momentum",
    "btc_microtrend",
)
"""Score factors, in breakdown order."""


def pct_band_key(pct: float) -> str:
    """Band key of a percentage band: ``0.5`` → ``"0.5%"``, ``1.0`` → ``"1%"``."""
    return f"{pct:g}%"


def _check_windows(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("at least one window is required")
    for code in value:
        if code not in INTERVAL_MS:
            raise ValueError(f"unknown window {code!r}; allowed: {', '.join(INTERVAL_MS)}")
    if len(set(value)) != len(value):
        raise ValueError("windows must not repeat")
    return sorted(value, key=INTERVAL_MS.__getitem__)


class MicroConfig(BaseModel):
    """Microstructure features, score weights, entry conditions and scalp plan."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    # -- book ------------------------------------------------------------------------------
    depth_top_levels: int = Field(default=20, ge=1, le=1000)
    """Levels per side of the ``top<N>`` depth band."""
    depth_bands_pct: list[float] = Field(default_factory=lambda: [0.1, 0.5, 1.0])
    """Percentage depth bands (levels within this % of the mid), e.g. 0.5 = 0.5 %. Note a
    1000-level snapshot spans only ~0.3 % of a BTC book, so its 0.5 % and 1 % bands are the
    whole book held; 0.1 % is the band that moves with scalping pressure there."""
    imbalance_band: str = "0.1%"
    """Depth band whose bid/ask depth gives the book imbalance: ``top<N>`` or a % band key
    (``0.1%``). Near-touch bands react to pressure; wide bands barely move (0.5 % of a BTC
    book stayed within ±0.11 in a recorded session)."""
    wall_k: float = Field(default=10.0, gt=1.0, le=1000.0)
    """A level is a wall when its size is at least this many times the median level size of
    its side within the wall band."""
    wall_band_pct: float = Field(default=1.0, gt=0.0, le=20.0)
    """Walls are looked for within this % of the mid."""
    wall_min_levels: int = Field(default=5, ge=3, le=1000)
    """Levels a side needs within the wall band before its median is trusted."""
    wall_max: int = Field(default=6, ge=0, le=100)
    """Walls reported, largest multiple first."""
    flip_min_imbalance: float = Field(default=0.2, gt=0.0, le=1.0)
    """|imbalance| the book must reach on the new side for a liquidity flip."""
    flip_min_depth_quote: float = Field(default=1_000_000.0, ge=0.0)
    """Bid + ask depth of the imbalance band (quote currency) a flip needs (thin books flip
    on noise)."""

    # -- trade flow ------------------------------------------------------------------------
    flow_windows: list[str] = Field(default_factory=lambda: ["1m", "5m", "15m"])
    """Rolling trade-flow windows (interval codes); the shortest sets the trade rate."""
    flow_bucket_ms: int = Field(default=1000, ge=100, le=60_000)
    """Resolution of the flow windows: trades are summed in buckets of this length (ms), so
    memory is bounded by window / bucket whatever the trade rate."""
    sweep_window_ms: int = Field(default=250, ge=1, le=10_000)
    """A sweep is a burst of same-side taker trades within this long (ms) of its first."""
    sweep_min_levels: int = Field(default=3, ge=2, le=1000)
    """Distinct prices a burst must trade through to be a sweep ..."""
    sweep_min_quote: float = Field(default=500_000.0, gt=0.0)
    """... or the quote volume (quote currency) it must reach."""
    sweep_keep: int = Field(default=20, ge=1, le=1000)
    """Recent sweeps kept per symbol."""
    cvd_step_ms: int = Field(default=5_000, ge=100, le=3_600_000)
    """Step (ms) of the session CVD series for the sparkline."""
    cvd_points: int = Field(default=120, ge=2, le=10_000)
    """Points of the CVD series kept."""
    momentum_window_ms: int = Field(default=30_000, ge=1_000, le=3_600_000)
    """Momentum is the return of the last trade (else mark) price over this window (ms)."""

    # -- derivatives -----------------------------------------------------------------------
    oi_windows: list[str] = Field(default_factory=lambda: ["5m", "15m", "1h"])
    """Open interest change windows (interval codes)."""
    oi_history_max: int = Field(default=240, ge=2, le=10_000)
    """Open interest polls kept (240 polls at one a minute cover 4 h)."""
    oi_window_tolerance: float = Field(default=0.1, ge=0.0, le=0.5)
    """A poll at least ``window * (1 - tolerance)`` before the latest one covers the window
    (polls are jittered)."""
    divergence_window: str = "15m"
    """Window of the open-interest / price divergence."""
    divergence_min_oi: float = Field(default=0.005, gt=0.0, le=1.0)
    """|open interest change| (fraction) over the window a divergence needs."""
    divergence_min_price: float = Field(default=0.002, gt=0.0, le=1.0)
    """|price change| (fraction) over the window a divergence needs."""
    liquidation_windows: list[str] = Field(default_factory=lambda: ["1m", "5m", "15m"])
    """Windows of the liquidated notional by side."""
    liquidation_keep: int = Field(default=50, ge=1, le=10_000)
    """Recent liquidation prints shown."""

    # -- score -----------------------------------------------------------------------------
    weight_orderflow_imbalance: float = Field(default=0.25, ge=0.0, le=10.0)
    """Weight of the taker buy/sell imbalance over the shortest flow window."""
    weight_liquidity_pressure: float = Field(default=0.20, ge=0.0, le=10.0)
    """Weight of the resting book imbalance."""
    weight_sweeps: float = Field(default=0.15, ge=0.0, le=10.0)
    """Weight of recent sweeps (net side of swept notional)."""
    weight_oi_divergence: float = Field(default=0.10, ge=0.0, le=10.0)
    """Weight of the open-interest / price divergence."""
    weight_funding: float = Field(default=0.05, ge=0.0, le=10.0)
    """Weight of the (contrarian) funding reading."""
    weight_momentum: float = Field(default=0.15, ge=0.0, le=10.0)
    """Weight of the symbol's short-term momentum."""
    weight_btc_microtrend: float = Field(default=0.10, ge=0.0, le=10.0)
    """Weight of BTC's short-term momentum (market direction)."""
    pressure_full_imbalance: float = Field(default=0.3, gt=0.0, le=1.0)
    """Book imbalance that makes a full liquidity-pressure reading."""
    sweep_recent_ms: int = Field(default=30_000, ge=1_000, le=3_600_000)
    """Sweeps this recent (ms) feed the sweeps factor."""
    funding_neutral: float = Field(default=0.0001, ge=-0.01, le=0.01)
    """Funding rate (fraction per interval) read as neutral (Binance's 0.01 % baseline)."""
    funding_full: float = Field(default=0.0005, gt=0.0, le=0.05)
    """Funding above neutral by this much is a full (contrarian) reading."""
    momentum_full: float = Field(default=0.002, gt=0.0, le=1.0)
    """Return (fraction) over the momentum window that makes a full momentum reading; also
    used for ``btc_microtrend``."""

    # -- entry -----------------------------------------------------------------------------
    long_threshold: float = Field(default=65.0, ge=50.0, le=100.0)
    """Score at or above which the micro score leans long enough to enter."""
    short_threshold: float = Field(default=35.0, ge=0.0, le=50.0)
    """Score at or below which it leans short enough to enter."""
    entry_min_imbalance: float = Field(default=0.1, ge=0.0, le=1.0)
    """Book imbalance needed in the entry direction (+ for long, - for short)."""
    entry_sweep_within_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    """A same-side sweep must have happened within this many seconds (0: not required)."""
    max_spread_bps: float = Field(default=5.0, gt=0.0, le=10_000.0)
    """Widest spread (bps) at which an entry is allowed."""
    cooldown_s: float = Field(default=300.0, ge=0.0, le=86_400.0)
    """Seconds after a micro signal before the same symbol may signal again."""
    daily_max_signals: int = Field(default=20, ge=1, le=10_000)
    """Micro signals per symbol per UTC day."""

    # -- plan ------------------------------------------------------------------------------
    plan_mode: Literal["percent", "atr"] = "percent"
    """``percent``: stop/targets at fixed % of the entry; ``atr``: ATR multiples of the base
    timeframe (falls back to percent while the ATR is unknown)."""
    stop_pct: float = Field(default=0.25, gt=0.0, le=50.0)
    """Stop distance in percent of the entry (0.25 = 0.25 %)."""
    tp1_pct: float = Field(default=0.35, gt=0.0, le=100.0)
    """Take profit 1 distance in percent."""
    tp2_pct: float = Field(default=0.7, gt=0.0, le=100.0)
    """Take profit 2 distance in percent."""
    stop_atr: float = Field(default=1.0, gt=0.0, le=20.0)
    """Stop distance in ATR."""
    tp1_atr: float = Field(default=1.5, gt=0.0, le=50.0)
    """Take profit 1 distance in ATR."""
    tp2_atr: float = Field(default=3.0, gt=0.0, le=100.0)
    """Take profit 2 distance in ATR."""
    atr_timeframe: str = "5m"
    """Timeframe whose ATR the caller passes (recorded in ATR plans)."""

    @field_validator("depth_bands_pct")
    @classmethod
    def _check_bands(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("at least one percentage depth band is required")
        for pct in value:
            if not 0.0 < pct <= 20.0:
                raise ValueError(f"depth band {pct}% is outside (0, 20]")
        if len(set(value)) != len(value):
            raise ValueError("depth bands must not repeat")
        return sorted(value)

    @field_validator("flow_windows", "oi_windows", "liquidation_windows")
    @classmethod
    def _check_window_list(cls, value: list[str]) -> list[str]:
        return _check_windows(value)

    @model_validator(mode="after")
    def _check(self) -> MicroConfig:
        if self.imbalance_band not in self.band_keys:
            raise ValueError(
                f"imbalance_band {self.imbalance_band!r} is not a depth band; "
                f"have {', '.join(self.band_keys)}"
            )
        if self.divergence_window not in INTERVAL_MS:
            raise ValueError(f"divergence_window {self.divergence_window!r} is not an interval")
        if self.atr_timeframe not in INTERVAL_MS:
            raise ValueError(f"atr_timeframe {self.atr_timeframe!r} is not an interval")
        if not self.tp1_pct < self.tp2_pct:
            raise ValueError("tp1_pct must be smaller than tp2_pct")
        if not self.tp1_atr < self.tp2_atr:
            raise ValueError("tp1_atr must be smaller than tp2_atr")
        if sum(self.weights.values()) <= 0:
            raise ValueError("score factor weights must not all be 0")
        return self

    @property
    def top_key(self) -> str:
        """Key of the top-N depth band (``top10``)."""
        return f"top{self.depth_top_levels}"

    @property
    def band_keys(self) -> tuple[str, ...]:
        """All depth band keys: ``top<N>`` then the % bands, narrowest first."""
        return (self.top_key, *(pct_band_key(p) for p in self.depth_bands_pct))

    @property
    def weights(self) -> dict[str, float]:
        """Factor name → weight, in :data:`FACTOR_NAMES` order."""
        return {name: float(getattr(self, f"weight_{name}")) for name in FACTOR_NAMES}
