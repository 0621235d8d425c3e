"""Configuration: sources, precedence, and one clear message per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.config_doc import render_default_config
from tui.settings import ConfigError, default_config_path, load_settings

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(str(path) if path else None)
    return str(info.value)


def test_repo_config_toml_documents_every_default() -> None:
    assert (REPO / "config.toml").read_text(encoding="utf-8") == render_default_config(), (
        "config.toml is out of date: run `python -m tui.config_doc > config.toml`"
    )
    settings = load_settings(str(REPO / "config.toml"))
    assert settings.model_dump() == load_settings(None).model_dump()


def test_defaults_without_any_file() -> None:
    settings = load_settings(None)
    assert settings.timeframes.timeframes == ["5m", "15m", "1h", "4h"]
    assert settings.universe.mode == "top"
    assert settings.endpoints.ws_url == "wss://fstream.binance.com"


def test_user_config_dir_is_used(tmp_path: Path) -> None:
    path = default_config_path()
    path.parent.mkdir(parents=True)
    path.write_text('[universe]\nmode = "all"\n', encoding="utf-8")
    assert load_settings(None).universe.mode == "all"


def test_env_var_moves_the_file_and_cli_beats_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text("[universe]\ntop_n = 7\n", encoding="utf-8")
    cli_file = tmp_path / "cli.toml"
    cli_file.write_text("[universe]\ntop_n = 9\n", encoding="utf-8")
    monkeypatch.setenv("PERPSCOPE_CONFIG", str(env_file))
    assert load_settings(None).universe.top_n == 7
    assert load_settings(str(cli_file)).universe.top_n == 9


def test_env_vars_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[universe]\ntop_n = 7\n[timeframes]\ntimeframes = ["1h"]\n')
    monkeypatch.setenv("PERPSCOPE_UNIVERSE__TOP_N", "25")
    monkeypatch.setenv("PERPSCOPE_ENDPOINTS__WS_URL", "ws://127.0.0.1:9")
    settings = load_settings(str(path))
    assert settings.universe.top_n == 25
    assert settings.endpoints.ws_url == "ws://127.0.0.1:9"
    assert settings.timeframes.timeframes == ["1h"]


def test_timeframes_are_sorted_and_1d_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, '[timeframes]\ntimeframes = ["1d", "5m", "1h"]\n')
    assert load_settings(str(path)).timeframes.timeframes == ["5m", "1h", "1d"]


def test_missing_explicit_file() -> None:
    message = error_of(Path("/nonexistent/perpscope.toml"))
    assert message == "config file not found: /nonexistent/perpscope.toml (given by --config)"


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[universe]\nmode = \n")
    message = error_of(path)
    assert str(path) in message and "invalid TOML" in message and "line 2" in message


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[universe]\ntopn = 5\n"))
    assert f"{tmp_path / 'config.toml'}: unknown key 'universe.topn'" in message
    assert "allowed: mode, top_n, symbols, exclude, quote_asset" in message


def test_unknown_section(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[univers]\nmode = 'all'\n"))
    assert "unknown key 'univers'" in message


def test_wrong_type(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[universe]\ntop_n = "many"\n'))
    assert "universe.top_n = 'many'" in message and "valid integer" in message


def test_out_of_range(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[ui]\nrefresh_hz = 50\n"))
    assert "ui.refresh_hz = 50" in message and "less than or equal to 10" in message


def test_bad_choice_lists_choices(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[universe]\nmode = "everything"\n'))
    assert "universe.mode = 'everything'" in message and "'all', 'top' or 'list'" in message


def test_bad_timeframe(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[timeframes]\ntimeframes = ["5m", "7m"]\n'))
    assert "timeframes.timeframes = ['5m', '7m']" in message
    assert "unknown timeframe '7m'; allowed: 1m, 3m, 5m" in message


def test_bad_url_scheme(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[endpoints]\nws_url = "https://fstream.binance.com"\n'))
    assert "endpoints.ws_url = 'https://fstream.binance.com'" in message
    assert "must start with ws:// or wss://" in message


def test_cross_field_rule(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[signals]\ntp1_atr = 5.0\ntp2_atr = 4.0\n"))
    assert "tp1_atr must be smaller than tp2_atr" in message


def test_several_mistakes_reported_together(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[universe]\ntop_n = 0\n[feed]\nsubscribe_batch = 999\n"))
    assert message.startswith("2 config errors:")
    assert "universe.top_n = 0" in message and "feed.subscribe_batch = 999" in message


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERPSCOPE_UNIVERSE__TOP_N", "abc")
    message = error_of()
    assert "environment variable PERPSCOPE_UNIVERSE__TOP_N: universe.top_n = 'abc'" in message


def test_unknown_env_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERPSCOPE_UNIVERSE__BOGUS", "1")
    message = error_of()
    assert "environment variable PERPSCOPE_UNIVERSE__BOGUS: unknown key 'universe.bogus'" in message
