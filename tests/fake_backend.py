"""A test-only backend: reads `<n>个/项/次/件/人` counts as metrics, with optional delay and faults.

Loaded in-process through `register_backend`, and in subprocesses through
SUMMARIZER_BACKEND_PLUGIN=fake=fake_backend:FakeBackend (with tests/ on PYTHONPATH).
Behaviour is set by environment variables so a CLI subprocess can be steered too:
  FAKE_DELAY      seconds each chunk takes (asyncio sleep)
  FAKE_FAIL_MARK  articles containing this text fail with an invalid reply
  FAKE_AUTH_MARK  articles containing this text fail with an authentication error
"""

from __future__ import annotations

import asyncio
import os
import re

from summarizer.backends import ChunkRequest, ChunkResult
from summarizer.errors import AuthError, OutputValidationError
from summarizer.ground import ground_bodies
from summarizer.schema import ReplyBody, ReplyMetric, Usage
from summarizer.settings import Settings

_COUNT = re.compile(r"(\d{1,6})(个|项|次|件|人|场)")


class FakeBackend:
    name = "fake"
    model = "fake-model"
    prompt = None
    base_url = None
    needs_network = True  # it stands in for a model endpoint
    has_cost = True
    wants_chunks = True
    deterministic = True
    cacheable = True
    limits_itself = False
    version = "1"
    in_flight = 0
    peak = 0
    calls = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.delay = float(os.environ.get("FAKE_DELAY", "0"))

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        cls = type(self)
        cls.in_flight += 1
        cls.calls += 1
        cls.peak = max(cls.peak, cls.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            text = request.article.text
            auth_mark = os.environ.get("FAKE_AUTH_MARK")
            if auth_mark and auth_mark in text:
                raise AuthError("the endpoint refused the API key (401); check OPENAI_API_KEY")
            fail_mark = os.environ.get("FAKE_FAIL_MARK")
            if fail_mark and fail_mark in text:
                raise OutputValidationError("reply is not valid JSON after 3 attempts", last_reply="{not json")
            chunk = request.chunk
            hint = request.section.body_hint
            bodies = []
            if hint:
                metrics = [
                    ReplyMetric(
                        name="数量", value=float(m.group(1)), unit=m.group(2), approx=False, evidence=m.group(0)
                    )
                    for m in _COUNT.finditer(text, chunk.start, chunk.end)
                ][:5]
                bodies.append(
                    ReplyBody(
                        body=hint, level="municipal", year=None, summary="测试摘要", key_initiatives=[], metrics=metrics
                    )
                )
            grounded = ground_bodies(bodies, request.article, (chunk.start, chunk.end), hint)
            usage = Usage(requests=1, prompt_tokens=chunk.tokens + 100, completion_tokens=50)
            return ChunkResult(bodies=grounded.bodies, usage=usage, warnings=grounded.warnings)
        finally:
            cls.in_flight -= 1

    def cache_modes(self) -> list[str | None]:
        return [None]

    async def aclose(self) -> None:
        pass


class CpuFakeBackend(FakeBackend):
    """The same, declared CPU-bound, so a large batch runs it in worker processes."""

    needs_network = False
