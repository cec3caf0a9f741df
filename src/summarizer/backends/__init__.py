"""Backends: a small Protocol (one chunk in, grounded partial summary + usage out) and a registry.

The OpenAI-compatible client and the offline rules extractor are the two built-in implementations;
tests register fakes through `register_backend`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from ..schema import BodySummary, Usage

if TYPE_CHECKING:
    from ..article import Article
    from ..chunk import Chunk
    from ..prompt import PromptTemplate
    from ..sections import Section
    from ..settings import Settings


@dataclass(frozen=True)
class ChunkRequest:
    """Everything a backend may look at for one chunk: the chunk, its section and the whole article."""

    article: Article
    section: Section
    chunk: Chunk
    chunk_count: int


@dataclass
class ChunkResult:
    """A backend's answer for one chunk: bodies whose items are already grounded (spans set)."""

    bodies: list[BodySummary]
    usage: Usage = field(default_factory=Usage)
    warnings: list[str] = field(default_factory=list)
    cached: bool = False


class Backend(Protocol):
    """What the pipeline needs from a backend."""

    name: str
    model: str | None
    prompt: PromptTemplate | None
    cacheable: bool

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


def create_backend(name: str, settings: Settings) -> Backend:
    """Instantiate a backend by name. Built-ins are imported lazily so `--help` stays fast."""
    if name not in _REGISTRY:
        if name == "rules":
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
