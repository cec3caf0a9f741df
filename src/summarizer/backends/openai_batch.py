"""A provider's Batch API through the `openai` client: upload a requests file and create a batch;
look a batch up and download what it answered.

Only these calls and the OpenAI backend import `openai`. Every text a server sends back is scrubbed
of the API key before it is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..errors import AuthError, ConfigError, ProviderError
from .openai_backend import client_credentials, redact, scrub_secrets

if TYPE_CHECKING:
    import openai

    from ..settings import Settings

ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
# A batch in one of these states has nothing more to give; the others are still working.
FINISHED = ("completed", "expired", "cancelled", "failed")

T = TypeVar("T")


@dataclass
class SubmittedBatch:
    """A batch the provider accepted."""

    batch_id: str
    input_file_id: str
    status: str


@dataclass
class BatchOutput:
    """What a batch has produced so far; `path` holds its output (and error) lines once finished."""

    batch_id: str
    status: str
    completed: int = 0
    failed: int = 0
    total: int = 0
    path: Path | None = None
    message: str | None = None  # why a batch failed as a whole, when it did


@contextmanager
def _client(settings: Settings) -> Iterator[openai.OpenAI]:
    import openai

    key, base_url = client_credentials(settings)
    # A handful of calls: the SDK's own retries are the only ones here.
    client = openai.OpenAI(api_key=key, base_url=base_url, timeout=max(settings.timeout, 60.0), max_retries=2)
    del key
    try:
        yield client
    finally:
        client.close()


def _call(what: str, function: Callable[[], T]) -> T:
    """One provider call, its failures mapped to our errors (server text scrubbed and capped)."""
    import openai

    try:
        return function()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise AuthError(
            f"{what}: the endpoint refused the credentials (HTTP {exc.status_code}); check OPENAI_API_KEY"
        ) from None
    except openai.APIStatusError as exc:
        raise ProviderError(
            f"{what}: the endpoint answered HTTP {exc.status_code}: {redact(str(exc.message))}"
        ) from None
    except openai.APIConnectionError:
        raise ProviderError(f"{what}: cannot connect to the endpoint; check OPENAI_BASE_URL and the network") from None
    except openai.OpenAIError as exc:
        raise ProviderError(f"{what}: {redact(str(exc))}") from None


def submit_requests(path: Path, settings: Settings) -> SubmittedBatch:
    """Upload a requests file (purpose "batch") and create a chat-completions batch from it.

    Raises:
        ConfigError: the file cannot be read, or no key/base URL is set.
        AuthError, ProviderError: the endpoint refused or failed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the requests file ({exc.strerror or exc})") from exc
    with _client(settings) as client:
        uploaded = _call("upload", lambda: client.files.create(file=(path.name, data), purpose="batch"))
        batch = _call(
            "create batch",
            lambda: client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW
            ),
        )
    return SubmittedBatch(batch.id, uploaded.id, str(batch.status))


def fetch_output(batch_id: str, destination: Path, settings: Settings) -> BatchOutput:
    """Look a batch up; once it has finished, write its output and error lines to `destination`.

    The provider keeps failed requests in a separate error file; both go into one file here, as
    `collect` reads them alike. `path` stays None while the batch is still running.

    Raises:
        AuthError, ProviderError: the endpoint refused or failed.
    """
    with _client(settings) as client:
        batch = _call("look up batch", lambda: client.batches.retrieve(batch_id))
        counts = batch.request_counts
        output = BatchOutput(
            batch_id,
            str(batch.status),
            completed=getattr(counts, "completed", 0) or 0,
            failed=getattr(counts, "failed", 0) or 0,
            total=getattr(counts, "total", 0) or 0,
        )
        if batch.status == "failed":
            errors = getattr(batch.errors, "data", None) or []
            output.message = redact("; ".join(str(getattr(e, "message", e)) for e in errors[:3]) or "no reason given")
            return output
        if batch.status not in FINISHED:
            return output
        parts = [_download(client, file_id) for file_id in (batch.output_file_id, batch.error_file_id) if file_id]
    text = "".join(part if part.endswith("\n") or not part else part + "\n" for part in parts)
    # Whatever the server sent back, the key never reaches the disk.
    destination.write_text(scrub_secrets(text) or "", encoding="utf-8")
    output.path = destination
    return output


def _download(client: openai.OpenAI, file_id: str) -> str:
    content: Any = _call("download", lambda: client.files.content(file_id))
    return bytes(content.read()).decode("utf-8", "replace")
