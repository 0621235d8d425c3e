"""Command-line parsing and user-facing errors (no traceback, exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import build_parser, main, parse_duration, parse_speed, parse_time

REPO = Path(__file__).resolve().parents[1]


def test_speed_parsing() -> None:
    assert parse_speed("max") is None
    assert parse_speed("MAX") is None
    assert parse_speed("2.5") == 2.5


@pytest.mark.parametrize("text", ["0", "-3", "fast"])
def test_bad_speed_is_an_argument_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--replay", ".", "--speed", text])
    assert info.value.code == 2
    assert f"invalid speed {text!r}" in capsys.readouterr().err


def test_time_parsing() -> None:
    assert parse_time("1690848000000") == 1690848000000
    assert parse_time("2023-08-01T00:00") == 1690848000000
    assert parse_time("2023-08-01T02:00+02:00") == 1690848000000
    assert parse_time("2023-08-01T00:00Z") == 1690848000000


def test_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scan", "--start", "yesterday"])
    assert "invalid time 'yesterday'" in capsys.readouterr().err


def test_duration_parsing() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("2h") == 7200
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("5 weeks")


def test_subcommand_options_both_sides() -> None:
    parser = build_parser()
    args = parser.parse_args(["scan", "--replay", "x", "--json", "--top", "5"])
    assert (args.command, args.replay, args.json, args.top) == ("scan", Path("x"), True, 5)
    args = parser.parse_args(["--replay", "x", "scan", "--csv"])
    assert (args.replay, args.csv) == (Path("x"), True)


def test_json_and_csv_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scan", "--json", "--csv"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_missing_replay_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["scan", "--replay", str(tmp_path / "nope")]) == 2
    expected = f"perpscope: replay path not found: {tmp_path / 'nope'}"
    assert capsys.readouterr().err.strip() == expected


def test_config_error_is_one_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[universe]\ntop_n = -1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--config", str(bad), "scan"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("perpscope: config error:")
    assert f"{bad}: universe.top_n = -1" in result.stderr
