"""The data model: what the tool writes, what the gold files hold, and what a model is asked to return.

Outputs and gold labels load through the same classes, so a prediction file and a gold file are
interchangeable for the scorer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

Level = Literal["national", "provincial", "municipal", "county"]
LEVELS: tuple[str, ...] = ("national", "provincial", "municipal", "county")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Initiative(_Model):
    """A concrete programme, mechanism, platform, campaign or document the body set up or ran."""

    name: str = Field(min_length=1)
    evidence: str = Field(min_length=1)
    span: tuple[int, int] | None = None


class Metric(_Model):
    """One quantity of the body's work, as printed in the article."""

    name: str = Field(min_length=1)
    value: int | float
    unit: str
    approx: bool = False
    evidence: str = Field(min_length=1)
    span: tuple[int, int] | None = None
    optional: bool = False  # gold only: neither required for recall nor a false positive

    @field_validator("value")
    @classmethod
    def _finite(cls, value: int | float) -> int | float:
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise ValueError("value must be a finite number")
        return value


class BodySummary(_Model):
    """What one committee did in one year, according to one article."""

    body: str = Field(min_length=1)
    level: Level
    year: int | None = None
    summary: str = ""
    key_initiatives: list[Initiative] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)


class Usage(_Model):
    """Model traffic of one run; counts every attempt, retries included.

    `retries` is every request beyond the first per chunk: `transport_retries` (timeouts, 429, 5xx,
    malformed replies, sent again unchanged), `reasks` (a reply that was not valid or not grounded,
    sent back to the model) and re-sends in another JSON mode after a server refused one.
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    transport_retries: int = 0
    reasks: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            retries=self.retries + other.retries,
            transport_retries=self.transport_retries + other.transport_retries,
            reasks=self.reasks + other.reasks,
        )


class Meta(_Model):
    """How a summary was made: enough to reproduce it and to judge its cost."""

    backend: str
    model: str | None = None
    prompt_version: str | None = None
    schema_version: int = SCHEMA_VERSION
    chunks: int = 0
    usage: Usage = Field(default_factory=Usage)
    cache_hits: int = 0
    warnings: list[str] = Field(default_factory=list)
    input_sha256: str | None = None
    settings_key: str | None = None
    json_mode: str | None = None  # how replies were asked for: schema, object or plain (model path)


class ArticleSummary(_Model):
    """The tool's answer for one article (and the shape of a gold label file)."""

    article_id: str
    source_path: str | None = None
    title: str | None = None
    published: str | None = None
    source: str | None = None
    url: str | None = None
    bodies: list[BodySummary] = Field(default_factory=list)
    meta: Meta | None = None


# --- What a model is asked to return: the same field names, no spans, no gold-only flags. ---


class ReplyInitiative(_Model):
    name: str
    evidence: str


class ReplyMetric(_Model):
    name: str
    value: float
    unit: str
    approx: bool
    evidence: str


class ReplyBody(_Model):
    body: str
    level: Level
    year: int | None
    summary: str
    key_initiatives: list[ReplyInitiative]
    metrics: list[ReplyMetric]


class Reply(_Model):
    bodies: list[ReplyBody]


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema for `response_format={"type": "json_schema", strict: true}`.

    Strict mode wants every property required and no extra properties at every level.
    """
    schema = model.model_json_schema()

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("title", None)
            node.pop("default", None)
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema
