"""Read an article file: decode it, strip web boilerplate, and pick up title, date and outlet.

Spans everywhere in the tool are [start, end) offsets into `Article.text`: the decoded file with a
BOM removed and line endings normalised to "\\n". Stripping never rewrites that text; it only
records which line ranges are content (`Article.kept`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import InputError
from .text import SENTENCE_END, fold_text

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

# Lines that are page furniture, not article content: the whole line has one of these shapes ...
_BOILERPLATE = re.compile(
    r"""^\s*(?:
        (?:首页|当前位置|您的位置|您现在的位置|位置)(?:\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\))?
            \s*(?:[>＞»/]|>>|[:：]).*                                              # breadcrumbs, 首頁(yè) >
      | [(（【\[]?\s*(?:责任编辑|责编|编辑|校对|审核|审校|终审|初审|复审|监制|值班编辑|编审)\s*[:：].*
      | (?:上一篇|下一篇|上一版|下一版|上一页|下一页|返回顶部|返回首页|打印本页|关闭窗口|分享到|加载更多).*
      | 当前版\s*[:：].*
      | 往期(?:阅读|回顾)\s*
      | 放大\s*缩小.*
      | A-\s*A\+\s*
      | 标题导航\s*
      | 第\s*\d+\s*版\s*[:：].*
      | ~~~.*
      | 图片由.{1,30}提供\s*
      | (?:扫一扫|扫码|字号|【字体|字体[:：]).*
    )\s*$""",
    re.VERBOSE,
)
# ... or it has one of these anywhere. Searched for on their own: as `.*(?:...)` alternatives of the
# pattern above, every position of every short line was tried against each of them, backwards.
_BOILERPLATE_WORDS = re.compile(
    r"""(?:>>|&gt;|＞＞|首页(?:\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\))?\s*[>＞»])        # breadcrumb trails
      | 版权所有|ICP备|ICP证|公网安备|网站主办|主办单位[:：]|技术支持[:：]|网站标识码|联系我们|网站地图""",
    re.VERBOSE,
)
# Page navigation at the foot of a page: everything after it is menus and other headlines. Matched
# on the whole page at once, so a line's leading space may not run on into the next line.
_FOOTER_START = re.compile(
    r"^[^\S\n]*(?:上一篇|下一篇|标题导航|相关新闻|相关阅读|推荐阅读|热点推荐|更多>>)", re.MULTILINE
)

_DATE = r"(20\d{2}|19\d{2})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})\s*日?"
_PUBLISHED = re.compile(r"(?:发稿时间|发布时间|发表时间|时间|日期|发布日期|来源)?\s*[:：]?\s*" + _DATE)
_DATE_ONLY_LINE = re.compile(r"^\s*" + _DATE + r"(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$")
# An e-paper's masthead or page line: "某某日报 数字报 2025年01月12日 星期日", "今日某某 2025年01月15日 第03版：要闻",
# "版次:02 2025年01月12日". It dates the page and is never the headline.
_PAPER_LINE = re.compile(
    r"^\s*(?:[^\s,。]{2,12}\s+(?:数字报\s+)?|版次\s*[:：]?\s*\d+\s+)?"
    + _DATE
    + r"\s*(?:星期.|周.|第\s*\d+\s*版.*)?\s*$"
)
_SOURCE = re.compile(r"来源\s*[:：]\s*([^\s:：|｜,，。]{2,20})")
_DATELINE = re.compile(r"^\s*([\u4e00-\u9fa5]{2,12}(?:网|报|社|台|刊))\s*\d{1,2}月\d{1,2}日(?:电|讯)")
# A byline: 记者：…, or a marker (□ 本报记者 …, ■ 张三 李四) before a reporter word or bare names. A
# marker before a committee and a colon (■某县政协：…) opens a roundup's section, not a byline.
_MARKERS = "□■●◎"
_BYLINE = re.compile(
    r"^\s*(?:(?:记者|通讯员|作者|文|本报记者)\s*[:：/ ]"
    r"|[□■●◎]\s*(?:(?:本报|特约|见习|融媒体?)?(?:记者|通讯员|作者|文)|[^\s,，。:：;；]{2,3}(?:\s+[^\s,，。:：;；]{2,3})*\s*$))"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")
# Scrapers often save the page's address as the first line: metadata, never title or text.
_URL_LINE = re.compile(r"^\s*(?:SOURCE|URL|url|source)\s*[:：]\s*(https?://\S+)\s*$")


@dataclass(frozen=True, eq=False)
class Article:
    """A decoded article, with the ranges of its text that survived boilerplate stripping.

    Compared and hashed by identity: per-article caches look an article up once per section, and
    hashing a long page's fields each time cost more than the work they saved.
    """

    article_id: str
    path: Path | None
    text: str
    kept: tuple[tuple[int, int], ...]
    title: str | None
    subtitle: str | None
    published: str | None
    source: str | None
    sha256: str
    encoding: str
    header_end: int = 0  # end of the page header (headline, byline, captions above them)
    folded: str = ""  # `text` with full-width punctuation as ASCII, same length: what rules match on
    url: str | None = None  # the page's address, from a first `SOURCE: <url>` line

    @property
    def headline(self) -> str:
        """Title and subtitle together: the strongest place for body and year signals."""
        return " ".join(part for part in (self.title, self.subtitle) if part)

    def is_kept(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self.kept)


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Decode UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK.

    Raises:
        InputError: the bytes are binary or in no encoding we read.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise InputError(f"{name}: bad {encoding} text after its byte-order mark") from exc
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: binary file (NUL bytes), not a text article")
    for encoding in ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = len(_CONTROL.findall(text, 0, 4096))
        if controls > 8:
            raise InputError(f"{name}: binary file (control bytes), not a text article")
        return text, encoding
    raise InputError(f"{name}: not UTF-8 or GB18030 text")


def _is_furniture(line: str) -> bool:
    # Real paragraphs can mention 版权所有 or 编辑; page furniture is short.
    return len(line.strip()) <= 100 and (
        _BOILERPLATE.match(line) is not None or _BOILERPLATE_WORDS.search(line) is not None
    )


def _footer_start(text: str) -> int:
    """Where the page's foot navigation starts, else len(text). A footer marker only counts once the
    article body has gone by: on a line starting past 40% of the page."""
    match = _FOOTER_START.search(text, int(len(text) * 0.4) + 1)  # `^` matches only at line starts
    return match.start() if match else len(text)


def _kept_ranges(text: str) -> tuple[tuple[int, int], ...]:
    kept = []
    start = 0
    for line in text[: _footer_start(text)].split("\n"):
        end = start + len(line)
        if line and not line.isspace() and not _is_furniture(line):
            kept.append((start, end))
        start = end + 1
    return tuple(kept)


def _is_title_like(line: str) -> bool:
    stripped = line.strip()
    return (
        0 < len(stripped) <= 60
        and stripped[-1] not in SENTENCE_END
        and not _BYLINE.match(stripped)
        and stripped[0] not in _MARKERS  # a marked line is a byline or a section of the page, not its headline
        and not _DATE_ONLY_LINE.match(stripped)
        and not _PAPER_LINE.match(stripped)
        and "来源" not in stripped
    )


def _find_title(text: str, folded: str, kept: tuple[tuple[int, int], ...]) -> tuple[str | None, str | None]:
    """The headline block: short lines before the byline, or the first such block on the page.

    Decisions read the folded text; the lines returned are the original's.
    """
    runs: list[list[str]] = []  # runs of adjacent title-like lines
    previous_end = -2
    anchored = False
    for start, end in kept[:40]:
        line = folded[start:end].strip()
        if _BYLINE.match(line) or (_PUBLISHED.match(line) and ("来源" in line or "时间" in line)):
            anchored = True
            break
        if _DATELINE.match(line) or len(line) > 60 or line[-1] in SENTENCE_END:
            if runs:  # a paragraph after a headline ends the header
                break
            continue  # captions above the headline
        if _is_title_like(line):
            original = text[start:end].strip()
            if start == previous_end + 1 and runs:
                runs[-1].append(original)
            else:
                runs.append([original])
            previous_end = end
    runs = [[ln for ln in run if len(ln) > 4] for run in runs]
    runs = [run for run in runs if run]
    if not runs:
        return None, None
    candidates = runs[::-1] if anchored else runs  # with a byline, the headline is the run just above it
    subtitle = None
    for index, run in enumerate(runs):
        if run[0].startswith(("——", "—", "--")) and index > 0 and subtitle is None:
            subtitle = run[0].lstrip("—- ")
    for run in candidates:
        main = [ln for ln in run if not ln.startswith(("——", "—", "--")) and not ln.endswith(("——", "—"))]
        subs = [ln for ln in run if ln.startswith(("——", "—", "--"))]
        if subs and subtitle is None:
            subtitle = subs[0].lstrip("—- ")
        if main:
            return " ".join(main), subtitle
    return None, subtitle


def _find_header_end(text: str, kept: tuple[tuple[int, int], ...], title: str | None) -> int:
    """Where reporting text starts: after the byline/dateline if near the top, else after the headline."""
    title_end = 0
    for index, (start, end) in enumerate(kept[:20]):
        line = text[start:end].strip()
        if _BYLINE.match(line) or (("来源" in line or "发稿时间" in line) and re.search(_DATE, line)):
            return end
        if title and line and (line in title or title.startswith(line)) and not title_end:
            title_end = end
            # a subtitle line right after the headline belongs to the header
            if index + 1 < len(kept) and text[kept[index + 1][0] : kept[index + 1][1]].strip().startswith("——"):
                title_end = kept[index + 1][1]
    return title_end


def _find_published(text: str, kept: tuple[tuple[int, int], ...]) -> str | None:
    for start, end in kept[:40]:
        line = text[start:end]
        dated_line = "来源" in line or "时间" in line or "日期" in line or _DATE_ONLY_LINE.match(line)
        if (dated_line or _PAPER_LINE.match(line)) and (match := re.search(_DATE, line)):
            year, month, day = (int(g) for g in match.groups())
            if 1 <= month <= 12 and 1 <= day <= 31:
                return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def _find_source(text: str, kept: tuple[tuple[int, int], ...]) -> str | None:
    for start, end in kept[:40]:
        line = text[start:end]
        if match := _SOURCE.search(line):
            return match.group(1)
        if match := _DATELINE.match(line):
            return match.group(1)
    return None


def parse_article(
    text: str, article_id: str, path: Path | None = None, *, sha256: str = "", encoding: str = "utf-8"
) -> Article:
    """Build an Article from already-decoded text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"{path or article_id}: empty article (no text)")
    folded = fold_text(text)
    kept = _kept_ranges(folded)
    first_line = folded.split("\n", 1)[0]
    url_match = _URL_LINE.match(first_line)
    if url_match:
        kept = tuple((s, e) for s, e in kept if s >= len(first_line))
    if not kept:
        raise InputError(f"{path or article_id}: nothing but page furniture (no article text)")
    title, subtitle = _find_title(text, folded, kept)
    return Article(
        article_id=article_id,
        path=path,
        text=text,
        kept=kept,
        title=title,
        subtitle=subtitle,
        published=_find_published(folded, kept),
        source=_find_source(folded, kept),
        sha256=sha256 or hashlib.sha256(text.encode()).hexdigest(),
        encoding=encoding,
        header_end=_find_header_end(folded, kept, fold_text(title) if title else None),
        folded=folded,
        url=text[url_match.start(1) : url_match.end(1)] if url_match else None,
    )


def load_article(path: str | Path, *, article_id: str | None = None, max_bytes: int = 5_000_000) -> Article:
    """Read and clean one article file.

    Raises:
        InputError: missing, unreadable, too large, empty, binary or undecodable file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
        if size > max_bytes:
            raise InputError(
                f"{path}: {size:,} bytes is over the {max_bytes:,}-byte limit (raise --max-file-bytes to read it)"
            )
        data = path.read_bytes()
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise InputError(f"{path}: empty file")
    text, encoding = decode_bytes(data, str(path))
    if not text.strip():
        raise InputError(f"{path}: whitespace only, no article text")
    return parse_article(
        text, article_id or path.stem, path, sha256=hashlib.sha256(data).hexdigest(), encoding=encoding
    )


class Ranges:
    """Sorted, merged [start, end) ranges with a fast membership test."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [r[0] for r in merged]
        self.ends = [r[1] for r in merged]

    def __contains__(self, position: object) -> bool:
        if not isinstance(position, int):
            return False
        index = bisect_right(self.starts, position) - 1
        return index >= 0 and position < self.ends[index]


_T = TypeVar("_T")


def per_article(function: Callable[[Article], _T]) -> Callable[[Article], _T]:
    """Cache `function(article)` for as long as the article lives (however many are in flight at
    once: a batch keeps dozens open, more than a small LRU cache would hold)."""
    results: weakref.WeakKeyDictionary[Article, _T] = weakref.WeakKeyDictionary()

    @functools.wraps(function)
    def cached(article: Article) -> _T:
        try:
            return results[article]
        except KeyError:
            value = results[article] = function(article)
            return value

    return cached
