"""TUI test fixtures (services are built in :mod:`tui_service`)."""

from __future__ import annotations

import pytest
from tui_service import KLINES_DIR, FinishedReplay, HistoryService, build_replay, build_service


@pytest.fixture(scope="session")
def replay() -> FinishedReplay:
    """The slice replayed to its end through the real pipeline, shared by read-only tests."""
    assert KLINES_DIR.is_dir(), f"recorded klines not found at {KLINES_DIR}"
    return build_replay()


@pytest.fixture(scope="session")
def history() -> HistoryService:
    """One loaded service shared by read-only tests (they must not call ``advance``)."""
    assert KLINES_DIR.is_dir(), f"recorded klines not found at {KLINES_DIR}"
    return build_service()


@pytest.fixture
def fresh_history() -> HistoryService:
    """A private loaded service for tests that feed more data or change health."""
    return build_service()
