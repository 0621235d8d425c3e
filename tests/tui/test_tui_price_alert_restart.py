"""A ``once`` price level stays quiet after a restart; a repeating one fires again.

The real desk (:mod:`desk_service`) runs over a SQLite file with price levels set at the
finished replay's last prices; the desk is stopped and a new one started over the same file
(what a restart of the app does), then handed the same engine snapshot again. The alert log
is read back through a second connection.
"""

from __future__ import annotations

from pathlib import Path

from desk_service import DeskReplay
from tui_service import FinishedReplay

from engine.alerts.config import AlertsConfig, PriceAlert
from storage.alerts import AlertLogStore
from storage.db import Database

ONCE_SYMBOL = "ETHUSDT"
REPEAT_SYMBOL = "AAVEUSDT"


async def _logged(path: Path) -> list[tuple[str, str, str, float | None]]:
    """``(rule, symbol, type, level)`` of every alert log row, sorted."""
    async with Database(path) as db:
        rows = await AlertLogStore(db).recent(100)
    return sorted(
        (r.rule, r.symbol, r.alert.type, r.alert.level) for r in reversed(rows) if r.alert
    )


async def _run_once(service: DeskReplay, path: Path, config: AlertsConfig) -> None:
    """Start a desk on ``path``, hand it the replay's last snapshot, stop it (logged)."""
    desk = await service.open_desk(path, alerts=config)
    try:
        desk.on_snapshot(service.snapshot())
    finally:
        await service.close_desk()


async def test_once_level_does_not_fire_again_after_restart(
    replay: FinishedReplay, tmp_path: Path
) -> None:
    snapshot = replay.snapshot()
    once_price = snapshot.symbols[ONCE_SYMBOL].last_price
    repeat_price = snapshot.symbols[REPEAT_SYMBOL].last_price
    assert once_price is not None and repeat_price is not None
    assert not snapshot.symbols[ONCE_SYMBOL].stale and not snapshot.symbols[REPEAT_SYMBOL].stale
    config = AlertsConfig(
        rules=[],
        price_alerts=[
            # At the last price: "at or above" / "at or below" holds on that very price.
            PriceAlert(symbol=ONCE_SYMBOL, above=once_price, name="eth-once"),
            PriceAlert(symbol=REPEAT_SYMBOL, below=repeat_price, once=False, name="aave"),
        ],
    )
    path = tmp_path / "alerts.db"
    first = [
        ("aave", REPEAT_SYMBOL, "PRICE_BELOW", repeat_price),
        ("eth-once", ONCE_SYMBOL, "PRICE_ABOVE", once_price),
    ]

    await _run_once(DeskReplay(replay), path, config)
    assert await _logged(path) == first

    # Restart: a new desk (new alert engine) over the same file, the same prices.
    await _run_once(DeskReplay(replay), path, config)
    assert await _logged(path) == [first[0], *first]

    # Renaming the level does not re-arm it: symbol, side and level are what fired.
    renamed = config.model_copy(
        update={"price_alerts": [config.price_alerts[0].model_copy(update={"name": "eth"})]}
    )
    await _run_once(DeskReplay(replay), path, renamed)
    assert await _logged(path) == [first[0], *first]
