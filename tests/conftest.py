"""Suite-wide fixtures: the shared recorded data, and isolation from the developer's setup."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
"""Real recorded exchange data (never copied into the repo)."""
KLINES_55 = SHARED_DATA / "binance-usdm" / "klines" / "alpergulsen-freqtrade"
"""55 USDT perpetuals, 5m/1h klines, 2023-07-04..2023-08-03."""


@pytest.fixture(autouse=True)
def _isolated_user_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the developer's config, data and PERPSCOPE_* variables out of every test."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("PERPSCOPE_"):
            del os.environ[key]
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; the suite needs it (CI clones the repo beside it)."""
    assert SHARED_DATA.is_dir(), f"recorded data not found at {SHARED_DATA}"
    return SHARED_DATA
