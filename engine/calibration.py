"""Confidence calibration: isotonic regression fitted on walk-forward folds, and its ECE.

The engine's ``confidence`` measures agreement, not probability. A calibration model maps it to
the observed probability that TP1 is reached before the stop (``P(TP1 before SL)``), learnt from
resolved signals of history. Isotonic regression (monotone, non-parametric) is fitted with the
pool-adjacent-violators algorithm in numpy (Ayer et al. 1955; Zadrozny & Elkan 2002 for its use
in calibration); scikit-learn is not a dependency and would be a heavy one for 30 lines.

Walk-forward (expanding window, purged): the samples sorted by signal time are cut into
``folds + 1`` equal blocks; block *k* (k ≥ 1) is predicted by a model fitted on the samples of
blocks ``< k`` whose outcome was known before block *k* starts (their exit time is before it, so
no label from the test period leaks into training; López de Prado 2018, §7.4 "purging").
The out-of-fold predictions give an honest expected calibration error (ECE) before and after.

Pure computation; the model and its provenance serialise to JSON for the
``calibration_models`` table (the store does the IO).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

ECE_BINS = 10
"""Equal-width confidence bins of the ECE and the reliability table (Guo et al. 2017)."""
MODEL_KIND = "technical"
"""``calibration_models.kind``: the signal kind calibrated (technical signals' confidence →
P(TP1 before SL))."""


class IsotonicModel(msgspec.Struct, frozen=True, kw_only=True):
    """A fitted non-decreasing step function, linearly interpolated between its knots.

    Attributes:
        x: Knot inputs (confidence, 0-1), strictly increasing.
        y: Knot outputs (probability, 0-1), non-decreasing.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]

    def predict(self, values: npt.ArrayLike) -> F64:
        """Calibrated probabilities of ``values`` (clamped to the knot range outside it)."""
        arr = np.asarray(values, dtype=np.float64)
        return np.asarray(
            np.interp(arr, np.asarray(self.x), np.asarray(self.y)), dtype=np.float64
        )


def fit_isotonic(x: npt.ArrayLike, y: npt.ArrayLike, weight: npt.ArrayLike | None = None) -> (
    IsotonicModel
):
    """Least-squares non-decreasing fit of ``y`` on ``x`` (pool adjacent violators).

    Args:
        x: Inputs, shape ``(n,)``.
        y: Targets (0/1 outcomes here), shape ``(n,)``.
        weight: Sample weights, shape ``(n,)`` (default 1).

    Returns:
        The model: one knot per distinct pooled block (its mean input and pooled mean target).

    Raises:
        ValueError: empty input, shape mismatch or non-finite values.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    ws = np.ones_like(xs) if weight is None else np.asarray(weight, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.shape != ws.shape:
        raise ValueError(f"fit_isotonic: shapes differ: x {xs.shape}, y {ys.shape}, w {ws.shape}")
    if xs.size == 0:
        raise ValueError("fit_isotonic: no samples")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all() and np.isfinite(ws).all()):
        raise ValueError("fit_isotonic: non-finite input")
    order = np.argsort(xs, kind="stable")
    xs, ys, ws = xs[order], ys[order], ws[order]
    # Ties in x form one block first (a function cannot give two outputs for one input).
    ux, start = np.unique(xs, return_index=True)
    wsum = np.add.reduceat(ws, start)
    means = np.add.reduceat(ys * ws, start) / wsum
    xmean = np.add.reduceat(xs * ws, start) / wsum
    # PAV: a stack of blocks (value, weight, x-weighted sum); merge while decreasing.
    val: list[float] = []
    wt: list[float] = []
    xw: list[float] = []
    for v, w, xm in zip(means.tolist(), wsum.tolist(), xmean.tolist(), strict=True):
        val.append(v)
        wt.append(w)
        xw.append(xm * w)
        while len(val) > 1 and val[-2] > val[-1]:
            v2, w2, x2 = val.pop(), wt.pop(), xw.pop()
            w1 = wt[-1]
            val[-1] = (val[-1] * w1 + v2 * w2) / (w1 + w2)
            wt[-1] = w1 + w2
            xw[-1] += x2
    knots_x = [xv / w for xv, w in zip(xw, wt, strict=True)]
    del ux
    return IsotonicModel(x=tuple(knots_x), y=tuple(val))


def expected_calibration_error(
    predicted: npt.ArrayLike, observed: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """Expected calibration error over equal-width bins of the prediction.

    ``ECE = Σ_b (n_b / N) · |mean(observed in b) − mean(predicted in b)|`` over ``bins`` equal
    bins of [0, 1] (the last one closed) — Guo, Pleiss, Sun & Weinberger, "On Calibration of
    Modern Neural Networks", ICML 2017, eq. (3).

    Args:
        predicted: Probabilities in [0, 1], shape ``(n,)``.
        observed: Outcomes 0/1, shape ``(n,)``.
        bins: Number of bins.

    Returns:
        The ECE (0 = perfectly calibrated), a fraction; ``nan`` with no samples.

    Raises:
        ValueError: shapes differ or ``bins < 1``.
    """
    p = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    o = np.asarray(observed, dtype=np.float64)
    if p.shape != o.shape:
        raise ValueError(f"ECE: shapes differ: predicted {p.shape}, observed {o.shape}")
    if bins < 1:
        raise ValueError(f"ECE: bins must be at least 1, got {bins}")
    if p.size == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if n:
            total += n / p.size * abs(float(o[mask].mean()) - float(p[mask].mean()))
    return total


class ReliabilityBin(msgspec.Struct, frozen=True, kw_only=True):
    """One confidence bin of a reliability table.

    Attributes:
        lower: Bin lower edge (confidence, 0-1).
        upper: Bin upper edge.
        count: Resolved signals in the bin.
        predicted: Mean raw confidence in the bin (``nan`` when empty).
        calibrated: Mean calibrated probability in the bin (``nan`` when empty or none).
        observed: Observed TP1-before-SL rate in the bin (``nan`` when empty).
    """

    lower: float
    upper: float
    count: int
    predicted: float
    calibrated: float
    observed: float


def reliability_table(
    confidence: npt.ArrayLike,
    observed: npt.ArrayLike,
    calibrated: npt.ArrayLike | None = None,
    bins: int = ECE_BINS,
) -> list[ReliabilityBin]:
    """Predicted vs observed rate per equal-width confidence bin (deciles of [0, 1]).

    Args:
        confidence: Raw confidences, shape ``(n,)``.
        observed: Outcomes 0/1 (TP1 before SL), shape ``(n,)``.
        calibrated: Calibrated probabilities of the same samples (optional).
        bins: Number of bins.
    """
    c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    o = np.asarray(observed, dtype=np.float64)
    k = None if calibrated is None else np.asarray(calibrated, dtype=np.float64)
    idx = np.minimum((c * bins).astype(np.int64), bins - 1)
    rows: list[ReliabilityBin] = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        rows.append(ReliabilityBin(
            lower=b / bins,
            upper=(b + 1) / bins,
            count=n,
            predicted=float(c[mask].mean()) if n else float("nan"),
            calibrated=float(k[mask].mean()) if n and k is not None else float("nan"),
            observed=float(o[mask].mean()) if n else float("nan"),
        ))
    return rows


class CalibrationModel(msgspec.Struct, frozen=True, kw_only=True):
    """A fitted calibration with its provenance (one ``calibration_models`` row).

    Attributes:
        kind: What it maps (:data:`MODEL_KIND`).
        fitted_ms: When it was fitted, ms UTC.
        data_from: First signal time of the training data, ms UTC.
        data_to: Last signal time of the training data, ms UTC.
        source: Where the history came from (a path, or ``live``).
        engine_version: ``engine.version.ENGINE_VERSION`` of the signals it was fitted on.
        samples: Resolved signals used.
        ece_before: Out-of-fold ECE of the raw confidence (``None`` without folds).
        ece_after: Out-of-fold ECE of the calibrated confidence (``None`` without folds).
        model: The isotonic map.
    """

    kind: str
    fitted_ms: int
    data_from: int
    data_to: int
    source: str
    engine_version: str
    samples: int
    ece_before: float | None
    ece_after: float | None
    model: IsotonicModel

    def model_json(self) -> str:
        """The ``model`` column: the isotonic knots as JSON."""
        return msgspec.json.encode(self.model).decode()

    @staticmethod
    def decode_model(text: str) -> IsotonicModel:
        """Parse a ``model`` column.

        Raises:
            ValueError: malformed JSON or knots (the message says which).
        """
        try:
            model = msgspec.json.decode(text, type=IsotonicModel)
        except msgspec.DecodeError as exc:
            raise ValueError(f"calibration model JSON is malformed: {exc}") from None
        if not model.x or len(model.x) != len(model.y):
            raise ValueError("calibration model has no knots or unequal x/y lengths")
        return model


class CalibrationRowLike(Protocol):
    """A stored ``calibration_models`` row (``storage.signals.CalibrationRow`` fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def fitted_ms(self) -> int: ...
    @property
    def data_from(self) -> int: ...
    @property
    def data_to(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def engine_version(self) -> str: ...
    @property
    def samples(self) -> int: ...
    @property
    def ece_before(self) -> float | None: ...
    @property
    def ece_after(self) -> float | None: ...
    @property
    def model(self) -> str: ...


class CalibrationStore(Protocol):
    """Where models are loaded from (``storage.signals.SignalStore`` fits)."""

    async def latest_calibration(self, kind: str) -> CalibrationRowLike | None:
        """The newest model of ``kind``, or ``None``."""
        ...


def model_from_row(row: CalibrationRowLike) -> CalibrationModel:
    """A :class:`CalibrationModel` from a stored row.

    Raises:
        ValueError: the row's model JSON is malformed.
    """
    return CalibrationModel(
        kind=row.kind, fitted_ms=row.fitted_ms, data_from=row.data_from, data_to=row.data_to,
        source=row.source, engine_version=row.engine_version, samples=row.samples,
        ece_before=row.ece_before, ece_after=row.ece_after,
        model=CalibrationModel.decode_model(row.model),
    )


async def load_calibrator(
    store: CalibrationStore, engine_version: str, kind: str = MODEL_KIND
) -> Calibrator:
    """The calibrator to apply at start: the newest model of ``kind`` fitted on signals of
    this ``engine_version``; an uncalibrated one when there is none, it was fitted by another
    engine version (its confidences are not comparable) or it is unreadable (logged)."""
    row = await store.latest_calibration(kind)
    if row is None:
        return Calibrator(None)
    if row.engine_version != engine_version:
        log.warning(
            "calibration model of engine %s ignored (running %s): refit with `perpscope "
            "backtest --save-calibration`", row.engine_version, engine_version,
        )
        return Calibrator(None)
    try:
        return Calibrator(model_from_row(row))
    except ValueError as exc:
        log.warning("calibration model unusable, running uncalibrated: %s", exc)
        return Calibrator(None)


class Calibrator:
    """Applies a calibration model to live confidence.

    Args:
        model: The loaded model, or ``None`` (then nothing is calibrated and callers show
            "uncalibrated" instead of a probability).
    """

    UNCALIBRATED = "uncalibrated"
    """What the UI shows without a model."""

    def __init__(self, model: CalibrationModel | None = None) -> None:
        self.model = model

    @property
    def calibrated(self) -> bool:
        """True when a model is loaded."""
        return self.model is not None

    def apply(self, confidence: float) -> float | None:
        """``P(TP1 before SL)`` for a raw confidence (0-1); ``None`` without a model."""
        if self.model is None:
            return None
        return float(self.model.model.predict([confidence])[0])

    def label(self, confidence: float) -> str:
        """Display text: ``"62 %"`` calibrated, else ``"uncalibrated"``."""
        p = self.apply(confidence)
        return self.UNCALIBRATED if p is None else f"{p * 100:.0f} %"


class WalkForward(msgspec.Struct, frozen=True, kw_only=True):
    """Out-of-fold calibration result.

    Attributes:
        folds: Test folds actually predicted (a fold without training data is skipped).
        oof_index: Indices (into the inputs) of the out-of-fold samples, shape ``(m,)``.
        oof_raw: Their raw confidences.
        oof_calibrated: Their calibrated probabilities (each from a model fitted before it).
        oof_observed: Their outcomes (0/1).
        ece_before: ECE of ``oof_raw`` (``nan`` without out-of-fold samples).
        ece_after: ECE of ``oof_calibrated``.
    """

    folds: int
    oof_index: tuple[int, ...]
    oof_raw: tuple[float, ...]
    oof_calibrated: tuple[float, ...]
    oof_observed: tuple[float, ...]
    ece_before: float
    ece_after: float


def walk_forward(
    confidence: Sequence[float],
    observed: Sequence[float],
    signal_time: Sequence[int],
    exit_time: Sequence[int],
    folds: int = 5,
    min_train: int = 20,
) -> WalkForward:
    """Expanding-window, purged walk-forward calibration (module docstring).

    Args:
        confidence: Raw confidences (0-1), one per resolved signal.
        observed: 1 when TP1 came before the stop, else 0.
        signal_time: Signal times (``as_of``), ms UTC.
        exit_time: Outcome times, ms UTC (purging: only outcomes known before a test block
            train the model that predicts it).
        folds: Test blocks (the data is cut into ``folds + 1`` blocks by time).
        min_train: Fewest training samples a block's model needs (else the block is skipped).

    Raises:
        ValueError: inputs of different lengths or ``folds < 1``.
    """
    n = len(confidence)
    if not n == len(observed) == len(signal_time) == len(exit_time):
        raise ValueError("walk_forward: inputs differ in length")
    if folds < 1:
        raise ValueError(f"walk_forward: folds must be at least 1, got {folds}")
    c = np.asarray(confidence, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    t = np.asarray(signal_time, dtype=np.int64)
    e = np.asarray(exit_time, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    blocks = np.array_split(order, folds + 1)
    idx: list[int] = []
    cal: list[float] = []
    used = 0
    for k in range(1, len(blocks)):
        test = blocks[k]
        if test.size == 0:
            continue
        block_start = int(t[test].min())
        train = np.concatenate(blocks[:k])
        train = train[e[train] < block_start]
        if train.size < min_train:
            continue
        model = fit_isotonic(c[train], o[train])
        idx.extend(test.tolist())
        cal.extend(model.predict(c[test]).tolist())
        used += 1
    sel = np.asarray(idx, dtype=np.int64)
    raw = c[sel] if sel.size else np.empty(0)
    obs = o[sel] if sel.size else np.empty(0)
    return WalkForward(
        folds=used,
        oof_index=tuple(idx),
        oof_raw=tuple(raw.tolist()),
        oof_calibrated=tuple(cal),
        oof_observed=tuple(obs.tolist()),
        ece_before=expected_calibration_error(raw, obs),
        ece_after=expected_calibration_error(np.asarray(cal), obs),
    )


def fit_calibration(
    confidence: Sequence[float],
    observed: Sequence[float],
    signal_time: Sequence[int],
    exit_time: Sequence[int],
    *,
    source: str,
    engine_version: str,
    fitted_ms: int,
    folds: int = 5,
) -> tuple[CalibrationModel, WalkForward]:
    """Walk-forward evaluation, then the final model fitted on all samples, with provenance.

    Raises:
        ValueError: no samples, or inputs of different lengths.
    """
    if not confidence:
        raise ValueError("fit_calibration: no resolved signals to fit on")
    wf = walk_forward(confidence, observed, signal_time, exit_time, folds)
    model = fit_isotonic(confidence, observed)
    has_oof = bool(wf.oof_index)
    return CalibrationModel(
        kind=MODEL_KIND,
        fitted_ms=fitted_ms,
        data_from=int(min(signal_time)),
        data_to=int(max(signal_time)),
        source=source,
        engine_version=engine_version,
        samples=len(confidence),
        ece_before=wf.ece_before if has_oof else None,
        ece_after=wf.ece_after if has_oof else None,
        model=model,
    ), wf
