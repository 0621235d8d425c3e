"""CSV exports: the signal table as shown, picks, and one symbol's candles with indicators.

Files go to ``<data dir>/exports/`` with a timestamped name (:func:`export_path`). Writers
take plain values (no widgets), so they are tested on their own; the screens call them in a
thread (``asyncio.to_thread``) because they touch the disk. Columns are raw numbers (prices in
quote currency, rates as fractions, times in ms UTC plus an ISO-8601 UTC column), not the
table's rounded text, so the file can be analysed further.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import polars as pl

from engine.candles import ClosedArrays
from engine.config import IndicatorConfig
from engine.indicators import compute_indicators
from engine.models import CandleSeries, EngineSnapshot, SymbolState
from engine.picks import PickView
from storage.picks import Pick

APP_NAME = "perpscope"

TABLE_FIELDS: tuple[str, ...] = (
    "symbol", "last_price", "change_24h_pct", "direction", "score", "confidence",
    "signal_type", "entry", "stop_loss", "take_profit_1", "take_profit_2", "risk_reward",
    "funding_rate", "spread_bps", "imbalance", "micro_score", "stale", "age_ms", "watched",
)  # fmt: skip
"""Columns of the table export before the per-timeframe votes (``vote_<tf>``)."""

PICK_FIELDS: tuple[str, ...] = (
    "id", "symbol", "side", "status", "entry", "stop_loss", "take_profit_1", "take_profit_2",
    "size_quote", "risk_pct", "price", "pnl_pct", "pnl_r", "to_sl_pct", "to_tp1_pct",
    "to_tp2_pct", "opened_ms", "opened_utc", "open_ms", "closed_ms", "close_price",
    "realized_r", "stale", "signal_type", "note",
)  # fmt: skip
"""Columns of the picks export (live picks with live numbers, then ended ones)."""


def default_export_dir() -> Path:
    """``exports/`` under the default user data dir (``[general] data_dir`` unset)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "exports"


def export_path(directory: Path, kind: str, now_s: float | None = None) -> Path:
    """A new timestamped CSV path in ``directory`` (created), e.g.
    ``perpscope-table-20230803-123023.csv``; a numeric suffix avoids overwriting.

    Args:
        directory: Export directory.
        kind: What is exported (``table``, ``picks``, ``BTCUSDT-5m``).
        now_s: Wall clock, epoch seconds (default: now), UTC in the name.

    Raises:
        OSError: if the directory cannot be created.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now_s is None else now_s))
    path = directory / f"perpscope-{kind}-{stamp}.csv"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"perpscope-{kind}-{stamp}-{n}.csv"
    return path


def table_records(
    snapshot: EngineSnapshot, symbols: Iterable[str], watchlist: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Rows of the table export for ``symbols`` in the given (display) order.

    Args:
        snapshot: The snapshot the table shows.
        symbols: Symbols of the shown rows, in display order (filtered and sorted).
        watchlist: Watched symbols (``watched`` column).

    Returns:
        One dict per symbol with :data:`TABLE_FIELDS` and ``vote_<tf>`` per timeframe
        (``None`` where there is no value).

    Raises:
        KeyError: naming a symbol that is not in the snapshot.
    """
    watched = frozenset(watchlist)
    out = []
    for symbol in symbols:
        state = snapshot.symbols.get(symbol)
        if state is None:
            raise KeyError(f"table export: {symbol} is not in the snapshot")
        out.append(_table_record(state, snapshot, symbol in watched))
    return out


def _table_record(state: SymbolState, snapshot: EngineSnapshot, watched: bool) -> dict[str, Any]:
    signal = state.signal
    plan = signal.plan if signal is not None else None
    row: dict[str, Any] = {
        "symbol": state.symbol,
        "last_price": state.last_price,
        "change_24h_pct": state.change_24h_pct,
        "direction": signal.direction.value if signal is not None else None,
        "score": signal.score if signal is not None else None,
        "confidence": signal.confidence if signal is not None else None,
        "signal_type": signal.signal_type.value if signal is not None else None,
        "entry": plan.entry if plan is not None else None,
        "stop_loss": plan.stop_loss if plan is not None else None,
        "take_profit_1": plan.take_profit_1 if plan is not None else None,
        "take_profit_2": plan.take_profit_2 if plan is not None else None,
        "risk_reward": plan.risk_reward if plan is not None else None,
        "funding_rate": state.funding_rate,
        "spread_bps": state.spread_bps,
        "imbalance": state.imbalance,
        "micro_score": state.micro_score,
        "stale": state.stale,
        "age_ms": state.age_ms,
        "watched": watched,
    }
    votes = {tf.timeframe: tf.vote for tf in signal.timeframes} if signal is not None else {}
    for timeframe in snapshot.timeframes:
        row[f"vote_{timeframe}"] = votes.get(timeframe)
    return row


def write_table_csv(
    path: Path, snapshot: EngineSnapshot, symbols: Sequence[str], watchlist: Iterable[str] = ()
) -> int:
    """Write the shown table rows (:func:`table_records`) to ``path``.

    Returns:
        Rows written.

    Raises:
        OSError: if the file cannot be written.
        KeyError: naming a symbol missing from the snapshot.
    """
    records = table_records(snapshot, symbols, watchlist)
    columns = [*TABLE_FIELDS, *(f"vote_{tf}" for tf in snapshot.timeframes)]
    _frame(records, columns).write_csv(path)
    return len(records)


def pick_records(views: Iterable[PickView], history: Iterable[Pick] = ()) -> list[dict[str, Any]]:
    """Rows of the picks export: live picks (with live price, PnL and distances), then ended
    picks (close price and realised R; distances empty).

    Returns:
        One dict per pick with :data:`PICK_FIELDS`.
    """
    out = [_pick_record(v.pick, v) for v in views]
    out.extend(_pick_record(p, None) for p in history)
    return out


def _pick_record(pick: Pick, view: PickView | None) -> dict[str, Any]:
    return {
        "id": pick.id,
        "symbol": pick.symbol,
        "side": pick.side.value,
        "status": pick.status.value,
        "entry": pick.entry,
        "stop_loss": pick.stop_loss,
        "take_profit_1": pick.take_profit_1,
        "take_profit_2": pick.take_profit_2,
        "size_quote": pick.size_quote,
        "risk_pct": pick.risk_pct,
        "price": view.price if view is not None else pick.close_price,
        "pnl_pct": view.pnl_pct if view is not None else None,
        "pnl_r": view.pnl_r if view is not None else pick.realized_r,
        "to_sl_pct": view.to_sl_pct if view is not None else None,
        "to_tp1_pct": view.to_tp1_pct if view is not None else None,
        "to_tp2_pct": view.to_tp2_pct if view is not None else None,
        "opened_ms": pick.opened_ms,
        "opened_utc": _iso(pick.opened_ms),
        "open_ms": view.open_ms if view is not None else (
            (pick.closed_ms or pick.opened_ms) - pick.opened_ms),
        "closed_ms": pick.closed_ms,
        "close_price": pick.close_price,
        "realized_r": pick.realized_r,
        "stale": view.stale if view is not None else None,
        "signal_type": pick.signal_type,
        "note": pick.note,
    }


def write_picks_csv(path: Path, views: Sequence[PickView], history: Sequence[Pick] = ()) -> int:
    """Write :func:`pick_records` to ``path``.

    Returns:
        Rows written.

    Raises:
        OSError: if the file cannot be written.
    """
    records = pick_records(views, history)
    _frame(records, list(PICK_FIELDS)).write_csv(path)
    return len(records)


def candle_frame(
    series: CandleSeries, indicators: IndicatorConfig | None = None
) -> pl.DataFrame:
    """Candles of one symbol × timeframe with every engine indicator per closed candle.

    Indicators are computed over the closed candles with the engine's own
    :func:`engine.indicators.compute_indicators` (TA-Lib), so the last closed row equals the
    engine's ``TimeframeSignal.values`` when the same history is given; the forming candle
    (if any) is kept as the last row with ``closed`` false and no indicator values.

    Args:
        series: Candles, oldest first (prices in quote currency, volume in base units).
        indicators: Indicator periods (default: :class:`engine.config.IndicatorConfig`).

    Returns:
        Columns ``open_time`` (ms UTC), ``open_utc``, ``open``, ``high``, ``low``,
        ``close``, ``volume``, ``closed``, then one column per indicator (NaN → null).
    """
    cfg = indicators or IndicatorConfig()
    n = len(series.open_time)
    closed_n = n - 1 if series.forming_included and n else n
    frame = pl.DataFrame(
        {
            "open_time": pl.Series(series.open_time, dtype=pl.Int64),
            "open": pl.Series(series.open, dtype=pl.Float64),
            "high": pl.Series(series.high, dtype=pl.Float64),
            "low": pl.Series(series.low, dtype=pl.Float64),
            "close": pl.Series(series.close, dtype=pl.Float64),
            "volume": pl.Series(series.volume, dtype=pl.Float64),
        }
    )
    frame = frame.with_columns(
        pl.from_epoch("open_time", time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        .alias("open_utc"),
        (pl.int_range(pl.len()) < closed_n).alias("closed"),
    ).select("open_time", "open_utc", "open", "high", "low", "close", "volume", "closed")
    if closed_n == 0:
        return frame
    arrays = ClosedArrays(
        open_time=np.asarray(series.open_time[:closed_n], dtype=np.int64),
        open=np.asarray(series.open[:closed_n], dtype=np.float64),
        high=np.asarray(series.high[:closed_n], dtype=np.float64),
        low=np.asarray(series.low[:closed_n], dtype=np.float64),
        close=np.asarray(series.close[:closed_n], dtype=np.float64),
        volume=np.asarray(series.volume[:closed_n], dtype=np.float64),
    )
    values = compute_indicators(arrays, cfg)
    pad = n - closed_n
    columns = []
    for name, array in values.items():
        full = np.concatenate([array.astype(np.float64), np.full(pad, np.nan)])
        columns.append(pl.Series(name, full, dtype=pl.Float64).fill_nan(None))
    return frame.with_columns(columns)


def write_candles_csv(
    path: Path, series: CandleSeries, indicators: IndicatorConfig | None = None
) -> int:
    """Write :func:`candle_frame` to ``path``.

    Returns:
        Rows written.

    Raises:
        OSError: if the file cannot be written.
    """
    frame = candle_frame(series, indicators)
    frame.write_csv(path)
    return frame.height


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pl.DataFrame:
    if not records:
        return pl.DataFrame({c: [] for c in columns})
    return pl.DataFrame(records, infer_schema_length=None).select(columns)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
