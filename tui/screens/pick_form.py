"""The pick form: mark a setup as a pick (entry, stop loss, targets, size, note).

A modal prefilled from :meth:`engine.desk.Desk.default_pick` (the symbol's current trade plan
with paper sizing), or, without a plan, with the entry at the last price and empty levels.
Saving awaits :meth:`engine.desk.Desk.add_pick` (committed to SQLite before it returns) and
only then dismisses with the stored pick, so the caller's confirmation is never ahead of the
database. Bad input is shown under the field it concerns and nothing is saved.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Select, Static

from engine.desk import Desk
from engine.models import Direction
from engine.picks import PicksConfig, position_size
from engine.service import MarketService
from storage.picks import Pick

log = logging.getLogger(__name__)

FIELDS: tuple[tuple[str, str], ...] = (
    ("entry", "Entry"),
    ("stop_loss", "Stop loss"),
    ("take_profit_1", "TP1"),
    ("take_profit_2", "TP2"),
    ("size_quote", "Size (USDT)"),
    ("risk_pct", "Risk %"),
    ("note", "Note"),
)
"""Form fields: :class:`storage.picks.Pick` attribute → label."""

PRICE_FIELDS = ("entry", "stop_loss", "take_profit_1", "take_profit_2")
OPTIONAL_FIELDS = frozenset({"take_profit_2", "size_quote", "risk_pct", "note"})


class PickDraft(msgspec.Struct, frozen=True, kw_only=True):
    """What the form starts with.

    Attributes:
        symbol: Venue symbol.
        side: LONG or SHORT.
        entry: Entry price (quote currency) or ``None``.
        stop_loss: Stop loss or ``None``.
        take_profit_1: First target or ``None``.
        take_profit_2: Second target or ``None``.
        size_quote: Notional in quote currency or ``None``.
        risk_pct: Equity risk in percent or ``None``.
        note: Free text.
        signal_type: Type of the signal the plan came from (empty: none).
        signal_as_of: ``as_of`` of that signal (ms UTC) or ``None``.
        from_plan: True when the levels come from a trade plan.
    """

    symbol: str
    side: Direction
    entry: float | None = None
    stop_loss: float | None = None
    take_profit_1: float | None = None
    take_profit_2: float | None = None
    size_quote: float | None = None
    risk_pct: float | None = None
    note: str = ""
    signal_type: str = ""
    signal_as_of: int | None = None
    from_plan: bool = False


def draft_for(
    symbol: str, default: Pick | None, *, last_price: float | None, side: Direction | None
) -> PickDraft:
    """The form's start values: the plan's pick, else the last price and empty levels.

    Args:
        symbol: Venue symbol.
        default: :meth:`Desk.default_pick` result, or ``None`` without a plan.
        last_price: Last price of the symbol (quote currency), or ``None``.
        side: The signal's direction when there is no plan (NEUTRAL/None → LONG).
    """
    if default is not None:
        return PickDraft(
            symbol=default.symbol, side=default.side, entry=default.entry,
            stop_loss=default.stop_loss, take_profit_1=default.take_profit_1,
            take_profit_2=default.take_profit_2, size_quote=default.size_quote,
            risk_pct=default.risk_pct, note=default.note, signal_type=default.signal_type,
            signal_as_of=default.signal_as_of, from_plan=True,
        )
    chosen = side if side in (Direction.LONG, Direction.SHORT) else Direction.LONG
    assert chosen is not None
    return PickDraft(symbol=symbol, side=chosen, entry=last_price)


def field_of_error(message: str) -> str:
    """The form field a validation message is about: the first field name it mentions
    (``LONG pick stop_loss 9 must be below entry 10`` → ``stop_loss``); ``entry`` if none."""
    found = [(message.find(name), name) for name, _ in FIELDS if name in message]
    return min(found)[1] if found else "entry"


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:.10g}"


class PickForm(ModalScreen[Pick | None]):
    """Modal form for a new pick; dismisses with the stored pick, or ``None`` on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pick_form.cancel"),
        Binding("ctrl+s", "save", "Save", id="pick_form.save", priority=True),
    ]

    DEFAULT_CSS = """
    PickForm { align: center middle; }
    PickForm > #pick-form {
        width: 64; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    PickForm #pick-fields { height: auto; max-height: 1fr; }
    PickForm .pick-row { height: auto; margin-bottom: 0; }
    PickForm .pick-label { width: 12; padding: 0 1 0 0; }
    PickForm .pick-row Input, PickForm .pick-row Select { width: 1fr; }
    PickForm .pick-error { color: $text-error; height: auto; padding-left: 12; }
    PickForm .pick-error.-empty { display: none; }
    PickForm #pick-paper { color: $text-muted; height: auto; }
    PickForm #pick-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    PickForm #pick-buttons Button { margin-left: 1; }
    """

    def __init__(self, desk: Desk, draft: PickDraft, *, clock: Callable[[], int]) -> None:
        """Create the form.

        Args:
            desk: Where the pick is stored.
            draft: Start values (:func:`draft_for`).
            clock: Engine clock in ms UTC (the pick's ``opened_ms``).
        """
        super().__init__()
        self._desk = desk
        self.draft = draft
        """The start values."""
        self._clock = clock
        self._size_touched = False
        # Size texts the form itself wrote: a Changed event with another text is the user's.
        self._auto: dict[str, set[str]] = {
            "size_quote": {_text(draft.size_quote)}, "risk_pct": {_text(draft.risk_pct)},
        }
        self.saving = False
        """True while the desk is storing the pick."""

    @property
    def config(self) -> PicksConfig:
        """The desk's ``[picks]`` settings (paper sizing)."""
        return self._desk.picks_config

    def compose(self) -> ComposeResult:
        draft = self.draft
        origin = f"from the {draft.signal_type} plan" if draft.from_plan else "no trade plan"
        with Vertical(id="pick-form") as box:
            box.border_title = f"Pick {draft.symbol}"
            yield Static(f"{draft.symbol} · {origin}", id="pick-origin")
            with VerticalScroll(id="pick-fields"):
                with Horizontal(classes="pick-row"):
                    yield Label("Side", classes="pick-label")
                    yield Select(
                        [("LONG", Direction.LONG.value), ("SHORT", Direction.SHORT.value)],
                        value=draft.side.value, allow_blank=False, id="side", compact=True,
                    )
                yield Static("", id="error-side", classes="pick-error -empty")
                for name, label in FIELDS:
                    with Horizontal(classes="pick-row"):
                        yield Label(label, classes="pick-label")
                        value = draft.note if name == "note" else _text(getattr(draft, name))
                        placeholder = "optional" if name in OPTIONAL_FIELDS else "required"
                        yield Input(value=value, placeholder=placeholder, id=name, compact=True)
                    yield Static("", id=f"error-{name}", classes="pick-error -empty")
            yield Static("", id="pick-paper")
            with Horizontal(id="pick-buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self._update_paper()
        self.query_one("#entry", Input).focus()

    # ---------------------------------------------------------------- values

    def value(self, name: str) -> str:
        """Current text of the field ``name``."""
        return self.query_one(f"#{name}", Input).value

    def set_value(self, name: str, text: str) -> None:
        """Type ``text`` into the field ``name`` (as the user would)."""
        self.query_one(f"#{name}", Input).value = text

    def error(self, name: str) -> str:
        """The error shown under field ``name`` (empty if none)."""
        return str(self.query_one(f"#error-{name}", Static).content)

    def _show_error(self, name: str, message: str) -> None:
        widget = self.query_one(f"#error-{name}", Static)
        widget.update(message)
        widget.set_class(not message, "-empty")

    def _clear_errors(self) -> None:
        for name in ("side", *(n for n, _ in FIELDS)):
            self._show_error(name, "")

    def _parse(self) -> tuple[dict[str, float | None], dict[str, str]]:
        """Numbers of the numeric fields and the errors by field."""
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for name, label in FIELDS:
            if name == "note":
                continue
            text = self.value(name).strip().replace(",", "")
            if not text:
                if name not in OPTIONAL_FIELDS:
                    errors[name] = f"{label} is required"
                values[name] = None
                continue
            try:
                number = float(text)
            except ValueError:
                errors[name] = f"{label}: {text!r} is not a number"
                continue
            if not math.isfinite(number) or number <= 0:
                errors[name] = f"{label} must be a number > 0, got {text}"
                continue
            values[name] = number
        return values, errors

    @property
    def side(self) -> Direction:
        """The side chosen."""
        value = self.query_one("#side", Select).value
        return Direction(str(value))

    # ---------------------------------------------------------------- paper sizing

    def _update_paper(self) -> None:
        paper = self.config.paper()
        label = self.query_one("#pick-paper", Static)
        if paper is None:
            label.update("paper sizing off ([picks] account_equity not set)")
            return
        values, errors = self._parse()
        entry, stop = values.get("entry"), values.get("stop_loss")
        if entry is None or stop is None or entry == stop or errors.keys() & {"entry", "stop_loss"}:
            label.update("paper sizing: needs entry and stop loss")
            return
        sized = position_size(entry, stop, paper)
        lev = f"leverage {sized.leverage:.1f}×"
        if sized.capped:
            lev += f" (capped at {paper.max_leverage:g}×; needed {sized.leverage_needed:.1f}×)"
        label.update(
            f"paper: {sized.size_quote:,.2f} USDT ({sized.size_base:.6g} base) · risk "
            f"{sized.risk_quote:,.2f} USDT = {sized.risk_pct:.2f} % of "
            f"{paper.account_equity:,.0f} · {lev}"
        )
        if not self._size_touched:
            # Keep the size in step with the levels until the user sets it by hand.
            texts = {"size_quote": f"{sized.size_quote:.2f}", "risk_pct": f"{sized.risk_pct:.4g}"}
            for name, text in texts.items():
                self._auto[name].add(text)
                self.set_value(name, text)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        name = event.input.id or ""
        if name in ("size_quote", "risk_pct"):
            if event.value not in self._auto[name]:
                self._size_touched = True
            return
        if name in ("entry", "stop_loss"):
            self._update_paper()

    @on(Input.Submitted)
    async def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_save()

    @on(Button.Pressed, "#save")
    async def _save_pressed(self) -> None:
        await self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    # ---------------------------------------------------------------- actions

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)

    def build_pick(self) -> Pick | None:
        """The pick the fields describe, or ``None`` after showing the field errors."""
        self._clear_errors()
        values, errors = self._parse()
        for name, message in errors.items():
            self._show_error(name, message)
        if errors:
            self.query_one(f"#{next(iter(errors))}", Input).focus()
            return None
        entry, stop, tp1 = values["entry"], values["stop_loss"], values["take_profit_1"]
        assert entry is not None and stop is not None and tp1 is not None
        opened = self._clock()
        return Pick(
            symbol=self.draft.symbol, side=self.side, entry=entry, stop_loss=stop,
            take_profit_1=tp1, take_profit_2=values["take_profit_2"],
            size_quote=values["size_quote"], risk_pct=values["risk_pct"],
            note=self.value("note").strip(), signal_type=self.draft.signal_type,
            signal_as_of=self.draft.signal_as_of, opened_ms=opened,
            expires_ms=self.config.expires_ms(opened),
        )

    async def action_save(self) -> None:
        """Validate, store through the desk (committed), then dismiss with the stored pick."""
        if self.saving:
            return
        pick = self.build_pick()
        if pick is None:
            return
        self.saving = True
        try:
            stored = await self._desk.add_pick(pick)
        except ValueError as exc:
            # The store validates the levels for the side; show it where it belongs.
            name = field_of_error(str(exc))
            self._show_error(name, str(exc))
            self.query_one(f"#{name}", Input).focus()
            return
        except Exception as exc:
            log.exception("pick %s not saved", pick.symbol)
            self._show_error("entry", f"not saved: {exc}")
            return
        finally:
            self.saving = False
        self.dismiss(stored)


def open_pick_form(
    screen: Screen[Any], service: MarketService, symbol: str | None
) -> PickForm | None:
    """Open the pick form for ``symbol`` on top of ``screen`` (the ``p`` key).

    Prefilled from the desk's default pick (the current plan with paper sizing); without a
    plan, the entry is the last price and the levels are empty. When the form saved, a toast
    confirms it (the pick was committed before the form closed).

    Returns:
        The form pushed, or ``None`` after a toast saying why not (no symbol, no database,
        no price known).
    """
    if symbol is None:
        screen.notify("no symbol selected", severity="warning")
        return None
    desk = service.desk()
    if desk is None:
        screen.notify("picks need the database (signal history is off)", severity="warning",
                      title="picks unavailable")
        return None
    snapshot = service.snapshot()
    state = snapshot.symbols.get(symbol)
    default = desk.default_pick(symbol, snapshot)
    signal = state.signal if state is not None else None
    draft = draft_for(
        symbol, default, last_price=state.last_price if state is not None else None,
        side=signal.direction if signal is not None else None,
    )
    if draft.entry is None:
        screen.notify(f"{symbol}: no price known yet, cannot prefill a pick",
                      severity="warning")
        return None

    def saved(pick: Pick | None) -> None:
        if pick is None:
            return
        tp2 = f" TP2 {pick.take_profit_2:g}" if pick.take_profit_2 is not None else ""
        screen.notify(
            f"#{pick.id} {pick.symbol} {pick.side.value} entry {pick.entry:g} SL "
            f"{pick.stop_loss:g} TP1 {pick.take_profit_1:g}{tp2}",
            title="pick saved",
        )

    form = PickForm(desk, draft, clock=lambda: service.snapshot().time)
    screen.app.push_screen(form, saved)
    return form
