"""Replay data loaders in one import (the contract in ``source.py`` refers to this module).

Kline history lives in :mod:`feeds.replay.klines` (served by
:class:`feeds.replay.kline_source.KlineSource`), raw captures in :mod:`feeds.replay.captures`
(served by :class:`feeds.replay.capture_source.CaptureSource`); :func:`load_source` picks one
for a path. Both sources implement :class:`feeds.replay.source.RestSource`.
"""

from __future__ import annotations

from feeds.replay.capture_source import CaptureSource
from feeds.replay.captures import Capture, CaptureFrame, DepthRecord, iter_capture
from feeds.replay.errors import ReplayDataError
from feeds.replay.kline_source import KlineSource
from feeds.replay.klines import KlineHistory, KlineSeries, load_kline_history
from feeds.replay.server import detect_kind, load_source

__all__ = [
    "Capture",
    "CaptureFrame",
    "CaptureSource",
    "DepthRecord",
    "KlineHistory",
    "KlineSeries",
    "KlineSource",
    "ReplayDataError",
    "detect_kind",
    "iter_capture",
    "load_kline_history",
    "load_source",
]
