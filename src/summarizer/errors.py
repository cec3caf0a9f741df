"""One exception tree for the whole package; cli.py alone turns these into exit codes."""

from __future__ import annotations

from typing import Any


class SummarizerError(Exception):
    """Base of every error the tool raises on purpose. The message is one line a user can act on."""

    exit_code = 1
    attempts: int | None = None  # requests spent before giving up, when a backend knows
    usage: Any = None  # a schema.Usage for what the failed work cost (paid for even so)
    detail: str | None = None  # the whole message a server sent (capped, secrets removed)


class ConfigError(SummarizerError):
    """A setting is missing or invalid (bad flag value, unknown backend, no model name)."""

    exit_code = 2


class InputError(SummarizerError):
    """An input file cannot be read or is not what it should be (an article that is empty, binary,
    too large or unreadable; a results file that is not one; an output that cannot be written)."""

    exit_code = 2


class ArticleTimeoutError(SummarizerError):
    """An offline backend ran past its time on one article; the batch goes on without it."""


class ProviderError(SummarizerError):
    """The model endpoint failed in a way retries did not fix (HTTP error, timeout, refused)."""


class AuthError(ProviderError):
    """The endpoint refused the credentials; retrying cannot help, so a batch stops."""


class OutputValidationError(SummarizerError):
    """The model's replies never became valid, grounded JSON within the allowed re-asks."""

    def __init__(self, message: str, *, last_reply: str | None = None, usage: Any = None) -> None:
        super().__init__(message)
        self.last_reply = last_reply
        self.usage = usage  # a schema.Usage for the attempts spent, when the backend counted them


class TruncatedOutputError(OutputValidationError):
    """The model stopped at its token limit and the chunk could not be split any further."""


class WriteError(SummarizerError):
    """A results or errors file could not be written (disk full, I/O error); what was written is kept."""


class CacheError(SummarizerError):
    """The cache database cannot be opened or written."""


class EvalDataError(InputError):
    """A results, prediction or gold file is malformed; the message names the file (and line) and the field."""
