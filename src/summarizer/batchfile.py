"""Large jobs through a provider's Batch API (or `vllm run-batch`): requests out as a file, answers back.

`write_requests` plans every article as the online path would and writes one chat-completions
request per chunk to `<results>.requests.jsonl`, with a state file beside it
(`<results>.batch-state.json`) that remembers which request belongs to which chunk.
`collect_replies` reads the provider's output file, checks, grounds and merges every answered
article with the same functions the online path uses, appends it to the results file with the
same writer (resume, no duplicates), and writes the requests still needed (re-asks of replies that
failed the checks, retries of errored lines) into the next round's file, `<results>.requests-2.jsonl`.

A request's `custom_id` is `<article id>#<chunk path>#<key>`, the key a hash of the request body and
the article's input hash: a reply is used only for the exact request the state is waiting for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .article import Article, load_article
from .backends import JSON_MODE_ORDER, ChunkRequest, ChunkResult
from .backends.openai_backend import (
    ECHO_CHARS,
    OpenAIBackend,
    check_reply,
    chunk_label,
    chunk_messages,
    configured_base_url,
    fallback_warnings,
    invalid_error,
    malformed_reason,
    official_api,
    reask_messages,
    redact,
    refused_format,
    request_body,
    truncated_error,
)
from .backends.openai_batch import BatchOutput, SubmittedBatch, fetch_output, submit_requests
from .batch.inputs import Candidate, discover
from .batch.pool import done_outcome, file_sha256
from .batch.report import BatchReport, Outcome, error_record
from .batch.writer import ResultsWriter, check_paths, errors_path_for, open_results, refuse_foreign_output
from .cache import Cache
from .chunk import Chunk, split_chunk
from .errors import ConfigError, ProviderError, SummarizerError
from .ground import Grounded
from .identity import result_key
from .pipeline import (
    assemble_summary,
    lookup_chunk,
    open_cache,
    placed_error,
    plan_chunks,
    store_chunk,
    unsplittable_error,
)
from .prices import batch_prices, estimate_cost, load_prices
from .progress import NullProgress
from .results import json_lines, write_atomically
from .schema import BodySummary, Usage
from .sections import Section
from .settings import Settings

REQUEST_URL = "/v1/chat/completions"
STATE_FORMAT = "summarizer-batch-state"
# What a batch's requests depend on besides the article: kept in the state so `collect` reads the
# replies with the settings they were asked with, whatever flags it is given.
REQUEST_SETTINGS = (
    "model",
    "base_url",
    "prompt_version",
    "temperature",
    "max_output_tokens",
    "chunk_tokens",
    "chunk_overlap",
    "json_mode",
    "reask_attempts",
    "transport_attempts",
    "max_file_bytes",
)


# --- The state file -----------------------------------------------------------------------------


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settled(_State):
    """A chunk's final result (a ChunkResult, as JSON)."""

    bodies: list[BodySummary] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    json_mode: str | None = None

    def result(self) -> ChunkResult:
        return ChunkResult(list(self.bodies), self.usage, list(self.warnings), self.cached, self.json_mode)


class Piece(_State):
    """One chunk's progress across rounds; a chunk split after a truncated reply becomes several."""

    path: list[int]  # the chunk's index, then which half at each split
    mode: str  # the JSON mode it is asked in
    custom_id: str | None = None  # the request awaiting an answer; None once settled
    exchanges: list[tuple[str, str]] = Field(default_factory=list)  # (failed reply, problem) per re-ask
    errors: int = 0  # error lines for the awaited request, in a row
    seen: list[str] = Field(default_factory=list)  # digests of output lines already read for it
    usage: Usage = Field(default_factory=Usage)
    fallback: Settled | None = None  # an earlier reply that parsed, kept if the last re-ask does not
    settled: Settled | None = None


class ArticleState(_State):
    article_id: str
    rel: str  # relative to the input folder
    input_sha256: str
    chunks: int
    pieces: list[Piece]


class BatchState(_State):
    """Everything `collect` needs to match replies to chunks and finish articles."""

    format: str = STATE_FORMAT
    version: int = 1
    round: int = 1
    requests: str  # the file name of this round's requests, next to the results
    input_dir: str  # as given (source paths read as online), and resolved for a collect run elsewhere
    input_root: str
    glob: str
    settings: dict[str, Any]
    batch_id: str | None = None
    articles: list[ArticleState] = Field(default_factory=list)


def _stem(output: Path) -> str:
    return output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name


def state_path_for(output: Path) -> Path:
    """results.jsonl -> results.batch-state.json"""
    return output.with_name(_stem(output) + ".batch-state.json")


def requests_path_for(output: Path, round_number: int = 1) -> Path:
    """results.jsonl -> results.requests.jsonl (round 1), results.requests-2.jsonl (round 2), ..."""
    suffix = "" if round_number == 1 else f"-{round_number}"
    return output.with_name(f"{_stem(output)}.requests{suffix}.jsonl")


def _first_line(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline(1_000_000).strip()


def _ours(path: Path, kind: str) -> bool:
    """Is an existing file one this module wrote (empty, a requests file, or a state file)?"""
    try:
        first = _first_line(path)
        if not first:
            return True
        record = json.loads(first)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    if kind == "requests":
        return {"custom_id", "method", "url", "body"} <= set(record)
    if kind == "output":
        return {"custom_id", "response"} <= set(record)
    return record.get("format") == STATE_FORMAT


def _refuse_foreign(path: Path, kind: str, force: bool) -> None:
    if path.exists() and not force and not _ours(path, kind):
        raise ConfigError(
            f"{path}: exists and is not a {kind} file of this tool; choose another -o or pass --force to replace it"
        )


def _replace_atomically(path: Path, lines: Iterator[str]) -> int:
    """Write lines to `path` atomically and synced; returns how many."""
    count = 0

    def write(temp: Path) -> None:
        nonlocal count
        with temp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                count += 1

    write_atomically(path, write, durable=True)
    return count


def _save_state(path: Path, state: BatchState) -> None:
    _replace_atomically(path, iter([state.model_dump_json()]))


def load_state(output: Path) -> BatchState:
    """The state `batch --via batch-file` left next to `output`.

    Raises:
        ConfigError: there is none, or it is not readable as one.
    """
    path = state_path_for(output)
    if not path.is_file():
        raise ConfigError(
            f"{path}: not found; write the requests first with `summarizer batch DIR --via batch-file -o {output}`"
        )
    try:
        return BatchState.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a batch state file of this tool ({str(exc).splitlines()[0]})") from exc


# --- Reports ------------------------------------------------------------------------------------


@dataclass
class BatchFileReport:
    """What one `write_requests` or `collect_replies` did, and where the next requests are."""

    output: Path
    errors_path: Path
    state_path: Path
    requests_path: Path | None = None  # the requests still to be answered (None: nothing pending)
    requests: int = 0  # lines in that file
    done: int = 0
    cached: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0  # articles waiting for answers
    unmatched: int = 0  # output lines for no awaited request (already collected, or stale)
    unreadable: int = 0  # output lines that are not JSON with a custom_id
    stale: int = 0  # articles whose file changed since their requests were written
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    model: str | None = None
    batch_id: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0

    def written_line(self) -> str:
        """The one-line summary of writing the requests."""
        where = f"{self.requests} requests in {self.requests_path}" if self.requests_path else "no requests needed"
        skipped = f", {self.skipped} already in results" if self.skipped else ""
        return f"{where} for {self.pending} articles; {self.done} done from the cache{skipped}, {self.failed} failed"

    def line(self) -> str:
        """The one-line summary of a collect."""
        extra = [f"{self.skipped} already in results"] if self.skipped else []
        extra += [f"{self.unmatched} output lines matched no awaited request"] if self.unmatched else []
        extra += [f"{self.unreadable} output lines unreadable"] if self.unreadable else []
        extra += [f"{self.stale} articles changed since their requests, asked again"] if self.stale else []
        cost = "unknown cost" if self.cost_usd is None else f"${self.cost_usd:.4f} at batch prices"
        head = f"{self.done} done ({self.cached} from cache), {self.pending} pending, {self.failed} failed"
        where = f"next requests: {self.requests_path} ({self.requests} lines)" if self.requests_path else "nothing left"
        tail = f" [{'; '.join(extra)}]" if extra else ""
        return f"{head}; {self.usage.requests} replies read, {cost}; {where}{tail}"


def _new_batch_report(report: BatchFileReport, model: str | None) -> BatchReport:
    return BatchReport(Path("."), report.output, report.errors_path, "openai", model)


# --- Planning and asking ------------------------------------------------------------------------


@dataclass
class _Loaded:
    """An article read again, with the chunks its requests were built from."""

    article: Article
    sections: dict[int, Section]
    chunks: list[Chunk]
    model: str | None

    def locate(self, path: list[int]) -> tuple[Section, Chunk]:
        """The chunk a piece stands for (halves re-derived: splitting is deterministic)."""
        chunk = self.chunks[path[0]]
        section = self.sections[chunk.section_index]
        for half in path[1:]:
            chunk = split_chunk(self.article, chunk, section, self.model)[half]
        return section, chunk

    def request(self, path: list[int]) -> ChunkRequest:
        section, chunk = self.locate(path)
        return ChunkRequest(self.article, section, chunk, len(self.chunks))


class _Asker:
    """Builds request lines and reads replies for one batch's settings (one backend, one cache)."""

    def __init__(self, settings: Settings, cache: Cache | None) -> None:
        self.settings = settings
        self.backend = OpenAIBackend(settings, offline=True)
        self.cache = cache
        self.official = official_api(configured_base_url(settings))
        self.asks = max(0, settings.reask_attempts) + 1

    def load(self, root: Path, article_id: str, rel: str) -> _Loaded:
        article = load_article(root / rel, article_id=article_id, max_bytes=self.settings.max_file_bytes)
        sections, chunks = plan_chunks(article, self.backend, self.settings)
        return _Loaded(article, sections, chunks, self.backend.model)

    def body(self, loaded: _Loaded, piece: Piece) -> dict[str, Any]:
        """The exact chat-completions body the online path would send for this piece now."""
        assert self.backend.prompt is not None
        messages = chunk_messages(self.backend.prompt, loaded.request(piece.path))
        for reply, problem in piece.exchanges:
            messages = reask_messages(messages, reply, problem)
        return request_body(self.settings, messages, piece.mode, self.official)

    def line(self, loaded: _Loaded, piece: Piece) -> dict[str, Any]:
        body = self.body(loaded, piece)
        blob = json.dumps(body, sort_keys=True, ensure_ascii=False) + loaded.article.sha256
        key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        custom_id = f"{loaded.article.article_id}#{'.'.join(map(str, piece.path))}#{key}"
        if custom_id != piece.custom_id:
            piece.custom_id, piece.seen, piece.errors = custom_id, [], 0
        return {"custom_id": piece.custom_id, "method": "POST", "url": REQUEST_URL, "body": body}

    def new_piece(self, loaded: _Loaded, path: list[int]) -> Piece:
        """A chunk to ask about, settled at once when the cache already holds its result."""
        piece = Piece(path=path, mode=self.backend.json_mode)
        section, chunk = loaded.locate(path)
        hit = lookup_chunk(self.backend, self.settings, loaded.article, section, chunk, self.cache)
        if hit is not None:
            piece.settled = Settled(bodies=hit.bodies, warnings=hit.warnings, cached=True)
        else:
            self.line(loaded, piece)  # sets the custom_id
        return piece

    def plan(self, loaded: _Loaded) -> list[Piece]:
        return [self.new_piece(loaded, [chunk.index]) for chunk in loaded.chunks]

    def settle(self, loaded: _Loaded, piece: Piece, settled: Settled) -> None:
        piece.settled, piece.custom_id, piece.fallback = settled, None, None
        section, chunk = loaded.locate(piece.path)
        store_chunk(self.backend, self.settings, loaded.article, section, chunk, self.cache, settled.result())

    def answer(self, loaded: _Loaded, piece: Piece, record: dict[str, Any]) -> list[Piece]:
        """Apply one output line to the piece awaiting it; returns what the piece becomes.

        Raises:
            SummarizerError: the chunk cannot be completed (no valid reply within the re-asks, a
                reply truncated past splitting, errors past the attempts); the article fails.
        """
        request = loaded.request(piece.path)
        raw = record.get("response")
        response: dict[str, Any] = raw if isinstance(raw, dict) else {}
        status, body, error = response.get("status_code"), response.get("body"), record.get("error")
        piece.usage = piece.usage.add(Usage(requests=1))
        if error or status != 200 or malformed_reason(body) is not None:
            try:
                return self._errored(loaded, piece, status, body, error)
            except ProviderError as exc:
                raise placed_error(request.article, request.chunk, request.chunk_count, exc) from None
        piece.errors = 0
        checked = check_reply(body, request)
        piece.usage = piece.usage.add(
            Usage(prompt_tokens=checked.prompt_tokens, completion_tokens=checked.completion_tokens)
        )
        where, ask = chunk_label(request), len(piece.exchanges)
        if checked.truncated:
            halves = split_chunk(request.article, request.chunk, request.section, self.backend.model)
            if not halves:
                cut = truncated_error(self.settings, checked.content, piece.usage)
                raise unsplittable_error(request.article, request.chunk, request.chunk_count, cut)
            # The truncated attempts were paid for: they stay in the article's totals, as online.
            spent = Piece(path=piece.path, mode=piece.mode, settled=Settled(usage=piece.usage))
            return [spent, *(self.new_piece(loaded, [*piece.path, h]) for h in range(len(halves)))]
        grounded = checked.grounded
        if grounded is not None and (not grounded.failures or ask == self.asks - 1):
            result = Settled(
                bodies=grounded.bodies, warnings=grounded.warnings, usage=piece.usage, json_mode=piece.mode
            )
            self.settle(loaded, piece, result)
            return [piece]
        if grounded is not None:
            piece.fallback = Settled(bodies=grounded.bodies, warnings=grounded.warnings)
        if ask == self.asks - 1:  # the last re-ask was not valid JSON
            if piece.fallback is None:
                invalid = invalid_error(self.asks, checked.problem, checked.content)
                raise placed_error(request.article, request.chunk, request.chunk_count, invalid)
            kept = Grounded(list(piece.fallback.bodies), list(piece.fallback.warnings), [])
            warnings = fallback_warnings(where, checked.problem, kept)
            self.settle(
                loaded, piece, Settled(bodies=kept.bodies, warnings=warnings, usage=piece.usage, json_mode=piece.mode)
            )
            return [piece]
        piece.exchanges.append(((checked.content or "")[:ECHO_CHARS], checked.problem))
        piece.usage = piece.usage.add(Usage(retries=1, reasks=1))
        self.line(loaded, piece)
        return [piece]

    def _errored(self, loaded: _Loaded, piece: Piece, status: Any, body: Any, error: Any) -> list[Piece]:
        inner = body.get("error") if isinstance(body, dict) else None
        source = error if isinstance(error, dict) else inner if isinstance(inner, dict) else {}
        message = str(source.get("message") or error or malformed_reason(body) or f"HTTP {status}")
        if isinstance(status, int) and refused_format(status, message, body) and self.settings.json_mode == "auto":
            position = JSON_MODE_ORDER.index(piece.mode)
            if position + 1 < len(JSON_MODE_ORDER):  # ask again in the next JSON mode, as online
                piece.mode = JSON_MODE_ORDER[position + 1]
                piece.usage = piece.usage.add(Usage(retries=1))
                self.line(loaded, piece)
                return [piece]
        piece.errors += 1
        attempts = max(1, self.settings.transport_attempts)
        if piece.errors >= attempts:
            failure = ProviderError(
                f"the batch answered an error {piece.errors} times in a row "
                f"({'HTTP ' + str(status) + ': ' if status else ''}{redact(message, 200)})"
            )
            failure.detail = redact(json.dumps(error or body, ensure_ascii=False, default=str), 4000)
            raise failure
        piece.usage = piece.usage.add(Usage(retries=1, transport_retries=1))
        return [piece]  # the same request again, under the same custom_id


def _outcome_done(loaded: _Loaded, asker: _Asker, pieces: list[Piece]) -> Outcome:
    results = [p.settled.result() for p in pieces if p.settled is not None]
    summary = assemble_summary(loaded.article, asker.backend, asker.settings, len(loaded.chunks), results)
    return done_outcome(summary, loaded.article.sha256)


def _spent(pieces: list[Piece]) -> Usage:
    total = Usage()
    for piece in pieces:
        total = total.add(piece.settled.usage if piece.settled is not None else piece.usage)
    return total


def _outcome_failed(entry: ArticleState, source: str, exc: SummarizerError, pieces: list[Piece]) -> Outcome:
    exc.usage = _spent(pieces)  # paid for even so
    return Outcome(
        entry.article_id,
        "failed",
        error=error_record(entry.article_id, source, exc),
        usage=exc.usage,
        input_sha256=entry.input_sha256,
    )


def _already_written(writer: ResultsWriter, article_id: str, sha: str) -> bool:
    known = writer.index.entries.get(article_id)
    return known is not None and known == (sha, writer.settings_key)


# --- Writing the requests -----------------------------------------------------------------------


def _request_settings(settings: Settings) -> Settings:
    """The settings a batch runs with: the OpenAI backend, and the endpoint pinned (it keys the cache)."""
    return dataclasses.replace(settings, backend="openai", base_url=configured_base_url(settings))


def write_requests(
    input_dir: str | Path,
    output: str | Path,
    settings: Settings,
    *,
    glob: str = "**/*.txt",
    force: bool = False,
) -> BatchFileReport:
    """Plan every article under `input_dir` and write one chat-completions request per chunk.

    Articles already in `output` (same input and settings) are skipped; articles whose every chunk
    is in the cache are finished at once and written to `output`. The rest get request lines in
    `<output stem>.requests.jsonl` and an entry in the state file `collect_replies` reads.

    Raises:
        ConfigError: the folder, glob, output path or model is unusable, or a file in the way was
            not written by this tool.
    """
    root, output = check_paths(input_dir, output)
    settings = _request_settings(settings)
    prices = load_prices(settings.prices)
    report = BatchFileReport(output, errors_path_for(output), state_path_for(output), model=settings.model)
    requests_path = requests_path_for(output, 1)
    refuse_foreign_output(root, glob, output, force)
    _refuse_foreign(requests_path, "requests", force)
    _refuse_foreign(report.state_path, "state", force)
    candidates, refused = discover(root, glob, exclude=(output, report.errors_path, report.state_path, requests_path))
    if not candidates and not refused:
        raise ConfigError(f"{root}: no files match --glob {glob!r}; nothing to do")
    asker = _Asker(settings, None)
    assert asker.backend.prompt is not None
    stored = {name: getattr(settings, name) for name in REQUEST_SETTINGS}
    state = BatchState(
        requests=requests_path.name,
        input_dir=str(root),
        input_root=str(root.resolve()),
        glob=glob,
        settings=stored,
        articles=[],
    )
    settings_key = result_key(asker.backend, settings)
    batch_report = _new_batch_report(report, settings.model)
    fd, index = open_results(output)
    writer = ResultsWriter(fd, output, report.errors_path, index, settings_key, NullProgress(), batch_report)
    writer.start(len(candidates) + len(refused))
    for record in refused:
        writer.fail(record)
    asker.cache = open_cache(settings, asker.backend)

    def lines() -> Iterator[str]:
        for candidate in candidates:
            for line in _plan_candidate(candidate, asker, writer, state, force):
                yield json.dumps(line, ensure_ascii=False)

    try:
        report.requests = _replace_atomically(requests_path, lines())
        if writer.broken is None:  # a result that was not written must still be asked for
            _save_state(report.state_path, state)
    finally:
        _close(writer, asker)
    if (failure := writer.error()) is not None:
        raise failure
    report.requests_path = requests_path if report.requests else None
    report.pending = len(state.articles)
    _finish_report(report, writer, batch_prices(prices))
    return report


def _plan_candidate(
    candidate: Candidate, asker: _Asker, writer: ResultsWriter, state: BatchState, force: bool
) -> list[dict[str, Any]]:
    """The request lines for one input file (none when it is skipped, failed or answered from cache)."""
    article_id, source = candidate.article_id, str(candidate.path)
    known = writer.index.entries.get(article_id)
    if known is not None and not force and known[1] == writer.settings_key:
        sha = file_sha256(candidate.path, asker.settings.max_file_bytes)
        if sha is not None and sha == known[0]:
            writer.handle(Outcome(article_id, "skipped", input_sha256=sha))
            return []
    try:
        loaded = asker.load(candidate.root, article_id, candidate.rel)
        pieces = asker.plan(loaded)
    except SummarizerError as exc:
        writer.handle(Outcome(article_id, "failed", error=error_record(article_id, source, exc, 0)))
        return []
    if all(p.settled is not None for p in pieces):
        writer.handle(_outcome_done(loaded, asker, pieces))
        return []
    state.articles.append(
        ArticleState(
            article_id=article_id,
            rel=candidate.rel,
            input_sha256=loaded.article.sha256,
            chunks=len(loaded.chunks),
            pieces=pieces,
        )
    )
    return [asker.line(loaded, p) for p in pieces if p.settled is None]


def _finish_report(report: BatchFileReport, writer: ResultsWriter, prices: dict[str, tuple[float, float]]) -> None:
    tally = writer.tally
    report.done, report.cached, report.failed, report.skipped = tally.done, tally.cached, tally.failed, tally.skipped
    report.usage = writer.report.usage
    report.failures = writer.report.failures
    report.cost_usd = estimate_cost(report.model, report.usage, prices)


# --- Collecting the answers ---------------------------------------------------------------------


def _read_output(path: Path, awaited: dict[str, tuple[int, int]]) -> tuple[dict[tuple[int, int], list[int]], int, int]:
    """Byte offsets of the output lines for each awaited piece, and how many lines matched none / were unreadable.

    Only offsets are kept: an output file for a large job does not have to fit in memory.
    """
    found: dict[tuple[int, int], list[int]] = {}
    unmatched = unreadable = 0
    with path.open("rb") as handle:
        for line in json_lines(handle):
            if not line.raw.strip():
                continue
            if line.record is None or "custom_id" not in line.record:
                unreadable += 1
                continue
            custom_id = line.field("custom_id")
            where = awaited.get(custom_id) if custom_id is not None else None
            if where is None:
                unmatched += 1
            else:
                found.setdefault(where, []).append(line.offset)
    return found, unmatched, unreadable


def _record_at(path: Path, offset: int) -> tuple[str, dict[str, Any]]:
    with path.open("rb") as handle:
        handle.seek(offset)
        raw = handle.readline()
    record: dict[str, Any] = json.loads(raw)
    return hashlib.sha256(raw.strip()).hexdigest()[:16], record


def collect_replies(replies: str | Path, output: str | Path, settings: Settings) -> BatchFileReport:
    """Read a provider's output file and finish every article whose chunks are all answered.

    Finished articles are appended to `output` (never twice); failed ones go to
    `<output stem>.errors.jsonl`; requests still needed go to the next round's requests file.
    Collecting the same output again changes nothing.

    Raises:
        ConfigError: no state next to `output`, or the output file cannot be read.
    """
    replies, output = Path(replies), Path(output)
    if not replies.is_file():
        raise ConfigError(f"{replies}: not found; give the output file the batch produced")
    state = load_state(output)
    settings = dataclasses.replace(settings, backend="openai", **state.settings)
    prices = load_prices(settings.prices)
    report = BatchFileReport(output, errors_path_for(output), state_path_for(output), model=settings.model)
    report.batch_id = state.batch_id
    asker = _Asker(settings, None)
    assert asker.backend.prompt is not None
    awaited = {
        p.custom_id: (a, i) for a, entry in enumerate(state.articles) for i, p in enumerate(entry.pieces) if p.custom_id
    }
    found, report.unmatched, report.unreadable = _read_output(replies, awaited)
    settings_key = result_key(asker.backend, settings)
    fd, index = open_results(output)
    try:
        if load_state(output) != state:  # another collect finished while this one read the output
            raise ConfigError(f"{report.state_path}: changed while reading {replies}; run collect again")
    except BaseException:
        os.close(fd)
        raise
    writer = ResultsWriter(
        fd,
        output,
        report.errors_path,
        index,
        settings_key,
        NullProgress(),
        _new_batch_report(report, settings.model),
        keep_errors=True,  # an article that failed in an earlier round has left the state: keep its record
    )
    writer.start(len(state.articles))
    asker.cache = open_cache(settings, asker.backend)
    root = _input_root(state)
    changed = False
    kept: list[ArticleState] = []
    loaded_now: dict[str, _Loaded] = {}
    try:
        for position, entry in enumerate(state.articles):
            lines = {i: found[(position, i)] for i in range(len(entry.pieces)) if (position, i) in found}
            if not lines:
                kept.append(entry)
                continue
            outcome, moved = _collect_article(entry, lines, replies, root, asker, loaded_now, report)
            changed = changed or moved
            if outcome is None:
                kept.append(entry)
            elif outcome.kind == "done" and _already_written(writer, entry.article_id, entry.input_sha256):
                writer.handle(Outcome(entry.article_id, "skipped"))
            else:
                writer.handle(outcome)
        report.pending = len(kept)
        if writer.broken is not None:
            changed = False  # results that were not written stay awaited: the state is left as it was
        if changed:
            state.articles = kept
            if kept:
                state.round += 1
                next_path = requests_path_for(output, state.round)
                _refuse_foreign(next_path, "requests", False)
                pending = _pending_lines(state, root, asker, loaded_now, writer, report)
                report.requests = _replace_atomically(next_path, pending)
                state.requests = next_path.name
            report.pending = len(state.articles)
            _save_state(report.state_path, state)
        else:
            report.requests = sum(p.custom_id is not None for entry in kept for p in entry.pieces)
        report.requests_path = output.with_name(state.requests) if report.pending else None
    finally:
        _close(writer, asker)
    if (failure := writer.error()) is not None:
        raise failure  # the state was left awaiting what could not be written
    _finish_report(report, writer, batch_prices(prices))
    return report


def _close(writer: ResultsWriter, asker: _Asker) -> None:
    writer.close()
    if asker.cache is not None:
        asker.cache.close()


def _input_root(state: BatchState) -> Path:
    """The input folder, as given when it is still found from here, else as it was resolved then.

    Raises:
        ConfigError: it is gone (collecting then would fail every article).
    """
    for candidate in (Path(state.input_dir), Path(state.input_root)):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"{state.input_root}: the input folder of this batch is gone; collect needs the articles")


def _collect_article(
    entry: ArticleState,
    lines: dict[int, list[int]],
    replies: Path,
    root: Path,
    asker: _Asker,
    loaded_now: dict[str, _Loaded],
    report: BatchFileReport,
) -> tuple[Outcome | None, bool]:
    """Apply an article's output lines. Returns its outcome (None: still pending) and whether its
    state changed; `entry.pieces` is updated in place."""
    source = str(root / entry.rel)
    try:
        loaded = asker.load(root, entry.article_id, entry.rel)
    except SummarizerError as exc:
        return _outcome_failed(entry, source, exc, entry.pieces), True
    loaded_now[entry.article_id] = loaded
    if loaded.article.sha256 != entry.input_sha256:
        # The file changed since its requests were written: those answers are for another text.
        report.stale += 1
        entry.input_sha256, entry.chunks, entry.pieces = loaded.article.sha256, len(loaded.chunks), asker.plan(loaded)
        return (_outcome_done(loaded, asker, entry.pieces) if _settled(entry) else None), True
    moved = False
    pieces: list[Piece] = []
    try:
        for i, piece in enumerate(entry.pieces):
            awaited, current = piece.custom_id, [piece]
            for offset in lines.get(i, []):
                if awaited is None or piece.custom_id != awaited or len(current) != 1:
                    break  # settled, split or asked anew: later lines answer a request no longer awaited
                digest, record = _record_at(replies, offset)
                if digest in piece.seen:
                    continue  # this very line was read by an earlier collect
                piece.seen.append(digest)
                current = asker.answer(loaded, piece, record)
                moved = True
            pieces.extend(current)
    except SummarizerError as exc:  # the message already names the article and the chunk
        exc.attempts = piece.usage.requests
        return _outcome_failed(entry, source, exc, [*pieces, *entry.pieces[i:]]), True
    entry.pieces = pieces
    if _settled(entry):
        return _outcome_done(loaded, asker, entry.pieces), True
    return None, moved


def _settled(entry: ArticleState) -> bool:
    return all(p.settled is not None for p in entry.pieces)


def _pending_lines(
    state: BatchState,
    root: Path,
    asker: _Asker,
    loaded_now: dict[str, _Loaded],
    writer: ResultsWriter,
    report: BatchFileReport,
) -> Iterator[str]:
    """The next round's requests: every piece still awaiting an answer, its body built afresh."""
    kept: list[ArticleState] = []
    for entry in state.articles:
        loaded = loaded_now.get(entry.article_id)
        try:
            if loaded is None:
                loaded = asker.load(root, entry.article_id, entry.rel)
        except SummarizerError as exc:
            writer.handle(_outcome_failed(entry, str(root / entry.rel), exc, entry.pieces))
            continue
        if loaded.article.sha256 != entry.input_sha256:
            report.stale += 1
            entry.input_sha256, entry.chunks, entry.pieces = (
                loaded.article.sha256,
                len(loaded.chunks),
                asker.plan(loaded),
            )
            if _settled(entry):
                writer.handle(_outcome_done(loaded, asker, entry.pieces))
                continue
        kept.append(entry)
        for piece in entry.pieces:
            if piece.custom_id is not None:
                yield json.dumps(asker.line(loaded, piece), ensure_ascii=False)
    state.articles = kept


# --- The provider round trip --------------------------------------------------------------------


def submit_requests_file(output: str | Path, settings: Settings) -> SubmittedBatch:
    """Upload the current round's requests (from the state next to `output`) and create a batch.

    Raises:
        ConfigError: no state, or no requests waiting.
        AuthError, ProviderError: the endpoint refused or failed.
    """
    output = Path(output)
    state = load_state(output)
    path = output.with_name(state.requests)
    if not state.articles or not path.is_file():
        raise ConfigError(f"{output}: no requests are waiting; nothing to submit")
    submitted = submit_requests(path, settings)
    state.batch_id = submitted.batch_id
    _save_state(state_path_for(output), state)
    return submitted


def download_path_for(output: Path, batch_id: str) -> Path:
    """results.jsonl + batch_abc -> results.batch_abc.output.jsonl (the id kept to safe characters)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in batch_id)[:100]
    return output.with_name(f"{_stem(output)}.{safe}.output.jsonl")


def fetch_batch_output(batch_id: str, output: str | Path, settings: Settings) -> BatchOutput:
    """Look a batch up and, once it has finished, download its output next to `output`.

    Raises:
        AuthError, ProviderError: the endpoint refused or failed.
    """
    output = Path(output)
    destination = download_path_for(output, batch_id)
    _refuse_foreign(destination, "output", False)
    return fetch_output(batch_id, destination, settings)
