"""The OpenAI-compatible backend: one chat completion per chunk, checked, grounded, re-asked when wrong.

Two kinds of retry live here and stay apart. Transport retries (429 honouring Retry-After, 5xx,
timeouts, refused connections) belong to tenacity alone; the SDK's own retries are off. Re-asks
happen when a reply is not valid JSON for the Reply schema or quotes text the article does not
contain: the reply and what was wrong with it go back to the model, a bounded number of times.

The API key is read from OPENAI_API_KEY when the client is built and is never logged or echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from string import Template
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..errors import (
    AuthError,
    ConfigError,
    OutputValidationError,
    ProviderError,
    SummarizerError,
    TruncatedOutputError,
)
from ..limits import Limiter, Permit
from ..prompt import PromptTemplate, load_prompt
from ..schema import Reply, Usage, strict_json_schema
from . import JSON_MODE_ORDER, ChunkRequest, ChunkResult
from .local_http import LocalHttp, LocalHttpError, RawReply, local_http_usable

if TYPE_CHECKING:
    import openai

    from ..ground import Grounded
    from ..settings import Settings
else:

    class _Openai:
        """The openai package, imported where first used: importing it costs a second or more of CPU,
        which the first requests to a local endpoint need not wait for (see `_SdkLoader`)."""

        def __getattr__(self, name: str) -> Any:
            import openai

            return getattr(openai, name)

    openai = _Openai()

log = logging.getLogger(__name__)

JSON_MODES = ("auto", "schema", "object", "plain")
# What `auto` tries, in order, when a server refuses the way JSON is asked for: strict json_schema;
# json_object (with the schema in the prompt, and in `response_format.schema` for servers such as
# llama.cpp's that constrain output with it); no response_format at all (schema in the prompt).
FALLBACK_CHAIN = JSON_MODE_ORDER
# Statuses a server uses to refuse an unsupported response_format: 400 (OpenAI, vLLM), 422
# (FastAPI-based servers), 404 and 500 (some llama-cpp-python and vLLM versions).
_REFUSAL_STATUSES = (400, 404, 422, 500)
_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}")
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")  # the shape of OpenAI-style keys
MAX_REPLY_BYTES = 2_000_000
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 30
ECHO_CHARS = 4000  # how much of a bad reply is sent back to the model when re-asking
SCHEMA_NAME = "cppcc_summary"
POOL_CONNECTIONS = 32  # the most connections one HTTP client holds (see OpenAIBackend._state)


class ReplyError(ValueError):
    """A reply that is not valid JSON for the Reply schema; the message is what the model is told."""


# --- Reading a reply defensively: bounded size, depth and numbers; no NaN; no duplicate keys. ---


def _too_deep(text: str) -> bool:
    """Does the JSON nest deeper than MAX_JSON_DEPTH? Nesting cannot be deeper than the number of
    opening brackets, so a reply with few of them (nearly every reply) needs no walk character by
    character (`_json_depth`), which cost more than parsing it."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    return _json_depth(text) > MAX_JSON_DEPTH


def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, found without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ReplyError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _parse_int(raw: str) -> int:
    if len(raw.lstrip("-")) > MAX_INT_DIGITS:
        raise ReplyError(f"number with {len(raw)} digits is not a plausible value")
    return int(raw)


def _parse_float(raw: str) -> float:
    if len(raw) > 64:
        raise ReplyError(f"number with {len(raw)} characters is not a plausible value")
    value = float(raw)
    if not math.isfinite(value):
        raise ReplyError(f"number {raw[:20]} is not finite")
    return value


def _reject_constant(raw: str) -> Any:
    raise ReplyError(f"{raw} is not valid JSON; use a finite number")


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def parse_reply(content: str | None) -> Reply:
    """The model's text as a Reply.

    Raises:
        ReplyError: empty, too large, too deep, not JSON, hostile numbers, duplicate keys, or not
            matching the schema; the message says which, in words a model can act on.
    """
    if not content or not content.strip():
        raise ReplyError("the reply was empty; output one JSON object")
    if len(content.encode("utf-8", "surrogatepass")) > MAX_REPLY_BYTES:
        raise ReplyError(f"the reply is larger than {MAX_REPLY_BYTES} bytes")
    text = _strip_fence(content)
    if _too_deep(text):
        raise ReplyError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_reject_constant,
        )
    except ReplyError:
        raise
    except json.JSONDecodeError as exc:
        raise ReplyError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise ReplyError(f"not valid JSON ({type(exc).__name__})") from None
    try:
        return Reply.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()[:8]
        ]
        more = f" (and {exc.error_count() - 8} more)" if exc.error_count() > 8 else ""
        summary = "; ".join(problems) + more
        raise ReplyError(f"the JSON does not match the required format: {summary}") from None


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait (Retry-After as seconds or an HTTP date, or retry-after-ms)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass
class _Counters:
    """What one chunk cost so far; becomes its Usage (a failed chunk's too)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    transport_retries: int = 0
    reasks: int = 0
    mode_fallbacks: int = 0
    json_mode: str | None = None  # how the last reply was asked for

    def usage(self) -> Usage:
        return Usage(
            requests=self.requests,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            retries=self.transport_retries + self.reasks + self.mode_fallbacks,
            transport_retries=self.transport_retries,
            reasks=self.reasks,
        )


@lru_cache(maxsize=1)
def _reply_schema() -> dict[str, Any]:
    """The strict JSON schema of a Reply, built once per process."""
    return strict_json_schema(Reply)


@lru_cache(maxsize=1)
def _schema_note() -> str:
    schema = json.dumps(_reply_schema(), ensure_ascii=False, separators=(",", ":"))
    return "\n\n输出必须是符合下面 JSON Schema 的一个 JSON 对象:\n" + schema


def _check_shape(reply: Any) -> None:
    """A 200 reply must be a chat completion with a message; anything else is a transport fault.

    Raises:
        _Malformed: a proxy's HTML page, `choices: []`, `choices: [{}]` and the like.
    """
    choices = _field(reply, "choices")
    if isinstance(reply, str | bytes) or choices is None:
        raise _Malformed(f"body starts {str(reply)[:60]!r}")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("no choices")
    if _field(choices[0], "message") is None:
        raise _Malformed("a choice without a message")


def malformed_reason(reply: Any) -> str | None:
    """Why a 200 body is not a chat completion with a message, or None when it is one."""
    try:
        _check_shape(reply)
    except _Malformed as exc:
        return str(exc)
    return None


def _field(obj: Any, name: str) -> Any:
    """An attribute of an SDK object, or the same key of the JSON it came from (a batch output line)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def message_text(content: Any) -> str | None:
    """The reply's text: a string, or the text parts of a list of content parts joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) else getattr(p, "text", None) for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return str(content)


class _Malformed(Exception):
    """A 200 reply that is not a chat completion (a proxy's HTML page, no choices, no message)."""


class _AttemptTimeout(Exception):
    """One attempt ran past its total deadline (a server that queues, or drips its answer)."""


class _RetryAfterTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def configured_base_url(settings: Settings) -> str | None:
    """The endpoint the settings point at: `base_url`, else OPENAI_BASE_URL, else None (OpenAI's own)."""
    return settings.base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or None


def client_credentials(settings: Settings) -> tuple[str, str | None]:
    """The API key and base URL for a client, read now (never stored in settings or logged).

    Raises:
        ConfigError: neither a key nor a base URL is set.
    """
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    base_url = configured_base_url(settings)
    if not key and not base_url:
        raise ConfigError("no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server that needs none")
    # Local OpenAI-compatible servers often need no key, but the SDK insists on one.
    return key or "no-key", base_url


def official_api(base_url: str | None) -> bool:
    """Is this OpenAI's own API (no base URL, or api.openai.com)? It wants max_completion_tokens."""
    return base_url is None or "api.openai.com" in base_url


def request_body(settings: Settings, messages: list[dict[str, str]], mode: str, official: bool) -> dict[str, Any]:
    """The chat-completions body for one chunk's messages in one JSON mode.

    The online path sends it through the SDK; the batch-file path writes it into a requests file, so
    both ask exactly the same question.
    """
    schema = _reply_schema()
    if mode != "schema":  # the schema travels in the prompt when the server cannot enforce it
        messages = [*messages]
        messages[0] = {**messages[0], "content": messages[0]["content"] + _schema_note()}
    # api.openai.com wants max_completion_tokens; compatible servers widely know only max_tokens.
    limit = "max_completion_tokens" if official else "max_tokens"
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature,
        limit: settings.max_output_tokens,
    }
    if mode == "schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
        }
    elif mode == "object":
        body["response_format"] = {"type": "json_object", "schema": schema}
    return body


def chunk_messages(template: PromptTemplate, request: ChunkRequest) -> list[dict[str, str]]:
    """The prompt for one chunk: the template filled with the article's header and the chunk."""
    chunk, section = request.chunk, request.section
    return template.render(
        title=request.article.title or "(无)",
        published=request.article.published or "(未知)",
        body_hint=section.body_hint or "(未知)",
        chunk_number=chunk.index + 1,
        chunk_count=request.chunk_count,
        chunk_text=_DELIMITER.sub(r"<\1 片段>", chunk.text),
    )


_USER_SLOT = "\x00user message\x00"  # stands for the chunk's user message in a pre-encoded body


class RequestTemplate:
    """What every chunk's request shares, built once per run and JSON mode: the system message, the
    schema, response_format and the limits are JSON-encoded once; per chunk only the user message
    (the article's header and the chunk) is filled in and encoded. The bytes sent are the JSON of
    `request_body` for the same messages, which the batch-file path writes."""

    def __init__(self, settings: Settings, prompt: PromptTemplate, mode: str, official: bool) -> None:
        self.settings, self.mode, self.official = settings, mode, official
        self._user = Template(prompt.user)
        system = Template(prompt.system)
        # A system part with $variables is rendered per chunk (a custom prompt may have them).
        self._system = None if system.get_identifiers() else system.substitute({})
        self._system_chars = len(self._system) if self._system is not None else 0
        self._head = self._tail = b""
        self._prompt = prompt
        if self._system is not None:
            skeleton = [{"role": "system", "content": self._system}, {"role": "user", "content": _USER_SLOT}]
            encoded = json.dumps(request_body(settings, skeleton, mode, official), ensure_ascii=False)
            head, tail = encoded.split(json.dumps(_USER_SLOT, ensure_ascii=False))
            self._head, self._tail = head.encode(), tail.encode()

    def messages(self, request: ChunkRequest) -> list[dict[str, str]]:
        """The chunk's chat messages (the same as `chunk_messages`)."""
        if self._system is None:
            return chunk_messages(self._prompt, request)
        chunk, section = request.chunk, request.section
        values = {
            "title": request.article.title or "(无)",
            "published": request.article.published or "(未知)",
            "body_hint": section.body_hint or "(未知)",
            "chunk_number": str(chunk.index + 1),
            "chunk_count": str(request.chunk_count),
            "chunk_text": _DELIMITER.sub(r"<\1 片段>", chunk.text),
        }
        try:
            user = self._user.substitute(values)
        except KeyError as exc:
            raise ConfigError(f"prompt {self._prompt.version}: variable ${exc.args[0]} is not provided") from exc
        except ValueError as exc:
            raise ConfigError(f"prompt {self._prompt.version}: malformed placeholder ({exc})") from exc
        return [{"role": "system", "content": self._system}, {"role": "user", "content": user}]

    def encode(self, messages: list[dict[str, str]]) -> bytes:
        """The request body for these messages, as JSON bytes."""
        first = messages[0] if messages else None
        if len(messages) == 2 and first is not None and first["content"] is self._system and self._system is not None:
            return self._head + json.dumps(messages[1]["content"], ensure_ascii=False).encode() + self._tail
        body = request_body(self.settings, messages, self.mode, self.official)
        return json.dumps(body, ensure_ascii=False).encode()

    def estimate(self, messages: list[dict[str, str]]) -> int:
        """Characters in the messages (about a token each for Chinese), for tpm pacing."""
        if len(messages) == 2 and messages[0]["content"] is self._system:
            return self._system_chars + len(messages[1]["content"])
        return sum(len(m["content"]) for m in messages)


def reask_messages(messages: list[dict[str, str]], content: str | None, problem: str) -> list[dict[str, str]]:
    """The conversation for a re-ask: the bad reply (shortened) and what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": (content or "")[:ECHO_CHARS]},
        {"role": "user", "content": _reask_text(problem)},
    ]


def scrub_secrets(text: str | None) -> str | None:
    """A reply with the configured key and anything shaped like a bearer token or API key removed."""
    if not text:
        return text
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return _API_KEY.sub("***", _BEARER.sub("Bearer ***", text))


def redact(text: str, limit: int = 300) -> str:
    """A server's message for an error line or record: scrubbed like a reply, then capped."""
    return (scrub_secrets(text) or "")[:limit]


@dataclass
class ReplyCheck:
    """What one chat completion said about one chunk."""

    content: str | None  # the reply's text, secrets removed
    truncated: bool  # cut off at the output limit: split the chunk rather than re-ask
    grounded: Grounded | None  # None: no valid JSON for the schema
    problem: str  # what a re-ask tells the model ("" when nothing is wrong)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def check_reply(completion: Any, request: ChunkRequest) -> ReplyCheck:
    """Read, validate and ground one chat completion (an SDK object or its JSON) for one chunk.

    A reply naming a committee the article never mentions, or quoting text the article lacks,
    comes back grounded with `failures`; the caller decides whether to re-ask.
    """
    usage = _field(completion, "usage")
    tokens = (_field(usage, "prompt_tokens") or 0, _field(usage, "completion_tokens") or 0) if usage else (0, 0)
    choices = _field(completion, "choices") or []
    choice = choices[0] if choices else None
    message = _field(choice, "message") if choice is not None else None
    # Whatever the server sends back, the key never travels further (results, cache, errors).
    content = scrub_secrets(message_text(_field(message, "content"))) if message is not None else None
    if choice is not None and _field(choice, "finish_reason") == "length":
        return ReplyCheck(content, True, None, "", *tokens)
    try:
        refusal = _field(message, "refusal") if message is not None else None
        if refusal:
            raise ReplyError(f"the model refused: {str(refusal)[:200]}")
        reply = parse_reply(content)
    except ReplyError as exc:
        return ReplyCheck(content, False, None, str(exc), *tokens)
    # Imported here: grounding is needed once a reply is back, not before the first request goes out.
    from ..ground import ground_bodies

    chunk, section = request.chunk, request.section
    # Grounding drops a committee the article does not name (and says so in `failures`).
    grounded = ground_bodies(reply.bodies, request.article, near=(chunk.start, chunk.end), hint=section.body_hint)
    return ReplyCheck(content, False, grounded, "; ".join(grounded.failures), *tokens)


def chunk_label(request: ChunkRequest) -> str:
    return f"chunk {request.chunk.index + 1}/{request.chunk_count}"


def fallback_warnings(where: str, problem: str, fallback: Grounded) -> list[str]:
    """An earlier reply parsed but the last re-ask did not: its grounded items are kept, and we say so."""
    return [f"{where}: the last re-ask was not valid JSON ({problem[:200]})", *fallback.warnings]


def invalid_error(asks: int, problem: str, content: str | None) -> OutputValidationError:
    return OutputValidationError(f"no valid JSON reply after {asks} attempts: {problem[:300]}", last_reply=content)


def truncated_error(settings: Settings, content: str | None, usage: Usage) -> TruncatedOutputError:
    return TruncatedOutputError(
        f"the reply was cut off at max_output_tokens ({settings.max_output_tokens})", last_reply=content, usage=usage
    )


class _SdkLoader:
    """Imports the openai package in a thread of its own, the first time a plain request to a local
    endpoint gets an answer only the SDK reads (an error status, a redirect, a broken connection).
    A run whose answers are all plain 200s never imports it: the import costs a second or more of
    CPU, which on a busy event loop is a second less of requests in flight."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="summarizer-import-openai", daemon=True).start()

    def _load(self) -> None:
        try:
            import openai  # noqa: F401
        except Exception:  # the SDK path imports it again, and says what is wrong
            log.debug("importing openai in the background failed", exc_info=True)
        finally:
            self.done.set()

    async def wait(self) -> None:
        """Until the package has loaded (or failed to), without blocking the event loop."""
        self.start()
        if not self.done.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.done.wait)


def early_headers(key: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The headers the SDK sends that a server may look at, for a request sent without it."""
    env = os.environ if environ is None else environ
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"AsyncOpenAI/Python {_sdk_version()}",
        "Authorization": f"Bearer {key}",
    }
    for name, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
        if env.get(variable):
            headers[name] = env[variable]
    return headers


@lru_cache(maxsize=1)
def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openai")
    except PackageNotFoundError:
        return "unknown"


def _http_module() -> Any:
    """The HTTP package the SDK is built on (httpx, or httpx2 in newer releases)."""
    import importlib

    return importlib.import_module(type(openai.DEFAULT_CONNECTION_LIMITS).__module__.split(".")[0])


class OpenAIBackend:
    """Summarise chunks with any OpenAI-compatible chat completions endpoint."""

    name = "openai"
    needs_network = True
    has_cost = True
    wants_chunks = True
    deterministic = False  # even at temperature 0, servers do not promise the same reply
    cacheable = True
    limits_itself = True
    # Bump when a change here (parsing, grounding, re-asks) would change what a reply becomes; cached
    # replies were paid for, so edits that do not change outputs keep the version.
    version = "2"

    def __init__(self, settings: Settings, limiter: Limiter | None = None, *, offline: bool = False) -> None:
        """
        Args:
            settings: model, timeouts, retry budgets, JSON mode, concurrency and rpm/tpm.
            limiter: a Limiter to share with other backends; by default one from the settings.
                It is entered around every HTTP attempt, retries and re-asks included.
            offline: only build requests and read replies (a batch file); no key is needed.

        Raises:
            ConfigError: no model name, an unknown JSON mode, or neither a key nor a base URL.
        """
        if not settings.model:
            raise ConfigError(
                "the openai backend needs a model name: pass --model (e.g. --model gpt-4o-mini) or set SUMMARIZER_MODEL"
            )
        if settings.json_mode not in JSON_MODES:
            raise ConfigError(f"json_mode {settings.json_mode!r} is not one of {', '.join(JSON_MODES)}")
        self.settings = settings
        self.model: str | None = settings.model
        self.prompt: PromptTemplate | None = load_prompt(settings.prompt_version)
        self.json_mode = "schema" if settings.json_mode == "auto" else settings.json_mode
        # The window adapts so that no request waits in a server's queue past half its deadline.
        self.limiter = limiter or Limiter.from_settings(settings, queue_deadline=settings.timeout)
        if not offline:
            self._credentials()  # fail on a missing key now, not at the first chunk
        self._clients: list[openai.AsyncOpenAI] = []
        # Requests to a local http:// endpoint go out plain; the SDK reads only unusual answers, and
        # is imported when the first of them comes (see `_SdkLoader`).
        self._plain = not offline and local_http_usable(configured_base_url(settings))
        self._loader: _SdkLoader | None = None
        if self._plain and "openai" not in sys.modules:
            self._loader = _SdkLoader()
        self._local: LocalHttp | None = None  # connections to a local http:// endpoint (see local_http)
        self._local_loop: asyncio.AbstractEventLoop | None = None
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._official = official_api(configured_base_url(settings))
        self._requests: dict[str, RequestTemplate] = {}  # by JSON mode, built on first use
        self._not_before = 0.0  # monotonic time before which no request may start (set by 429s)

    # --- client and shared state ---

    def _credentials(self) -> tuple[str, str | None]:
        return client_credentials(self.settings)

    @property
    def base_url(self) -> str | None:
        """The endpoint replies come from (part of a result's identity: two servers, two answers)."""
        return configured_base_url(self.settings)

    def _state(self) -> openai.AsyncOpenAI:
        """A client for the running event loop (rebuilt when the loop changes), kept for the run with
        its connections alive between requests. Up to POOL_CONNECTIONS in flight it is one client whose
        pool is as large as the concurrency; beyond, requests take turns among clients of that size
        (together as large as the concurrency): the HTTP pool looks at every connection it holds for
        every request and every answer, which at -j 128 cost more CPU than the request itself. (A local
        http:// endpoint is asked plain, `_post_plain`; it needs a client only for a redirect or a
        connection that could not be made.)"""
        loop = asyncio.get_running_loop()
        if not self._clients or self._loop is not loop:
            import openai

            key, base_url = self._credentials()
            concurrency = max(1, self.settings.concurrency)
            count = math.ceil(concurrency / POOL_CONNECTIONS)
            self._clients = []
            for index in range(count):
                size = concurrency // count + (1 if index < concurrency % count else 0)
                # The SDK's own limits type (httpx's or its successor's), sized to its share of the slots.
                limits = type(openai.DEFAULT_CONNECTION_LIMITS)(max_connections=size, max_keepalive_connections=size)
                http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.settings.timeout)
                self._clients.append(
                    openai.AsyncOpenAI(
                        api_key=key,
                        base_url=base_url,
                        timeout=self.settings.timeout,
                        max_retries=0,
                        http_client=http_client,
                    )
                )
            self._official = official_api(str(self._clients[0].base_url))
            self._loop = loop
            del key
        self._turn = (self._turn + 1) % len(self._clients)
        return self._clients[self._turn]

    def _local_http(self) -> LocalHttp:
        """The connections to the local endpoint, for the running event loop (a loop has its own)."""
        loop = asyncio.get_running_loop()
        if self._local is None or self._local_loop is not loop:
            key, base_url = self._credentials()
            self._local, self._local_loop = LocalHttp(base_url or "", early_headers(key)), loop
        return self._local

    def _request(self, mode: str) -> RequestTemplate:
        """The request template for a JSON mode, built once per run."""
        template = self._requests.get(mode)
        if template is None or template.official != self._official:
            assert self.prompt is not None
            template = self._requests[mode] = RequestTemplate(self.settings, self.prompt, mode, self._official)
        return template

    async def aclose(self) -> None:
        if self._local is not None:
            self._local.close()
        clients, self._clients = self._clients, []
        if clients and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*(client.close() for client in clients))

    @asynccontextmanager
    async def _slot(self, messages: list[dict[str, str]]) -> AsyncIterator[Permit]:
        # Reserve roughly what the request may use (a CJK character is about a token) for tpm pacing.
        estimate = self._request(self.json_mode).estimate(messages) + self.settings.max_output_tokens
        async with self.limiter.request(tokens=estimate) as permit:
            # A 429 anywhere pauses every request of this backend until the server's delay is over.
            while (delay := self._not_before - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            yield permit

    # --- one request, with transport retries ---

    def _request_args(self, messages: list[dict[str, str]], mode: str) -> dict[str, Any]:
        return request_body(self.settings, messages, mode, self._official)

    async def _post(self, client: openai.AsyncOpenAI | None, messages: list[dict[str, str]], mode: str) -> Any:
        """POST the pre-encoded body and return the reply's JSON (or text). Through the SDK's `client`,
        with its error mapping and transport but without re-walking the body (its parameter transform
        cost several ms a request); without one, to a local http:// endpoint, plain (`_post_plain`)."""
        payload = self._request(mode).encode(messages)
        if client is None:
            return await self._post_plain(payload)
        return await self._post_sdk(client, payload)

    async def _post_sdk(self, client: openai.AsyncOpenAI, payload: bytes) -> Any:
        reply = await client.post("/chat/completions", cast_to=object, content=payload)
        if isinstance(reply, str):  # a body not labelled JSON: read it if it is JSON anyway, as the SDK did
            with contextlib.suppress(ValueError):
                reply = json.loads(reply)
        return reply

    async def _post_plain(self, payload: bytes) -> Any:
        """POST through a plain keep-alive connection to a local endpoint. A 200 JSON answer, nearly
        every answer, is read here as the SDK reads it: the SDK's request building and response
        handling cost more CPU than the rest of a request, and on one event loop that CPU is what
        keeps many requests from being in flight. Anything else (an error status, a redirect, a
        body that is not JSON, a broken connection) is handed to the SDK as it came, once it has
        loaded, so its errors, retries and JSON-mode fallbacks are the same."""
        try:
            raw = await self._local_http().post("/chat/completions", payload)
        except LocalHttpError as exc:
            await self._sdk_loaded()
            if not exc.sent:  # nothing reached the server: ask through the SDK instead
                return await self._post_sdk(self._state(), payload)
            return await self._replay(payload, exc)
        if raw.json_body():
            with contextlib.suppress(ValueError):
                return json.loads(raw.body)
        await self._sdk_loaded()
        if 300 <= raw.status < 400:  # a redirect: the SDK sends it again and follows it
            return await self._post_sdk(self._state(), payload)
        return await self._replay(payload, raw)

    async def _sdk_loaded(self) -> None:
        """Until the openai package has loaded, when a background import of it was begun."""
        if self._loader is not None:
            await self._loader.wait()

    async def _replay(self, payload: bytes, answer: RawReply | LocalHttpError) -> Any:
        """What the SDK makes of an answer a plain request got (or of the way its connection broke), as
        if it had sent the request itself: the same errors, or the same reply."""
        http = _http_module()

        def respond(request: Any) -> Any:
            if isinstance(answer, LocalHttpError):
                raise http.ReadError(str(answer), request=request)
            headers = [(k, v) for k, v in answer.headers if k != "transfer-encoding"]
            return http.Response(answer.status, headers=headers, content=answer.body, request=request)

        key, base_url = self._credentials()
        client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url,
            timeout=self.settings.timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=http.MockTransport(respond)),
        )
        try:
            return await self._post_sdk(client, payload)
        finally:
            await client.close()

    def cache_modes(self) -> list[str | None]:
        """The JSON modes whose cached replies this run may reuse: its own, and in `auto` the ones it
        would fall back to (a reply asked in a looser mode is as good as one it would ask for)."""
        if self.settings.json_mode != "auto":
            return [self.json_mode]
        return list(FALLBACK_CHAIN[FALLBACK_CHAIN.index(self.json_mode) :])

    def _fall_back(self, failed_mode: str) -> bool:
        """Move the whole run to the next JSON mode after a server refused `failed_mode`.

        Concurrent requests refused in the same mode move it once; each then re-sends in the new one.
        Returns False when there is nowhere left to go (or the user fixed the mode).
        """
        if self.settings.json_mode != "auto":
            return False
        if self.json_mode != failed_mode:
            return True  # another request already moved the run on
        position = FALLBACK_CHAIN.index(failed_mode)
        if position + 1 >= len(FALLBACK_CHAIN):
            return False
        self.json_mode = FALLBACK_CHAIN[position + 1]
        log.warning("the endpoint refused response_format %r; using %r from now on", failed_mode, self.json_mode)
        return True

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, openai.RateLimitError):
            delay = retry_after_seconds(exc.response.headers)
            if delay is not None:
                return delay
        backoff = wait_random_exponential(multiplier=self.settings.backoff_initial, max=self.settings.backoff_max)
        seconds = float(backoff(state))
        if isinstance(exc, openai.RateLimitError):
            self._not_before = max(self._not_before, time.monotonic() + seconds)
        return seconds

    async def _send(self, messages: list[dict[str, str]], counters: _Counters, attempt: int) -> Any:
        """One HTTP attempt, after waiting for a slot and for any 429 pause (re-sent at once in the
        next JSON mode when the server refuses this one)."""
        async with self._slot(messages) as permit:
            # Built outside the attempt's deadline: the first one imports the SDK (a second or more).
            client = None if self._plain else self._state()
            if attempt > 1:
                counters.transport_retries += 1
                log.debug("request attempt %d", attempt)
            while True:
                mode = self.json_mode
                counters.requests += 1
                try:
                    # A total deadline for the attempt: a server that drips its answer slowly must
                    # not outlast it (the client's own timeout counts per read). asyncio.timeout,
                    # unlike wait_for, runs the request in this task instead of a new one.
                    async with asyncio.timeout(self.settings.timeout):
                        reply = await self._post(client, messages, mode)
                except TimeoutError:
                    permit.timeout()
                    raise _AttemptTimeout() from None
                except openai.APITimeoutError:
                    permit.timeout()
                    raise
                except openai.RateLimitError as exc:
                    permit.answer()
                    delay = retry_after_seconds(exc.response.headers)
                    if delay is not None and delay > self.settings.retry_after_max:
                        raise _RetryAfterTooLong(delay) from None
                    if delay is not None:
                        self._not_before = max(self._not_before, time.monotonic() + delay)
                    raise
                except openai.APIStatusError as exc:
                    permit.answer()
                    refused = exc.status_code in _REFUSAL_STATUSES and _mentions_response_format(exc)
                    if refused and self._fall_back(mode):
                        counters.mode_fallbacks += 1
                        continue
                    raise
                permit.answer()
                _check_shape(reply)
                counters.json_mode = mode
                usage = _field(reply, "usage")
                total = _field(usage, "total_tokens") if usage is not None else None
                if isinstance(total, int):
                    permit.settle(total)
                return reply

    async def _send_with_retries(self, messages: list[dict[str, str]], counters: _Counters) -> Any:
        """One request, retried by tenacity on transient failures.

        The first attempt runs before tenacity is set up: nearly every request succeeds at once, and
        tenacity's bookkeeping cost about a tenth of a plain request's CPU. A first attempt that fails
        transiently is handed to tenacity as its own attempt 1 (raised again inside it), so the
        waits, the attempt count and the error finally raised are tenacity's, as before.
        """
        try:
            return await self._send(messages, counters, 1)
        except Exception as exc:
            if not _transient(exc):
                raise
            first_failure = exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.settings.transport_attempts)),
            wait=self._wait,
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first_failure
                return await self._send(messages, counters, number)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _complete(self, messages: list[dict[str, str]], counters: _Counters) -> Any:
        """One chat completion; transient failures retried by tenacity, the rest mapped to our errors."""
        attempts = max(1, self.settings.transport_attempts)
        try:
            return await self._send_with_retries(messages, counters)
        except _RetryAfterTooLong as exc:
            raise ProviderError(
                f"rate limited: the server asks to wait {exc.seconds:.0f} s, more than "
                f"retry_after_max ({self.settings.retry_after_max:g} s); try again later"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AuthError(
                f"the endpoint refused the credentials (HTTP {exc.status_code}); "
                f"check OPENAI_API_KEY and OPENAI_BASE_URL"
            ) from None
        except openai.NotFoundError:
            raise ProviderError(
                f"HTTP 404: model {self.model!r} or the endpoint was not found; check --model and the base URL"
            ) from None
        except _Malformed as exc:
            raise ProviderError(
                f"the model endpoint sent a reply that is not a chat completion ({exc}; {attempts} attempts)"
            ) from None
        except (openai.APITimeoutError, _AttemptTimeout):
            raise ProviderError(
                f"the model endpoint did not answer within {self.settings.timeout:g} s "
                f"({attempts} attempts); raise --timeout or try later"
            ) from None
        except openai.APIConnectionError:
            raise ProviderError(
                f"cannot connect to the model endpoint ({attempts} attempts); check the base URL and the network"
            ) from None
        except openai.APIStatusError as exc:
            message = _server_message(exc)
            first = message.splitlines()[0] if message else ""
            error = ProviderError(f"the model endpoint answered HTTP {exc.status_code}: {self._redact(first)}")
            error.detail = self._redact(message, limit=4000)
            raise error from None
        except openai.OpenAIError as exc:
            raise ProviderError(f"model request failed: {self._redact(str(exc))}") from None

    def _redact(self, text: str, limit: int = 300) -> str:
        return redact(text, limit)

    # --- one chunk, with re-asks ---

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        """Summarise one chunk; a failure carries how many requests it cost (`attempts`)."""
        counters = _Counters()
        try:
            return await self._extract(request, counters)
        except SummarizerError as exc:
            if exc.attempts is None:
                exc.attempts = counters.requests
            if exc.usage is None:
                exc.usage = counters.usage()
            raise
        finally:
            request.ledger.append(counters.usage())

    async def _extract(self, request: ChunkRequest, counters: _Counters) -> ChunkResult:
        """Ask the model about one chunk; re-ask on invalid or ungrounded replies.

        Raises:
            TruncatedOutputError: the reply hit the output token limit (the pipeline splits the chunk).
            OutputValidationError: no reply became valid JSON for the schema within the re-asks.
            AuthError, ProviderError: the endpoint failed and transport retries did not help.
        """
        where = chunk_label(request)
        messages = self._request(self.json_mode).messages(request)
        fallback: Grounded | None = None
        problem, content = "", None
        asks = max(0, self.settings.reask_attempts) + 1
        for ask in range(asks):
            if ask:
                counters.reasks += 1
            completion = await self._complete(messages, counters)
            checked = check_reply(completion, request)
            counters.prompt_tokens += checked.prompt_tokens
            counters.completion_tokens += checked.completion_tokens
            content, problem = checked.content, checked.problem
            if checked.truncated:
                raise truncated_error(self.settings, content, counters.usage())
            if checked.grounded is None:
                log.info("%s: invalid reply (attempt %d/%d): %s", where, ask + 1, asks, problem)
            else:
                if not checked.grounded.failures or ask == asks - 1:
                    grounded = checked.grounded
                    return ChunkResult(
                        grounded.bodies, counters.usage(), grounded.warnings, json_mode=counters.json_mode
                    )
                fallback = checked.grounded
                log.info("%s: ungrounded items (attempt %d/%d): %s", where, ask + 1, asks, problem)
            messages = reask_messages(messages, content, problem)
        if fallback is not None:
            return ChunkResult(
                fallback.bodies,
                counters.usage(),
                fallback_warnings(where, problem, fallback),
                json_mode=counters.json_mode,
            )
        raise invalid_error(asks, problem, content)


def _transient(exc: BaseException) -> bool:
    """Is this failure worth the same request again (tenacity's retry condition)?"""
    if isinstance(exc, _Malformed | _AttemptTimeout):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # includes timeouts


# An article must not close the data block it sits in; the added space folds away in grounding.
_DELIMITER = re.compile(r"<(/?)\s*片段\s*>")


def _reask_text(problem: str) -> str:
    return (
        "上面的输出有问题:" + problem[:1500] + "\n请修正后重新输出完整的 JSON 对象,"
        "evidence 必须逐字复制自片段原文;找不到原文依据的内容请删除。只输出 JSON。"
    )


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(getattr(exc, "message", "")) or type(exc).__name__


def _mentions_response_format(exc: Any) -> bool:
    return mentions_response_format(_server_message(exc), getattr(exc, "body", None))


def mentions_response_format(message: str, body: Any) -> bool:
    """Does a server's error say it cannot do the response_format asked for?"""
    text = (message + " " + json.dumps(body, default=str)).lower()
    words = ("response_format", "json_schema", "response format", "structured output")
    return any(word in text for word in words)


def refused_format(status: int, message: str, body: Any) -> bool:
    """An error a JSON-mode fallback answers: a refusal status that names the response format."""
    return status in _REFUSAL_STATUSES and mentions_response_format(message, body)
