"""Settings precedence, checked for every setting: CLI flag > SUMMARIZER_* env var > summarizer.toml > default."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import EVAL_ARTICLES
from summarizer.cli import app
from summarizer.errors import ConfigError
from summarizer.settings import _BOUNDS, Settings, load_settings

# Per setting: the value the config file, the environment and the CLI give (as each would spell it),
# and what each becomes. Three different values, none the default, so each layer shows through.
LAYERS: dict[str, tuple[tuple[Any, str, Any], tuple[Any, Any, Any]]] = {
    "backend": (("rules", "openai", "auto"), ("rules", "openai", "auto")),
    "model": (("m-file", "m-env", "m-cli"), ("m-file", "m-env", "m-cli")),
    "base_url": (("http://f/v1", "http://e/v1", "http://c/v1"), ("http://f/v1", "http://e/v1", "http://c/v1")),
    "prompt_version": (("vf", "ve", "vc"), ("vf", "ve", "vc")),
    "temperature": ((0.1, "0.2", 0.3), (0.1, 0.2, 0.3)),
    "max_output_tokens": ((100, "200", 300), (100, 200, 300)),
    "chunk_tokens": ((1000, "1100", 1200), (1000, 1100, 1200)),
    "chunk_overlap": ((10, "20", 30), (10, 20, 30)),
    "json_mode": (("schema", "object", "plain"), ("schema", "object", "plain")),
    "timeout": ((1.5, "2.5", 3.5), (1.5, 2.5, 3.5)),
    "transport_attempts": ((2, "3", 4), (2, 3, 4)),
    "reask_attempts": ((0, "1", 3), (0, 1, 3)),
    "retry_after_max": ((5.0, "6", 7.0), (5.0, 6.0, 7.0)),
    "backoff_initial": ((0.1, "0.2", 0.3), (0.1, 0.2, 0.3)),
    "backoff_max": ((1.0, "2", 3.0), (1.0, 2.0, 3.0)),
    "cache_dir": (("cf", "ce", "cc"), (Path("cf"), Path("ce"), Path("cc"))),
    "use_cache": ((False, "1", False), (False, True, False)),
    "concurrency": ((2, "3", 4), (2, 3, 4)),
    "rpm": ((10, "20", 30), (10, 20, 30)),
    "tpm": ((1000, "2000", 3000), (1000, 2000, 3000)),
    "max_file_bytes": ((1000, "2000", 3000), (1000, 2000, 3000)),
    "cpu_seconds_per_100kb": ((1.0, "2", 4.0), (1.0, 2.0, 4.0)),
    "workers": ((1, "2", 3), (1, 2, 3)),
    "prices": (("f.toml", "e.toml", "c.toml"), ("f.toml", "e.toml", "c.toml")),
}


def test_the_table_covers_every_setting() -> None:
    settable = {f.name for f in dataclasses.fields(Settings)} - {"extra"}  # extra: Python callers only
    assert set(LAYERS) == settable


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, int | float) else f'"{value}"'


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_cli_beats_env_beats_file_beats_default(name: str, tmp_path: Path) -> None:
    (in_file, in_env, on_cli), (from_file, from_env, from_cli) = LAYERS[name]
    config = tmp_path / "summarizer.toml"
    config.write_text(f"{name} = {toml_value(in_file)}\n", "utf-8")
    file_only = {"SUMMARIZER_CONFIG": str(config)}
    file_and_env = {**file_only, f"SUMMARIZER_{name.upper()}": in_env}
    default = getattr(Settings(), name)
    assert getattr(load_settings({}, env={}), name) == default
    assert getattr(load_settings({}, env=file_only), name) == from_file != default
    assert getattr(load_settings({}, env=file_and_env), name) == from_env != from_file
    assert getattr(load_settings({name: on_cli}, env=file_and_env), name) == from_cli != from_env
    assert getattr(load_settings({name: None}, env=file_and_env), name) == from_env  # a flag not given


def test_the_backend_from_the_environment_reaches_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key set, `auto` means the model; SUMMARIZER_BACKEND=rules must still win over that."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000000000000")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("SUMMARIZER_BACKEND", "rules")
    result = CliRunner().invoke(app, ["summarise", str(EVAL_ARTICLES[0]), "--no-cache", "--compact"])
    assert result.exit_code == 0, result.stderr
    assert '"backend":"rules"' in result.stdout
    flag_wins = CliRunner().invoke(app, ["summarise", str(EVAL_ARTICLES[0]), "--backend", "openai", "--no-cache"])
    assert flag_wins.exit_code == 2 and "model" in flag_wins.stderr.lower()  # openai asked for: it needs a model


@pytest.mark.parametrize("name", sorted(_BOUNDS))
def test_a_number_out_of_range_is_refused_naming_the_setting(name: str) -> None:
    low, strict = _BOUNDS[name]
    too_low = low if strict else low - 1
    with pytest.raises(ConfigError, match=f"setting {name}: .* must be"):
        load_settings({}, env={f"SUMMARIZER_{name.upper()}": str(too_low)})
    fits = {"chunk_tokens": 1000}.get(name, low + 1)  # chunk_tokens must also exceed the overlap
    assert getattr(load_settings({name: fits}, env={}), name) == fits  # in range: accepted


def test_a_negative_timeout_from_the_environment_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        app, ["summarise", str(EVAL_ARTICLES[0]), "-b", "rules"], env={"SUMMARIZER_TIMEOUT": "-1"}
    )
    assert result.exit_code == 2 and "setting timeout" in result.stderr
