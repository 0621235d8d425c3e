"""Calibrated confidence: the engine maps each new signal's confidence through the loaded
calibration model (a fitted isotonic step function), and leaves it ``None`` without one."""

from __future__ import annotations

from engine_data import frame, klines

from engine.calibration import CalibrationModel, Calibrator, fit_isotonic
from engine.config import EngineConfig, TimeframeConfig
from engine.engine import Engine
from engine.version import ENGINE_VERSION

CFG = EngineConfig(timeframes=TimeframeConfig(timeframes=["5m"], history_bars={"5m": 600}))


async def test_engine_applies_the_calibrator_and_says_when_there_is_none() -> None:
    bars = frame("ETH", "5m").head(500)
    last = int(bars["open_time"][-1])
    engine = Engine(CFG, clock=lambda: last + 300_000)
    engine.set_universe(["ETHUSDT"])
    engine.load_history("ETHUSDT", "5m", klines(bars, "ETHUSDT", "5m"))
    await engine.recompute()
    raw = engine.signal("ETHUSDT")
    assert raw is not None and raw.calibrated_confidence is None

    # A step function as isotonic regression fits it: confidence below 0.5 hit 30 %, above 60 %.
    model = fit_isotonic([0.2, 0.4, 0.6, 0.8], [0.3, 0.3, 0.6, 0.6])
    calibrator = Calibrator(CalibrationModel(
        kind="technical", fitted_ms=0, data_from=0, data_to=0, source="test",
        engine_version=ENGINE_VERSION, samples=4, ece_before=None, ece_after=None, model=model,
    ))
    engine.set_calibrator(calibrator.apply)
    await engine.recompute()
    calibrated = engine.signal("ETHUSDT")
    assert calibrated is not None
    assert calibrated.confidence == raw.confidence
    assert calibrated.calibrated_confidence == calibrator.apply(raw.confidence)
    engine.set_calibrator(None)
    await engine.recompute()
    again = engine.signal("ETHUSDT")
    assert again is not None and again.calibrated_confidence is None
