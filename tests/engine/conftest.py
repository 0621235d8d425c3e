"""Engine test fixtures: the recorded Binance USDⓈ-M klines (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
"""Real recorded exchange data beside the repo."""
KLINES_DIR = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"
"""55 USDT perpetuals, 5m (and 51 × 1h, 10 × 1m) klines, 2023-07-04..2023-08-03."""


@pytest.fixture(scope="session")
def klines_dir() -> Path:
    """Directory of the recorded freqtrade feather klines."""
    assert KLINES_DIR.is_dir(), f"recorded klines not found at {KLINES_DIR}"
    return KLINES_DIR
