"""Configuration sections owned by the engine (plain pydantic models, no settings loading)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feeds.intervals import INTERVAL_MS

RISK_PROFILE_NAMES = ("conservative", "balanced", "aggressive")
"""Risk profiles, most cautious first (definitions in ``engine.profiles``)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class TimeframeConfig(_Section):
    """Timeframes scanned and how much history each keeps."""

    timeframes: list[str] = Field(default_factory=lambda: ["5m", "15m", "1h", "4h"])
    """Timeframes fused into the signal, smallest first. Allowed: 1m 3m 5m 15m 30m 1h 2h 4h
    6h 8h 12h 1d."""
    history_bars: dict[str, int] = Field(
        default_factory=lambda: {"5m": 500, "15m": 500, "1h": 500, "4h": 300, "1d": 200}
    )
    """Closed candles kept (and backfilled) per timeframe; a timeframe missing here gets 500."""
    min_bars: int = Field(default=210, ge=30, le=5000)
    """Closed candles a timeframe needs before it votes (EMA200 needs 200); fewer = warming up."""

    @field_validator("timeframes")
    @classmethod
    def _check_timeframes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one timeframe is required")
        for code in value:
            if code not in INTERVAL_MS:
                raise ValueError(f"unknown timeframe {code!r}; allowed: {', '.join(INTERVAL_MS)}")
        if len(set(value)) != len(value):
            raise ValueError("timeframes must not repeat")
        return sorted(value, key=INTERVAL_MS.__getitem__)

    @field_validator("history_bars")
    @classmethod
    def _check_history(cls, value: dict[str, int]) -> dict[str, int]:
        for code, bars in value.items():
            if code not in INTERVAL_MS:
                raise ValueError(f"unknown timeframe {code!r}; allowed: {', '.join(INTERVAL_MS)}")
            if not 50 <= bars <= 5000:
                raise ValueError(f"{code}: {bars} bars is outside 50..5000")
        return value

    def bars_for(self, timeframe: str) -> int:
        """History bars kept for ``timeframe``."""
        return self.history_bars.get(timeframe, 500)


class IndicatorConfig(_Section):
    """Indicator parameters (TA-Lib periods unless noted)."""

    ema_periods: list[int] = Field(default_factory=lambda: [9, 21, 50, 200])
    """EMA periods, fastest first; the stack order of these is the trend vote."""
    macd_fast: int = Field(default=12, ge=2, le=200)
    """MACD fast EMA period."""
    macd_slow: int = Field(default=26, ge=3, le=400)
    """MACD slow EMA period."""
    macd_signal: int = Field(default=9, ge=2, le=200)
    """MACD signal line period."""
    rsi_period: int = Field(default=14, ge=2, le=200)
    """RSI period."""
    stochrsi_period: int = Field(default=14, ge=2, le=200)
    """StochRSI RSI period."""
    stochrsi_k: int = Field(default=3, ge=1, le=50)
    """StochRSI %K smoothing."""
    stochrsi_d: int = Field(default=3, ge=1, le=50)
    """StochRSI %D smoothing."""
    atr_period: int = Field(default=14, ge=2, le=200)
    """ATR period."""
    adx_period: int = Field(default=14, ge=2, le=200)
    """ADX period."""
    bb_period: int = Field(default=20, ge=2, le=200)
    """Bollinger period."""
    bb_stddev: float = Field(default=2.0, gt=0.0, le=5.0)
    """Bollinger band width in standard deviations."""
    supertrend_period: int = Field(default=10, ge=2, le=200)
    """Supertrend ATR period."""
    supertrend_multiplier: float = Field(default=3.0, gt=0.0, le=10.0)
    """Supertrend ATR multiplier."""
    sr_lookback: int = Field(default=20, ge=2, le=500)
    """Bars of rolling support (lowest low) and resistance (highest high)."""
    obv_slope_bars: int = Field(default=10, ge=2, le=200)
    """Bars over which the OBV slope is measured for the volume vote."""

    @model_validator(mode="after")
    def _check_macd(self) -> IndicatorConfig:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be smaller than macd_slow")
        return self


class SignalConfig(_Section):
    """How indicator votes become a signal and a trade plan."""

    weight_trend: float = Field(default=0.35, ge=0.0, le=1.0)
    """Weight of the trend group (EMA stack, Supertrend)."""
    weight_momentum: float = Field(default=0.35, ge=0.0, le=1.0)
    """Weight of the momentum group (MACD, RSI, StochRSI)."""
    weight_volume: float = Field(default=0.15, ge=0.0, le=1.0)
    """Weight of the volume group (OBV slope)."""
    weight_strength: float = Field(default=0.15, ge=0.0, le=1.0)
    """Weight of the strength group (ADX, scales the trend direction)."""
    weight_pattern: float = Field(default=0.0, ge=0.0, le=1.0)
    """Weight of the candle group (Heikin Ashi trend, TA-Lib candlestick patterns) in the
    timeframe vote; 0 keeps them as labels and factors only (e.g. 0.1 to let them vote)."""
    timeframe_weights: dict[str, float] = Field(
        default_factory=lambda: {"5m": 1.0, "15m": 1.5, "1h": 2.0, "4h": 2.5, "1d": 3.0}
    )
    """Weight of each timeframe in the fusion; a timeframe missing here gets 1.0."""
    long_threshold: float = Field(default=60.0, ge=50.0, le=100.0)
    """Score at or above which the fused signal is LONG (score 50 is neutral)."""
    short_threshold: float = Field(default=40.0, ge=0.0, le=50.0)
    """Score at or below which the fused signal is SHORT."""
    min_confidence: float = Field(default=0.3, ge=0.0, le=1.0)
    """Below this agreement the signal is NEUTRAL whatever the score."""
    stop_atr: float = Field(default=1.5, gt=0.0, le=20.0)
    """Stop loss distance in ATR of the plan timeframe."""
    tp1_atr: float = Field(default=2.0, gt=0.0, le=50.0)
    """Take profit 1 distance in ATR."""
    tp2_atr: float = Field(default=3.5, gt=0.0, le=100.0)
    """Take profit 2 distance in ATR."""
    plan_timeframe: str = "1h"
    """Timeframe whose ATR sizes the trade plan (falls back to the largest ready one)."""

    # -- regime ------------------------------------------------------------------------
    regime_trend_adx: float = Field(default=25.0, ge=0.0, le=100.0)
    """ADX at or above which a timeframe is ``trending`` (else ``ranging``)."""
    regime_high_vol_percentile: float = Field(default=0.9, ge=0.0, le=1.0)
    """Bollinger width percentile (over the series' own history) at or above which a
    timeframe is ``high_volatility``, whatever its ADX."""
    regime_trend_boost: float = Field(default=1.0, ge=0.0, le=10.0)
    """Multiplier of the trend and strength group weights in a ``trending`` timeframe
    (1 = regime does not reweight; e.g. 1.5 favours trend-following votes in trends)."""
    regime_oscillator_boost: float = Field(default=1.0, ge=0.0, le=10.0)
    """Multiplier of the momentum (oscillator) group weight in a ``ranging`` timeframe
    (1 = no reweighting; e.g. 1.5 favours oscillators in ranges)."""

    # -- mean reversion ----------------------------------------------------------------
    reversion_streak: int = Field(default=4, ge=2, le=50)
    """Consecutive same-direction closes that count as momentum exhaustion."""
    reversion_volume_spike: float = Field(default=1.5, ge=1.0, le=20.0)
    """Previous candle volume (x its 20-bar average) that counts as a volume climax."""
    reversion_volume_drop: float = Field(default=0.10, ge=0.0, le=1.0)
    """Fractional volume fall after the climax that makes it volume exhaustion."""
    reversion_move: dict[str, float] = Field(default_factory=dict)
    """Excessive move per timeframe as a fraction over ``reversion_move_bars`` bars (a
    timeframe missing here uses ``reversion_move_default``)."""
    reversion_move_default: float = Field(default=0.15, gt=0.0, le=10.0)
    """Excessive move (fraction) for timeframes not in ``reversion_move``."""
    reversion_move_bars: int = Field(default=5, ge=1, le=200)
    """Bars over which the excessive move is measured."""
    reversion_rsi_high: float = Field(default=70.0, ge=50.0, le=100.0)
    """RSI above which the market is overbought (reversion short)."""
    reversion_rsi_low: float = Field(default=30.0, ge=0.0, le=50.0)
    """RSI below which the market is oversold (reversion long)."""
    volume_average_bars: int = Field(default=20, ge=2, le=500)
    """Bars of the volume average (SMA) used by the reversion and cluster detectors."""

    # -- candle clustering -------------------------------------------------------------
    cluster_volume: float = Field(default=2.0, ge=1.0, le=50.0)
    """Volume (x average) that makes a high-volume candle."""
    cluster_lookback: int = Field(default=30, ge=5, le=500)
    """Bars searched for high-volume candles."""
    cluster_follow_bars: int = Field(default=3, ge=1, le=50)
    """Bars after a high-volume candle over which its follow-through is measured."""
    cluster_min_count: int = Field(default=2, ge=1, le=50)
    """High-volume candles needed for a trend-formation flag."""
    cluster_min_ratio: float = Field(default=0.7, ge=0.5, le=1.0)
    """Directional ratio needed for a trend-formation flag."""
    cluster_min_follow: float = Field(default=0.5, ge=0.0, le=1.0)
    """Follow-through share needed for a trend-formation flag."""
    cluster_boost: float = Field(default=0.25, ge=0.0, le=5.0)
    """Momentum boost per unit of agreeing cluster strength: ``vote x (1 + boost x s)``."""

    # -- balanced score and types ------------------------------------------------------
    momentum_weight: float = Field(default=0.6, ge=0.0, le=1.0)
    """Share of momentum in the balanced score; reversion gets ``1 - momentum_weight``."""
    reversion_threshold: float = Field(default=50.0, ge=0.0, le=100.0)
    """Reversion score at or above which a setup is typed ``REVERSION_*``."""
    strong_score: float = Field(default=75.0, ge=50.0, le=100.0)
    """Balanced score distance counterpart: at or above (or ``100 -`` it and below) with
    ``strong_confidence`` a signal is ``STRONG_*``."""
    strong_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    """Confidence needed for ``STRONG_*``."""
    weak_score: float = Field(default=55.0, ge=50.0, le=100.0)
    """Balanced score at or above (or ``100 -`` it and below) which a neutral signal leans
    ``WEAK_*``."""

    # -- risk filters and profile ------------------------------------------------------
    risk_profile: str = "balanced"
    """Risk profile: ``conservative``, ``balanced`` or ``aggressive`` (thresholds for score,
    confidence, R:R and which filters block; see ``engine.profiles``)."""
    overextension_atr: float = Field(default=2.0, gt=0.0, le=20.0)
    """Close this many ATR beyond EMA21 in the signal direction is overextended."""
    trap_wick_body: float = Field(default=2.0, gt=0.0, le=50.0)
    """Adverse wick at least this many times the body at the signal bar is a trap wick..."""
    trap_wick_atr: float = Field(default=0.5, ge=0.0, le=20.0)
    """... when the wick is also at least this many ATR (a doji's hairline wick is no trap)."""
    oversized_atr: float = Field(default=2.5, gt=0.0, le=50.0)
    """Signal bar range at least this many ATR is an oversized candle."""
    sr_atr: float = Field(default=0.5, ge=0.0, le=20.0)
    """Within this many ATR of resistance (LONG) or support (SHORT) is trading into a level."""
    min_risk_reward: dict[str, float] = Field(default_factory=dict)
    """Minimum R:R per plan timeframe, overriding the risk profile's."""
    stale_bars: float = Field(default=2.0, gt=0.0, le=1000.0)
    """Entry-timeframe bars since the last closed candle after which the data is stale."""
    btc_gate: bool = True
    """Gate alt signals against BTC's microtrend (its smallest-timeframe vote): an alt LONG
    while BTC's vote is at or below ``-btc_gate_vote`` (SHORT while at or above it) fires the
    ``btc_gate`` filter, which blocks or downgrades per the risk profile."""
    btc_gate_vote: float = Field(default=0.5, gt=0.0, le=1.0)
    """BTC microtrend vote (magnitude, of [-1, 1]) at which the gate closes."""

    @model_validator(mode="after")
    def _check(self) -> SignalConfig:
        total = (
            self.weight_trend + self.weight_momentum + self.weight_volume + self.weight_strength
            + self.weight_pattern
        )
        if total <= 0:
            raise ValueError("indicator group weights must not all be 0")
        if not self.tp1_atr < self.tp2_atr:
            raise ValueError("tp1_atr must be smaller than tp2_atr")
        if self.plan_timeframe not in INTERVAL_MS:
            raise ValueError(f"plan_timeframe {self.plan_timeframe!r} is not an interval")
        if self.risk_profile not in RISK_PROFILE_NAMES:
            raise ValueError(
                f"risk_profile {self.risk_profile!r} is unknown; allowed: "
                + ", ".join(RISK_PROFILE_NAMES)
            )
        for code in (*self.reversion_move, *self.min_risk_reward):
            if code not in INTERVAL_MS:
                raise ValueError(f"unknown timeframe {code!r}; allowed: {', '.join(INTERVAL_MS)}")
        return self


class EngineConfig(_Section):
    """Everything the engine needs, handed to :class:`engine.engine.Engine`."""

    timeframes: TimeframeConfig = Field(default_factory=TimeframeConfig)
    """Timeframes and history."""
    indicators: IndicatorConfig = Field(default_factory=IndicatorConfig)
    """Indicator parameters."""
    signals: SignalConfig = Field(default_factory=SignalConfig)
    """Vote weights, thresholds and trade plan."""
    stale_after_s: float = Field(default=30.0, gt=0.0, le=86400.0)
    """A symbol with no market data for this long is stale: dimmed, no new signal."""
