"""Render the documented default ``config.toml`` from the settings models.

The repository's ``config.toml`` is this function's output (a test keeps them equal), so every
setting is documented with its default and nothing drifts.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from tui.settings import Settings

HEADER = """\
# perpscope configuration: every setting with its default.
#
# Copy this file to the user config dir (Linux: ~/.config/perpscope/config.toml) and change
# what you need, or point at a copy with `perpscope --config PATH` or $PERPSCOPE_CONFIG.
# Environment variables override the file: PERPSCOPE_<SECTION>__<KEY>, e.g.
#   PERPSCOPE_UNIVERSE__TOP_N=50 perpscope
# Units: prices in quote currency (USDT), times in ms UTC unless a key says _s (seconds),
# rates as fractions.
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot render {value!r} as TOML")


def _comment(text: str | None) -> list[str]:
    if not text:
        return []
    flat = " ".join(line.strip() for line in text.strip().splitlines()).replace("``", "`")
    return ["# " + line for line in textwrap.wrap(flat, width=94)]


def _is_model_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, BaseModel) for v in value)


def _table(path: str, model: BaseModel, *, array: bool = False) -> list[str]:
    """One TOML table: its plain keys first, then nested tables and arrays of tables."""
    out = [f"[[{path}]]" if array else f"[{path}]"]
    nested: list[tuple[str, Any, str | None]] = []
    for key, sub in type(model).model_fields.items():
        value = getattr(model, key)
        if isinstance(value, BaseModel) or _is_model_list(value):
            nested.append((key, value, sub.description))
            continue
        if not array:
            out.extend(_comment(sub.description))
        if value is None or isinstance(value, SecretStr):
            # Secrets are never written out; None has no TOML spelling.
            out.append(f"# {key} =")
        else:
            out.append(f"{key} = {_toml_value(value)}")
    for key, value, description in nested:
        out.append("")
        out.extend(_comment(description))
        if isinstance(value, BaseModel):
            out.extend(_table(f"{path}.{key}", value))
        else:
            for i, item in enumerate(value):
                if i == 0:
                    out.extend(_item_comments(item))
                out.extend(_table(f"{path}.{key}", item, array=True))
    return out


def _item_comments(item: BaseModel) -> list[str]:
    """Each key of an array-of-tables item, documented once before the first item."""
    out: list[str] = []
    for key, sub in type(item).model_fields.items():
        text = sub.description or ""
        out.extend(_comment(f"{key}: {text}" if text else key))
    return out


def render_default_config() -> str:
    """The documented default configuration as TOML text."""
    defaults = Settings.model_construct()
    out = [HEADER]
    for name, field in Settings.model_fields.items():
        section: BaseModel = getattr(defaults, name)
        out.append("")
        out.extend(_comment(field.description))
        out.extend(_table(name, section))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_default_config(), end="")
