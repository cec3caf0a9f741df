"""The identity of a result: one key for "is this article done?" (resume), "may this reply be reused?"
(the cache) and what each result records in `meta.settings_key`.

Everything that can change what a backend returns for the same input goes in: the backend, its
version, the model, the endpoint, the prompt, the schema, the JSON mode, and the settings that shape
requests (chunking; for model backends temperature and the output limit). Nothing else does: cost
tables, concurrency, timeouts or the cache folder never change a result, so they never redo one.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Protocol

from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from .prompt import PromptTemplate
    from .settings import Settings


class Identified(Protocol):
    """The parts of a backend that decide its results (every `backends.Backend` has them)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def prompt(self) -> PromptTemplate | None: ...
    @property
    def needs_network(self) -> bool: ...
    @property
    def wants_chunks(self) -> bool: ...


def result_key(backend: Identified, settings: Settings, json_mode: str | None = None) -> str:
    """A 16-hex-digit hash of everything but the input that decides a result.

    Args:
        json_mode: the JSON mode the reply was (or will be) asked in; by default the configured one.
    """
    asks_a_model = backend.needs_network
    parts = {
        "backend": backend.name,
        "version": backend.version,
        "schema": SCHEMA_VERSION,
        "model": backend.model,
        "base_url": backend.base_url.rstrip("/") if backend.base_url else None,  # …/v1 and …/v1/ are one endpoint
        "prompt": backend.prompt.sha256 if backend.prompt else None,
        "json_mode": (json_mode or settings.json_mode) if asks_a_model else None,
        "temperature": settings.temperature if asks_a_model else None,
        "max_output_tokens": settings.max_output_tokens if asks_a_model else None,
        "chunk_tokens": settings.chunk_tokens if backend.wants_chunks else None,
        "chunk_overlap": settings.chunk_overlap if backend.wants_chunks else None,
    }
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chunk_key(identity: str, context: str) -> str:
    """The cache key of one chunk's result: the result's identity and the text the backend saw."""
    return hashlib.sha256(f"{identity}\n{context}".encode()).hexdigest()
