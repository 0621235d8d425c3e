"""Alert rules editor (``A``): add, edit, disable and delete signal rules and price alerts.

Each change is validated by the pydantic models of :mod:`engine.alerts.config` (a rule by
:class:`AlertRule`, the whole section by :class:`AlertsConfig`, e.g. unique rule names) and
applied at once with :meth:`engine.desk.Desk.set_alerts_config`; an invalid form stays open
and names the field and the problem. Changes last for this run: ``[alerts]`` in
``config.toml`` sets the rules at start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, DataTable, Footer, Input, Label, Static

from engine.alerts.config import AlertRule, AlertsConfig, PriceAlert
from engine.desk import Desk
from engine.service import MarketService

NO_DESK = "No database: there is no desk, so alert rules cannot be edited in this run."
"""Shown when the service has no desk."""


def describe_error(exc: Exception) -> str:
    """A validation error as short lines ``field: problem`` (no traceback, no input echo)."""
    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "form"
            lines.append(f"{where}: {error['msg']}")
        return "\n".join(lines)
    return str(exc)


def split_list(text: str) -> list[str]:
    """``"BTCUSDT, ethusdt  SOLUSDT"`` → ``["BTCUSDT", "ethusdt", "SOLUSDT"]`` (commas or
    spaces; the models normalise case)."""
    return [part for part in text.replace(",", " ").split() if part]


def with_changes(
    config: AlertsConfig,
    *,
    rules: list[AlertRule] | None = None,
    price_alerts: list[PriceAlert] | None = None,
) -> AlertsConfig:
    """``config`` with new rules and/or price alerts, validated as a whole section.

    Raises:
        pydantic.ValidationError: e.g. two rules share a name.
    """
    data: dict[str, Any] = {name: getattr(config, name) for name in AlertsConfig.model_fields}
    if rules is not None:
        data["rules"] = rules
    if price_alerts is not None:
        data["price_alerts"] = price_alerts
    return AlertsConfig.model_validate(data)


@dataclass(frozen=True)
class Field:
    """One form field.

    Attributes:
        name: Model field name.
        label: Label shown.
        value: Initial value (text for inputs, bool for checkboxes).
        hint: Placeholder of an input.
    """

    name: str
    label: str
    value: str | bool
    hint: str = ""


def _text(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rule_fields(rule: AlertRule | None) -> list[Field]:
    """Form fields of a signal rule (defaults of :class:`AlertRule` for a new one)."""
    base = rule or AlertRule(name="new")
    return [
        Field("name", "name", "" if rule is None else base.name, "unique rule name"),
        Field("signal_types", "signal types", " ".join(base.signal_types),
              "STRONG_LONG STRONG_SHORT … (empty: every LONG/SHORT type)"),
        Field("min_score", "min score", _text(base.min_score), "50-100"),
        Field("min_confidence", "min confidence", _text(base.min_confidence), "0-1"),
        Field("symbols", "symbols", " ".join(base.symbols), "BTCUSDT ETHUSDT (empty: all)"),
        Field("watchlist_only", "watchlist only", base.watchlist_only),
        Field("risk_profile", "risk profile", base.risk_profile or "",
              "conservative / balanced / aggressive (empty: any)"),
        Field("cooldown_s", "cooldown s", _text(base.cooldown_s), "seconds per symbol"),
        Field("daily_max", "daily max", _text(base.daily_max),
              "per symbol per UTC day; 0 = no limit"),
        Field("enabled", "enabled", base.enabled),
    ]  # fmt: skip


def price_fields(alert: PriceAlert | None) -> list[Field]:
    """Form fields of a price alert."""
    return [
        Field("symbol", "symbol", alert.symbol if alert else "", "BTCUSDT"),
        Field("above", "above", _text(alert.above) if alert else "", "price level (empty: none)"),
        Field("below", "below", _text(alert.below) if alert else "", "price level (empty: none)"),
        Field("once", "once", alert.once if alert else True),
        Field("name", "name", alert.name if alert else "", "shown in the alert (empty: price)"),
    ]


def rule_from_form(values: dict[str, str | bool]) -> AlertRule:
    """Build a rule from form values.

    Raises:
        pydantic.ValidationError: naming each invalid field.
    """
    data: dict[str, Any] = dict(values)
    data["signal_types"] = split_list(str(values["signal_types"]))
    data["symbols"] = split_list(str(values["symbols"]))
    data["risk_profile"] = str(values["risk_profile"]).strip() or None
    return AlertRule.model_validate(data)


def price_from_form(values: dict[str, str | bool]) -> PriceAlert:
    """Build a price alert from form values (empty levels are unset).

    Raises:
        pydantic.ValidationError: naming each invalid field.
    """
    data: dict[str, Any] = dict(values)
    for level in ("above", "below"):
        data[level] = str(values[level]).strip() or None
    return PriceAlert.model_validate(data)


class FormScreen(ModalScreen[bool]):
    """A small form; enter saves (validated by ``apply``), escape cancels.

    Dismisses with True once ``apply`` accepted the values, False when cancelled.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="alert_form.cancel"),
        Binding("ctrl+enter", "save", "Save", id="alert_form.save"),
    ]

    DEFAULT_CSS = """
    FormScreen {
        align: center middle;
        & > VerticalScroll {
            width: 80;
            max-width: 95%;
            height: auto;
            max-height: 90%;
            border: round $primary;
            background: $panel;
            padding: 0 1;
        }
        & Horizontal { height: auto; }
        & Label { width: 16; padding: 1 1 0 0; }
        & Input { width: 1fr; }
        & #form-error { color: $text-error; height: auto; }
    }
    """

    def __init__(
        self, title: str, fields: Iterable[Field], apply: Callable[[dict[str, str | bool]], None]
    ) -> None:
        """Create the form.

        Args:
            title: Border title.
            fields: Fields in order.
            apply: Validates and applies the values; raises ``ValueError`` /
                ``pydantic.ValidationError`` to keep the form open with the message.
        """
        super().__init__()
        self._title = title
        self.fields = list(fields)
        """The form's fields."""
        self._apply = apply

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"{self._title}  (enter saves, esc cancels)"
            for field in self.fields:
                with Horizontal():
                    yield Label(field.label)
                    if isinstance(field.value, bool):
                        yield Checkbox(value=field.value, id=f"f-{field.name}")
                    else:
                        yield Input(value=field.value, placeholder=field.hint, id=f"f-{field.name}")
            yield Static(id="form-error")

    def on_mount(self) -> None:
        first = self.fields[0] if self.fields else None
        if first is not None:
            self.query_one(f"#f-{first.name}").focus()

    def values(self) -> dict[str, str | bool]:
        """Current values by field name."""
        out: dict[str, str | bool] = {}
        for field in self.fields:
            if isinstance(field.value, bool):
                out[field.name] = self.query_one(f"#f-{field.name}", Checkbox).value
            else:
                out[field.name] = self.query_one(f"#f-{field.name}", Input).value
        return out

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        """Validate and apply; stays open naming the problem when invalid."""
        try:
            self._apply(self.values())
        except (ValidationError, ValueError) as exc:
            self.query_one("#form-error", Static).update(describe_error(exc))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(False)


class AlertRulesScreen(Screen[None]):
    """Signal rules and price alerts in force, editable."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", id="alert_rules.back"),
        Binding("j", "cursor_down", "Down", show=False, id="alert_rules.down"),
        Binding("k", "cursor_up", "Up", show=False, id="alert_rules.up"),
        Binding("n", "new_rule", "New rule", id="alert_rules.new_rule"),
        Binding("N", "new_price", "New price alert", id="alert_rules.new_price"),
        Binding("e", "edit", "Edit", id="alert_rules.edit"),
        Binding("space", "toggle_enabled", "Enable/disable", id="alert_rules.toggle"),
        Binding("delete,x", "delete", "Delete", id="alert_rules.delete"),
    ]

    DEFAULT_CSS = """
    AlertRulesScreen {
        & > #rules-note { height: auto; padding: 0 1; background: $panel; }
        & > DataTable { height: 1fr; }
    }
    """

    def __init__(self, service: MarketService) -> None:
        """Create the screen.

        Args:
            service: The market pipeline (``desk()``: ``alerts_config`` and
                ``set_alerts_config``).
        """
        super().__init__()
        self._service = service

    def compose(self) -> ComposeResult:
        yield Static(id="rules-note")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="rules")
        for key, label in (
            ("kind", "kind"),
            ("name", "name"),
            ("what", "what"),
            ("limits", "limits"),
            ("state", "state"),
        ):
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = "alert rules"
        self.reload()
        self.query_one(DataTable).focus()

    # -- data ------------------------------------------------------------------------------

    @property
    def desk(self) -> Desk | None:
        """The service's desk (``None`` without a database)."""
        return self._service.desk()

    def reload(self) -> None:
        """Show the rules in force."""
        note = self.query_one("#rules-note", Static)
        table: DataTable[str] = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        desk = self.desk
        if desk is None:
            note.update(NO_DESK)
            return
        config = desk.alerts_config()
        master = "" if config.enabled else "  ·  ALERTS OFF ([alerts] enabled = false)"
        note.update(
            "n new rule · N new price alert · e edit · space enable/disable · x delete  "
            f"(changes last for this run){master}"
        )
        for index, rule in enumerate(config.rules):
            what = " ".join(rule.signal_types) or "any LONG/SHORT"
            if rule.symbols:
                what += " on " + " ".join(rule.symbols)
            if rule.watchlist_only:
                what += " (watchlist)"
            limits = (
                f"score≥{rule.min_score:g} conf≥{rule.min_confidence:g} "
                f"cooldown {rule.cooldown_s:g}s max {rule.daily_max}/day"
            )
            if rule.risk_profile:
                limits += f" {rule.risk_profile}"
            state = "on" if rule.enabled else "off"
            table.add_row("rule", rule.name, what, limits, state, key=f"rule:{index}")
        for index, alert in enumerate(config.price_alerts):
            levels = []
            if alert.above is not None:
                levels.append(f"≥ {alert.above:g}")
            if alert.below is not None:
                levels.append(f"≤ {alert.below:g}")
            table.add_row(
                "price",
                alert.name or "price",
                f"{alert.symbol} {' / '.join(levels)}",
                "once" if alert.once else "re-arms",
                "on",
                key=f"price:{index}",
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def _selected(self) -> tuple[str, int] | None:
        table: DataTable[str] = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is None:
            return None
        kind, index = str(key).split(":")
        return kind, int(index)

    def _set(self, config: AlertsConfig) -> None:
        desk = self.desk
        if desk is None:
            raise ValueError("no desk: alert rules cannot be changed without a database")
        desk.set_alerts_config(config)
        self.reload()

    def _config(self) -> AlertsConfig | None:
        desk = self.desk
        if desk is None:
            self.notify(NO_DESK, severity="warning", title="Alert rules")
            return None
        return desk.alerts_config()

    # -- actions ---------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on a row edits it (the table's own enter binding posts this).
        event.stop()
        self.action_edit()

    def action_new_rule(self) -> None:
        """Add a signal rule through a form."""
        if self._config() is None:
            return

        def apply(values: dict[str, str | bool]) -> None:
            config = self._config()
            assert config is not None
            rule = rule_from_form(values)
            self._set(with_changes(config, rules=[*config.rules, rule]))

        self.app.push_screen(FormScreen("new alert rule", rule_fields(None), apply))

    def action_new_price(self) -> None:
        """Add a price-level alert through a form."""
        if self._config() is None:
            return

        def apply(values: dict[str, str | bool]) -> None:
            config = self._config()
            assert config is not None
            alert = price_from_form(values)
            self._set(with_changes(config, price_alerts=[*config.price_alerts, alert]))

        self.app.push_screen(FormScreen("new price alert", price_fields(None), apply))

    def action_edit(self) -> None:
        """Edit the selected rule or price alert."""
        config = self._config()
        selected = self._selected()
        if config is None or selected is None:
            return
        kind, index = selected
        if kind == "rule":

            def apply_rule(values: dict[str, str | bool]) -> None:
                current = self._config()
                assert current is not None
                rules = list(current.rules)
                rules[index] = rule_from_form(values)
                self._set(with_changes(current, rules=rules))

            rule = config.rules[index]
            self.app.push_screen(
                FormScreen(f"edit rule {rule.name}", rule_fields(rule), apply_rule)
            )
        else:

            def apply_price(values: dict[str, str | bool]) -> None:
                current = self._config()
                assert current is not None
                alerts = list(current.price_alerts)
                alerts[index] = price_from_form(values)
                self._set(with_changes(current, price_alerts=alerts))

            alert = config.price_alerts[index]
            self.app.push_screen(
                FormScreen(f"edit price alert {alert.symbol}", price_fields(alert), apply_price)
            )

    def action_toggle_enabled(self) -> None:
        """Enable or disable the selected rule (price alerts are deleted instead)."""
        config = self._config()
        selected = self._selected()
        if config is None or selected is None:
            return
        kind, index = selected
        if kind != "rule":
            self.notify("price alerts cannot be disabled; delete it (x)", title="Alert rules")
            return
        rules = list(config.rules)
        rules[index] = _replace(rules[index], enabled=not rules[index].enabled)
        self._set(with_changes(config, rules=rules))

    def action_delete(self) -> None:
        """Delete the selected rule or price alert."""
        config = self._config()
        selected = self._selected()
        if config is None or selected is None:
            return
        kind, index = selected
        if kind == "rule":
            rules = [r for i, r in enumerate(config.rules) if i != index]
            self._set(with_changes(config, rules=rules))
        else:
            alerts = [a for i, a in enumerate(config.price_alerts) if i != index]
            self._set(with_changes(config, price_alerts=alerts))

    def action_cursor_down(self) -> None:
        """Select the next row."""
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        """Select the previous row."""
        self.query_one(DataTable).action_cursor_up()

    def action_back(self) -> None:
        """Back to the previous screen."""
        self.dismiss()


M = TypeVar("M", bound=BaseModel)


def _replace(model: M, **changes: Any) -> M:
    """A validated copy of a frozen model with ``changes``."""
    return type(model).model_validate({**model.model_dump(), **changes})
