"""Calibration: PAV isotonic fit, ECE, purged walk-forward, the stored model, real-data ECE."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.backtest import BacktestOptions, build_report, run_backtest
from engine.calibration import (
    MODEL_KIND,
    CalibrationModel,
    Calibrator,
    expected_calibration_error,
    fit_calibration,
    fit_isotonic,
    load_calibrator,
    reliability_table,
    walk_forward,
)
from engine.config import EngineConfig
from engine.version import ENGINE_VERSION
from storage.db import Database
from storage.signals import CalibrationRow, SignalStore
from tests.conftest import KLINES_55


def test_pav_pools_adjacent_violators() -> None:
    model = fit_isotonic([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0])
    # 3 and 2 violate the order and pool to 2.5 at their mean input 0.25.
    assert model.x == pytest.approx((0.1, 0.25, 0.4))
    assert model.y == pytest.approx((1.0, 2.5, 4.0))
    assert model.predict([0.0, 0.25, 1.0]).tolist() == pytest.approx([1.0, 2.5, 4.0])


def test_isotonic_fit_is_monotone_and_least_squares_on_ties() -> None:
    rng = np.random.default_rng(7)
    x = rng.choice([0.3, 0.4, 0.5, 0.6], size=400)
    y = (rng.random(400) < x).astype(float)
    model = fit_isotonic(x, y)
    assert all(b >= a for a, b in zip(model.y, model.y[1:], strict=False))
    # Tied inputs share one output: the pooled mean of their targets.
    pred = model.predict(x)
    for value in np.unique(x):
        assert len(set(pred[x == value].round(12).tolist())) == 1
    with pytest.raises(ValueError, match="no samples"):
        fit_isotonic([], [])
    with pytest.raises(ValueError, match="shapes differ"):
        fit_isotonic([0.1, 0.2], [1.0])


def test_ece_is_the_weighted_bin_gap() -> None:
    # Bin 0.3-0.4: two samples predicted 0.35, one hit → |0.5 - 0.35| weighted 2/4;
    # bin 0.9-1.0: two at 0.95 (1.0 falls in the last bin), both hit → |1 - 0.975| x 2/4.
    ece = expected_calibration_error([0.35, 0.35, 0.95, 1.0], [1, 0, 1, 1])
    assert ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.025)
    assert expected_calibration_error([0.2, 0.8], [0, 1], bins=1) == pytest.approx(0.0)
    assert np.isnan(expected_calibration_error([], []))


def test_walk_forward_trains_only_on_outcomes_known_before_the_test_block() -> None:
    n = 60
    times = list(range(n))
    # Every outcome resolves 25 steps later: with 2 folds the blocks start at 0, 20, 40, so
    # block 1 has no known outcome before it (skipped) and block 2 trains on samples 0..14.
    exits = [t + 25 for t in times]
    conf = [0.3 + 0.4 * (t % 5) / 5 for t in times]
    hits = [float(t % 2) for t in times]
    wf = walk_forward(conf, hits, times, exits, folds=2, min_train=5)
    assert wf.folds == 1
    assert set(wf.oof_index) == set(range(40, 60))
    trained = fit_isotonic(conf[:15], hits[:15])
    assert list(wf.oof_calibrated) == pytest.approx(trained.predict(conf[40:]).tolist())


def test_calibrator_without_model_says_uncalibrated() -> None:
    calibrator = Calibrator(None)
    assert not calibrator.calibrated
    assert calibrator.apply(0.7) is None
    assert calibrator.label(0.7) == "uncalibrated"


async def test_model_round_trips_through_the_store(tmp_path: Path) -> None:
    model, _ = fit_calibration(
        [0.3, 0.4, 0.5, 0.6], [0.0, 1.0, 0.0, 1.0], [1, 2, 3, 4], [5, 6, 7, 8],
        source="backtest:x", engine_version=ENGINE_VERSION, fitted_ms=123, folds=1,
    )
    async with Database(tmp_path / "perpscope.db") as db:
        store = SignalStore(db)
        store.start()
        row = CalibrationRow(
            kind=model.kind, fitted_ms=model.fitted_ms, data_from=model.data_from,
            data_to=model.data_to, source=model.source, engine_version=model.engine_version,
            samples=model.samples, ece_before=model.ece_before, ece_after=model.ece_after,
            model=model.model_json(),
        )
        await store.save_calibration(row)
        loaded = await load_calibrator(store, ENGINE_VERSION)
        assert loaded.calibrated and loaded.model is not None
        assert loaded.model.model == model.model
        assert loaded.apply(0.45) == pytest.approx(float(model.model.predict([0.45])[0]))
        assert loaded.model.data_from == 1 and loaded.model.data_to == 4
        # A model fitted by another engine version is not applied.
        assert not (await load_calibrator(store, "0.0.0-other")).calibrated
        # A newer but unreadable model: run uncalibrated rather than fail.
        await store.save_calibration(msgspec.structs.replace(row, fitted_ms=999, model="{bad"))
        assert not (await load_calibrator(store, ENGINE_VERSION)).calibrated
        await store.stop()
    assert MODEL_KIND == "technical"
    with pytest.raises(ValueError, match="malformed"):
        CalibrationModel.decode_model("[1, 2")


def test_reliability_table_counts_every_sample_once() -> None:
    conf = [0.05, 0.35, 0.36, 0.99]
    rows = reliability_table(conf, [0, 1, 0, 1], calibrated=[0.1, 0.4, 0.4, 0.9])
    assert [r.count for r in rows] == [1, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    assert rows[3].observed == 0.5 and rows[3].predicted == pytest.approx(0.355)
    assert rows[3].calibrated == pytest.approx(0.4)


def test_out_of_fold_calibrated_ece_beats_raw_confidence_on_shared_data() -> None:
    """On the recorded klines (6 perpetuals, the whole month: ~500 resolved signals, the
    fewest that give stable folds; ~45 s on 2 cores), confidence calibrated on earlier folds is
    closer to the observed TP1-before-SL rate of later ones than the raw confidence."""
    options = BacktestOptions(
        symbols=("AAVEUSDT", "ADAUSDT", "ALGOUSDT", "ALICEUSDT", "ALPHAUSDT", "ANKRUSDT"),
        workers=2,
    )
    run = run_backtest(KLINES_55, EngineConfig(), options)
    report = build_report(run, source="test", outcomes=options.outcomes, folds=4)
    assert report.oof_samples >= 300
    assert report.ece_before is not None and report.ece_after is not None
    assert report.ece_after < report.ece_before
    # The reliability table is built from the same out-of-fold samples.
    assert sum(b.count for b in report.reliability) == report.oof_samples
