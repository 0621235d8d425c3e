"""The engine's version, stored with every signal and calibration model.

Bump it whenever a change to ``engine/`` can change which signals are emitted or their
numbers (indicators, votes, fusion, filters, plans, micro score): stored history and fitted
calibration are only comparable within one engine version.
"""

ENGINE_VERSION = "0.5.0"
"""Signal engine version (semantic: major.minor.patch)."""
