"""One frozen Settings object. Precedence: CLI flag > SUMMARIZER_* env var > config file > default.

Secrets are not settings: the OpenAI backend reads OPENAI_API_KEY when it builds its client, so no
key ever sits in this object, its repr, the cache key or a report.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

BACKENDS = ("auto", "rules", "openai")
PLUGIN_ENV = "SUMMARIZER_BACKEND_PLUGIN"


def backend_plugins(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Extra backends named in SUMMARIZER_BACKEND_PLUGIN="name=module:factory[,name2=module2:factory2]".

    The hook exists so tests and experiments can run the real CLI with a backend of their own;
    `create_backend` imports `module`, and `factory(settings)` builds the backend.

    Raises:
        ConfigError: an entry is not of the form name=module:factory.
    """
    env = os.environ if env is None else env
    plugins: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in env.get(PLUGIN_ENV, "").split(","))):
        name, _, target = entry.partition("=")
        if not name or ":" not in target:
            raise ConfigError(f"{PLUGIN_ENV}: {entry!r} is not name=module:factory")
        plugins[name.strip()] = target.strip()
    return plugins


@dataclass(frozen=True)
class Settings:
    backend: str = "auto"
    model: str | None = None
    base_url: str | None = None
    prompt_version: str = "v1"
    temperature: float = 0.0
    max_output_tokens: int = 4096
    chunk_tokens: int = 1800
    chunk_overlap: int = 150
    json_mode: str = "auto"  # auto: json_schema, falling back to json_object when refused
    timeout: float = 60.0
    transport_attempts: int = 5
    reask_attempts: int = 2
    retry_after_max: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    cache_dir: Path = Path("cache")
    use_cache: bool = True
    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    max_file_bytes: int = 5_000_000
    # An offline (CPU-bound) backend gets this many seconds per 100 KB of article, at least 5 s.
    cpu_seconds_per_100kb: float = 3.0
    workers: int | None = None
    prices: Mapping[str, Any] | str | None = None  # cost table override, see prices.py; never affects output
    extra: Mapping[str, Any] = field(default_factory=dict)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# The least each number may be, and whether it must be above it (a timeout of 0 is no timeout at all).
_BOUNDS: dict[str, tuple[float, bool]] = {
    "temperature": (0, False),
    "max_output_tokens": (1, False),
    "chunk_tokens": (1, False),
    "chunk_overlap": (0, False),
    "timeout": (0, True),
    "transport_attempts": (1, False),
    "reask_attempts": (0, False),
    "retry_after_max": (0, False),
    "backoff_initial": (0, False),
    "backoff_max": (0, False),
    "concurrency": (1, False),
    "rpm": (1, False),
    "tpm": (1, False),
    "max_file_bytes": (1, False),
    "cpu_seconds_per_100kb": (0, False),  # 0: no deadline
    "workers": (1, False),
}


def _coerce(name: str, raw: Any) -> Any:
    kind = str(_FIELDS[name].type)
    if raw is None:
        return None
    try:
        if name == "cache_dir":
            return Path(raw).expanduser()
        if name == "use_cache":
            return raw if isinstance(raw, bool) else str(raw).lower() not in ("0", "false", "no", "off")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {raw!r} is not a valid {kind.split(' ')[0]}") from exc
    return raw


def _config_file(env: Mapping[str, str]) -> Path | None:
    explicit = env.get("SUMMARIZER_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"SUMMARIZER_CONFIG points at {path}, which is not a file")
        return path
    local = Path("summarizer.toml")
    return local if local.is_file() else None


def load_settings(overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from defaults, the config file, SUMMARIZER_* variables and CLI overrides.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = _config_file(env)
    if path is not None:
        import tomllib  # only a run with a config file pays for the parser

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file ({exc})") from exc
        for key, raw in data.items():
            name = key.replace("-", "_")
            if name not in _FIELDS or name == "extra":
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[name] = _coerce(name, raw)
    for name in _FIELDS:
        raw = env.get("SUMMARIZER_" + name.upper())
        if raw not in (None, "") and name != "extra":
            values[name] = _coerce(name, raw)
    for name, raw in (overrides or {}).items():
        if raw is not None:
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = _coerce(name, raw)
    settings = Settings(**values)
    for name, (low, strict) in _BOUNDS.items():
        value = getattr(settings, name)
        if value is not None and (value <= low if strict else value < low):
            raise ConfigError(f"setting {name}: {value!r} must be {'above' if strict else 'at least'} {low}")
    if settings.backend not in BACKENDS and settings.backend not in backend_plugins(env):
        raise ConfigError(f"unknown backend {settings.backend!r}: choose one of {', '.join(BACKENDS)}")
    if settings.chunk_overlap >= settings.chunk_tokens:
        raise ConfigError("chunk_overlap must be smaller than chunk_tokens")
    return settings


def model_endpoint_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when the user has pointed us at a model (a key or a base URL)."""
    env = os.environ if env is None else env
    return bool(env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"))
