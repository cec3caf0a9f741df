"""Backends: a small Protocol (one chunk in, grounded partial summary + usage out) and a registry.

The OpenAI-compatible client and the offline rules extractor are the two built-in implementations;
tests register fakes through `register_backend`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from ..errors import ConfigError
from ..schema import BodySummary, Usage
from ..settings import backend_plugins

if TYPE_CHECKING:
    from ..article import Article
    from ..chunk import Chunk
    from ..prompt import PromptTemplate
    from ..sections import Section
    from ..settings import Settings


# How a model is asked for JSON, strictest first: strict json_schema, json_object, no response_format.
# A backend that falls back walks this order; a result reports the loosest mode any chunk used.
JSON_MODE_ORDER = ("schema", "object", "plain")


@dataclass(frozen=True)
class ChunkRequest:
    """Everything a backend may look at for one chunk: the chunk, its section and the whole article."""

    article: Article
    section: Section
    chunk: Chunk
    chunk_count: int
    # Every chunk of an article appends what it spent here, even when cancelled, so a failed
    # article's cost is still known.
    ledger: list[Usage] = field(default_factory=list)
    # When work on the article began (time.monotonic()): an offline backend's per-article deadline
    # counts from here, across all of the article's sections.
    started: float = field(default_factory=time.monotonic)


@dataclass
class ChunkResult:
    """A backend's answer for one chunk: bodies whose items are already grounded (spans set)."""

    bodies: list[BodySummary]
    usage: Usage = field(default_factory=Usage)
    warnings: list[str] = field(default_factory=list)
    cached: bool = False
    json_mode: str | None = None  # how the reply was asked for (json_schema, json_object, plain)


class Backend(Protocol):
    """What the pipeline needs from a backend: what it is, declared as class attributes, and two coroutines.

    The pipeline and the batch branch on these traits, never on a backend's name:

    - `needs_network`: it calls a model endpoint. A batch runs it in an async pool behind a Limiter;
      one that does not is CPU-bound and runs in worker processes.
    - `has_cost`: its requests are metered (tokens, money), so reports show usage and cost.
    - `wants_chunks`: give it token-sized chunks; otherwise whole sections (the rules rank across
      a committee's part).
    - `deterministic`: the same input always gives the same output.
    - `cacheable`: its results are worth keeping (slow or paid for).
    - `limits_itself`: it enters its own Limiter around every HTTP attempt, retries included.
    - `version`: changes whenever its output for the same input would; part of a result's identity
      (see `identity.result_key`), so a new version redoes articles and misses old cache entries.
    - `base_url`: the endpoint it talks to (None when none); also part of the identity.
    """

    name: str
    model: str | None
    prompt: PromptTemplate | None
    needs_network: bool
    has_cost: bool
    wants_chunks: bool
    deterministic: bool
    cacheable: bool
    limits_itself: bool

    @property
    def version(self) -> str: ...

    @property
    def base_url(self) -> str | None: ...

    def cache_modes(self) -> list[str | None]:
        """The JSON modes whose cached results this run may reuse, its own first ([None]: no modes)."""
        ...

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        """Summarise one chunk. Raises a SummarizerError subclass when it cannot."""
        ...

    async def aclose(self) -> None:
        """Release connections; a no-op for backends that hold none."""
        ...


BackendFactory = Callable[["Settings"], Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    _REGISTRY[name] = factory


def _load_plugin(target: str) -> BackendFactory:
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"backend plugin {target!r} cannot be loaded ({exc})") from exc
    if not callable(factory):
        raise ConfigError(f"backend plugin {target!r} is not callable")
    return cast(BackendFactory, factory)


def create_backend(name: str, settings: Settings) -> Backend:
    """Instantiate a backend by name. Built-ins are imported lazily so `--help` stays fast.

    Besides `register_backend`, a backend can come from SUMMARIZER_BACKEND_PLUGIN=name=module:factory
    (see `settings.backend_plugins`), which also works in subprocesses and worker processes.
    """
    if name not in _REGISTRY:
        plugins = backend_plugins()
        if name in plugins:
            register_backend(name, _load_plugin(plugins[name]))
        elif name == "rules":
            from .rules import RulesBackend

            register_backend("rules", RulesBackend)
        elif name == "openai":
            from .openai_backend import OpenAIBackend

            register_backend("openai", OpenAIBackend)
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(sorted({"rules", "openai", *_REGISTRY}))
        raise ConfigError(f"unknown backend {name!r}: choose one of {known}")
    return factory(settings)
