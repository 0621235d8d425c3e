"""The engine, feeds, storage and AI layers run headless: they never import textual or rich."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEADLESS = ("engine", "feeds", "storage", "ai")


def headless_modules() -> list[str]:
    names = []
    for package in HEADLESS:
        names.append(package)
        for info in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}."):
            names.append(info.name)
    return sorted(names)


def test_every_headless_package_has_modules() -> None:
    modules = headless_modules()
    assert "engine.engine" in modules and "feeds.binance_futures" in modules


@pytest.mark.parametrize("package", HEADLESS)
def test_headless_package_imports_no_ui(package: str) -> None:
    modules = [name for name in headless_modules() if name.split(".")[0] == package]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(json.dumps(ui))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
