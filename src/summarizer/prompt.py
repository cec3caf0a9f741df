"""Prompts are data: versioned templates in the package's prompts/, rendered with $variables.

The template's hash is part of every cache key, so editing a prompt never serves stale results.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from .errors import ConfigError

_PART = re.compile(r"^### (system|user)\s*$", re.MULTILINE)


def prompts_dir() -> Path:
    """SUMMARIZER_PROMPTS_DIR, else the prompts/ shipped inside the package (wheel or checkout alike)."""
    explicit = os.environ.get("SUMMARIZER_PROMPTS_DIR")
    if explicit:
        return Path(explicit)
    return Path(str(resources.files("summarizer").joinpath("prompts")))


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str
    sha256: str

    def render(self, **variables: object) -> list[dict[str, str]]:
        """Chat messages with every $variable filled in.

        Raises:
            ConfigError: the template uses a variable that was not given.
        """
        try:
            user = Template(self.user).substitute({k: str(v) for k, v in variables.items()})
            system = Template(self.system).substitute({k: str(v) for k, v in variables.items()})
        except KeyError as exc:
            raise ConfigError(f"prompt {self.version}: variable ${exc.args[0]} is not provided") from exc
        except ValueError as exc:
            raise ConfigError(f"prompt {self.version}: malformed placeholder ({exc})") from exc
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def load_prompt(version: str = "v1", directory: Path | None = None) -> PromptTemplate:
    """Read prompts/extract_<version>.md, split into its system and user parts.

    Raises:
        ConfigError: the file is missing or lacks a part.
    """
    path = (directory or prompts_dir()) / f"extract_{version}.md"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"prompt version {version!r}: cannot read {path}") from exc
    parts = _PART.split(raw)
    sections = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=False))
    if "system" not in sections or "user" not in sections:
        raise ConfigError(f"{path}: needs a '### system' and a '### user' part")
    # The few-shot JSON braces are literal; only $name placeholders are variables.
    return PromptTemplate(version, sections["system"], sections["user"], hashlib.sha256(raw.encode()).hexdigest())
