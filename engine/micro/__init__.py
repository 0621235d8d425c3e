"""Microstructure features and score: order book, taker flow, derivatives, scalp signals.

Pure, synchronous and IO-free; time is always passed in (ms UTC). The engine keeps one
:class:`MicroTracker` per symbol, feeds it events and calls :meth:`MicroTracker.evaluate`.
"""

from engine.micro.book_features import BookError, FlipEvent, LiquidityFlip, book_features
from engine.micro.config import FACTOR_NAMES, MicroConfig
from engine.micro.derivs import DerivativesTracker
from engine.micro.flow import TradeFlow
from engine.micro.score import MicroSignalGate, micro_confidence, micro_plan, micro_score
from engine.micro.tracker import MicroReading, MicroTracker

__all__ = [
    "FACTOR_NAMES",
    "BookError",
    "DerivativesTracker",
    "FlipEvent",
    "LiquidityFlip",
    "MicroConfig",
    "MicroReading",
    "MicroSignalGate",
    "MicroTracker",
    "TradeFlow",
    "book_features",
    "micro_confidence",
    "micro_plan",
    "micro_score",
]
