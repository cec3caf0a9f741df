"""Score a run against the hand-labelled eval set: bodies, years, metrics, initiatives, grounding, summaries.

The scoring functions are pure (summaries and article text in, a JSON-ready dict out); only the
`load_*` functions and `run_eval` touch files. Nothing here runs a model: `run_eval` takes the
summarising step as a callable, so this module never imports a backend.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .article import load_article
from .errors import AuthError, ConfigError, EvalDataError, InputError, SummarizerError
from .ground import given_span, occurrences
from .places import short_autonomous
from .results import parse_summary, read_results
from .schema import ArticleSummary, BodySummary, Initiative, Metric

Span = tuple[int, int]

# Measure words that count the same thing; any other unit must match exactly.
UNIT_FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"名", "人", "位"}),
    frozenset({"次", "场", "场次"}),
    frozenset({"篇", "份"}),
    frozenset({"件", "件次"}),
)
SIMILARITY_THRESHOLD = 0.5

# --- Body names ---------------------------------------------------------------------------------

_TERM = re.compile(r"第?[〇零一二三四五六七八九十百\d]+届")
_WRAPPERS = ("中国人民政治协商会议", "人民政治协商会议", "政治协商会议", "人民政协", "政协")
_TAILS = ("常务委员会", "常委会", "委员会", "机关")
# Administrative suffixes, longest first, so "自治区" is not read as "区".
_ADMIN_SUFFIXES = (
    "维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "自治州", "自治县", "自治旗",
    "新区", "地区", "省", "市", "区", "县", "旗", "州", "盟",
)  # fmt: skip
# What is left when a name gives no place at all ("我市政协", "全区政协").
_NO_PLACE = frozenset({"", "我", "本", "全", "该", "各", "各级", "全国各级"})


def canonical_body_key(name: str) -> str | None:
    """Reduce a committee name to its place, so spellings of one committee compare equal.

    "政协呼和浩特市委员会", "中国人民政治协商会议呼和浩特市委员会", "呼和浩特市政协" and
    "呼和浩特市十四届政协" all give "呼和浩特". A name without a place ("自治区十三届政协",
    "市政协") gives None: it cannot be told apart from any other committee of that kind.
    """
    key = re.sub(r"\s+", "", name)
    key = _TERM.sub("", key)
    for wrapper in _WRAPPERS:
        key = key.replace(wrapper, "")
    for tail in _TAILS:
        key = key.removesuffix(tail)
    key = short_autonomous(key)  # 黔东南苗族侗族自治州 and 黔东南州 are one place
    for suffix in _ADMIN_SUFFIXES:
        if key.endswith(suffix):
            key = key[: -len(suffix)]
            break
    if key in _NO_PLACE:
        return None
    return key


def _keys_match(pred_key: str, gold_key: str, *, loose: bool) -> bool:
    if pred_key == gold_key:
        return True
    # "天津市滨海新区" vs "滨海新区": the longer name only adds the parent area.
    short, long = sorted((pred_key, gold_key), key=len)
    return loose and len(short) >= 2 and long.endswith(short)


def match_bodies(
    predicted: Sequence[BodySummary], gold: Sequence[BodySummary]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pair predicted and gold bodies one-to-one by canonical key.

    Exact keys pair first; a key that is a suffix of the other ("天津市滨海新区" / "滨海新区")
    pairs only among what is left.

    Returns:
        (pairs of (predicted index, gold index), unmatched predicted indexes, unmatched gold indexes).
    """
    pred_keys = [canonical_body_key(body.body) for body in predicted]
    gold_keys = [canonical_body_key(body.body) for body in gold]
    pairs: list[tuple[int, int]] = []
    used_gold: set[int] = set()
    used_pred: set[int] = set()
    for loose in (False, True):
        for p, pred_key in enumerate(pred_keys):
            if p in used_pred or pred_key is None:
                continue
            for g, gold_key in enumerate(gold_keys):
                if g in used_gold or gold_key is None:
                    continue
                if _keys_match(pred_key, gold_key, loose=loose):
                    pairs.append((p, g))
                    used_pred.add(p)
                    used_gold.add(g)
                    break
    pairs.sort()
    unmatched_pred = [p for p in range(len(predicted)) if p not in used_pred]
    unmatched_gold = [g for g in range(len(gold)) if g not in used_gold]
    return pairs, unmatched_pred, unmatched_gold


# --- String similarity --------------------------------------------------------------------------

_IGNORED_CHARS = re.compile(r"[\s\"'“”‘’《》「」『』()（）【】\[\],，、。:：;；!！?？·—-]+")


def _normalise(text: str) -> str:
    return _IGNORED_CHARS.sub("", text)


def _bigrams(text: str) -> Counter[str]:
    if len(text) < 2:
        return Counter([text]) if text else Counter()
    return Counter(text[i : i + 2] for i in range(len(text) - 1))


def bigram_dice(a: str, b: str) -> float:
    """Dice coefficient of character bigrams (punctuation and spaces ignored), in [0, 1]."""
    grams_a, grams_b = _bigrams(_normalise(a)), _bigrams(_normalise(b))
    total = sum(grams_a.values()) + sum(grams_b.values())
    if total == 0:
        return 0.0
    return 2 * sum((grams_a & grams_b).values()) / total


def contains_either(a: str, b: str) -> bool:
    """True when one string (punctuation and spaces ignored) is inside the other."""
    a, b = _normalise(a), _normalise(b)
    return bool(a) and bool(b) and (a in b or b in a)


def spans_overlap(a: Iterable[Span], b: Iterable[Span]) -> bool:
    """True when any span of `a` shares at least one character with any span of `b`."""
    b = list(b)
    return any(sa < eb and sb < ea for sa, ea in a for sb, eb in b)


def text_similarity(
    name_a: str, evidence_a: str, name_b: str, evidence_b: str, text: str, *, name_containment: bool
) -> float:
    """How alike two items are: 1.0 when the evidences contain or overlap each other, else the best Dice.

    With `name_containment`, names that contain one another also score 1.0. Metrics use it (their
    value and unit must agree as well); initiatives do not, as a short generic name ("协商") sits
    inside many others.
    """
    if contains_either(evidence_a, evidence_b) or (name_containment and contains_either(name_a, name_b)):
        return 1.0
    if text and spans_overlap(occurrences(evidence_a, text), occurrences(evidence_b, text)):
        return 1.0
    return max(bigram_dice(name_a, name_b), bigram_dice(evidence_a, evidence_b))


# --- Metric values and units --------------------------------------------------------------------


def normalise_unit(unit: str) -> str:
    return unit.strip().replace("％", "%")


def units_agree(a: str, b: str) -> bool:
    """Same unit, or two measure words of one family (名/人/位, 次/场/场次, 篇/份, 件/件次)."""
    a, b = normalise_unit(a), normalise_unit(b)
    return a == b or any(a in family and b in family for family in UNIT_FAMILIES)


def values_agree(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def metric_similarity(pred: Metric, gold: Metric, text: str) -> float | None:
    """Similarity of two metrics, or None when value or unit differ (then they never match)."""
    if not (values_agree(pred.value, gold.value) and units_agree(pred.unit, gold.unit)):
        return None
    score = text_similarity(pred.name, pred.evidence, gold.name, gold.evidence, text, name_containment=True)
    return score if score >= SIMILARITY_THRESHOLD else None


def initiative_similarity(pred: Initiative, gold: Initiative, text: str) -> float | None:
    """Similarity of two initiatives, or None below the match threshold."""
    score = text_similarity(pred.name, pred.evidence, gold.name, gold.evidence, text, name_containment=False)
    return score if score >= SIMILARITY_THRESHOLD else None


def match_greedy(
    n_pred: int, n_gold: int, similarity: Callable[[int, int], float | None]
) -> list[tuple[int, int, float]]:
    """One-to-one pairs, best similarity first (ties keep list order). None means "cannot pair"."""
    candidates = [
        (score, p, g) for p in range(n_pred) for g in range(n_gold) if (score := similarity(p, g)) is not None
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_pred: set[int] = set()
    used_gold: set[int] = set()
    pairs: list[tuple[int, int, float]] = []
    for score, p, g in candidates:
        if p not in used_pred and g not in used_gold:
            pairs.append((p, g, score))
            used_pred.add(p)
            used_gold.add(g)
    return sorted(pairs, key=lambda pair: pair[0])


# --- Counting -----------------------------------------------------------------------------------


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Precision, recall and F1 from counts.

    Nothing to find and nothing claimed scores 1.0 (a perfect empty answer); otherwise an empty
    denominator scores 0.0.
    """
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over characters (whitespace ignored): longest common subsequence vs both lengths."""
    a = re.sub(r"\s+", "", candidate)
    b = re.sub(r"\s+", "", reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for char_a in a:
        current = [0]
        for j, char_b in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if char_a == char_b else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


# --- Scoring one article ------------------------------------------------------------------------


def _primary_span(item: Metric | Initiative, spans: list[Span], text: str) -> Span | None:
    # Prefer the span the tool reported, when it really points at the evidence.
    return given_span(item, text) or (spans[0] if spans else None)


def _describe(item: Metric | Initiative, body: str, text: str) -> dict[str, Any]:
    spans = occurrences(item.evidence, text)
    described: dict[str, Any] = {"body": body, "name": item.name}
    if isinstance(item, Metric):
        described.update(value=item.value, unit=item.unit, approx=item.approx, optional=item.optional)
    described.update(
        evidence=item.evidence,
        grounded=bool(spans),
        span=_primary_span(item, spans, text),
        spans=spans,
    )
    return described


@dataclass
class _Tally:
    """Counts and item lists for one field of one article."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    matched: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    missed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    false_positive: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ignored: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def details(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "matched": self.matched,
            "missed": self.missed,
            "false_positive": self.false_positive,
            "ignored": self.ignored,
        }


def _score_metrics(tally: _Tally, pred_body: BodySummary, gold_body: BodySummary, text: str) -> None:
    pred, gold = pred_body.metrics, gold_body.metrics
    pairs = match_greedy(len(pred), len(gold), lambda p, g: metric_similarity(pred[p], gold[g], text))
    paired_pred = {p for p, _, _ in pairs}
    paired_gold = {g for _, g, _ in pairs}
    for p, g, score in pairs:
        entry = {
            "pred": _describe(pred[p], pred_body.body, text),
            "gold": _describe(gold[g], gold_body.body, text),
            "similarity": score,
        }
        # A prediction that finds an optional item is neither rewarded nor punished.
        if gold[g].optional:
            tally.ignored.append(entry)
        else:
            tally.tp += 1
            tally.matched.append(entry)
    for p, metric in enumerate(pred):
        if p not in paired_pred:
            tally.fp += 1
            tally.false_positive.append(_describe(metric, pred_body.body, text))
    for g, metric in enumerate(gold):
        if g not in paired_gold and not metric.optional:
            tally.fn += 1
            tally.missed.append(_describe(metric, gold_body.body, text))


def _score_initiatives(tally: _Tally, pred_body: BodySummary, gold_body: BodySummary, text: str) -> None:
    pred, gold = pred_body.key_initiatives, gold_body.key_initiatives
    pairs = match_greedy(len(pred), len(gold), lambda p, g: initiative_similarity(pred[p], gold[g], text))
    paired_pred = {p for p, _, _ in pairs}
    paired_gold = {g for _, g, _ in pairs}
    for p, g, score in pairs:
        tally.tp += 1
        tally.matched.append(
            {
                "pred": _describe(pred[p], pred_body.body, text),
                "gold": _describe(gold[g], gold_body.body, text),
                "similarity": score,
            }
        )
    for p, initiative in enumerate(pred):
        if p not in paired_pred:
            tally.fp += 1
            tally.false_positive.append(_describe(initiative, pred_body.body, text))
    for g, initiative in enumerate(gold):
        if g not in paired_gold:
            tally.fn += 1
            tally.missed.append(_describe(initiative, gold_body.body, text))


def _no_body() -> BodySummary:
    return BodySummary(body="-", level="national")


def score_article(prediction: ArticleSummary | None, gold: ArticleSummary, text: str) -> dict[str, Any]:
    """Score one article's prediction (None: the run produced nothing for it) against its gold label.

    Returns:
        The per-article entry of the report: P/R/F1 per field, year accuracy, grounding, ROUGE-L,
        and `details` listing matched, missed and false-positive items with their located spans.
    """
    pred_bodies = prediction.bodies if prediction is not None else []
    pairs, lone_pred, lone_gold = match_bodies(pred_bodies, gold.bodies)
    metrics, initiatives = _Tally(), _Tally()
    body_details: dict[str, list[dict[str, Any]]] = {"matched": [], "missed": [], "false_positive": []}
    year_correct = 0
    rouge_scores: list[float] = []
    for p, g in pairs:
        pred_body, gold_body = pred_bodies[p], gold.bodies[g]
        year_ok = pred_body.year == gold_body.year
        year_correct += year_ok
        rouge = rouge_l(pred_body.summary, gold_body.summary) if gold_body.summary else None
        if rouge is not None:
            rouge_scores.append(rouge)
        body_details["matched"].append(
            {
                "pred": pred_body.body,
                "gold": gold_body.body,
                "pred_year": pred_body.year,
                "gold_year": gold_body.year,
                "year_correct": year_ok,
                "summary_rouge_l": rouge,
            }
        )
        _score_metrics(metrics, pred_body, gold_body, text)
        _score_initiatives(initiatives, pred_body, gold_body, text)
    # A body on one side only: everything it lists is a false positive or a miss.
    for p in lone_pred:
        body_details["false_positive"].append({"pred": pred_bodies[p].body, "pred_year": pred_bodies[p].year})
        _score_metrics(metrics, pred_bodies[p], _no_body(), text)
        _score_initiatives(initiatives, pred_bodies[p], _no_body(), text)
    for g in lone_gold:
        body_details["missed"].append({"gold": gold.bodies[g].body, "gold_year": gold.bodies[g].year})
        _score_metrics(metrics, _no_body(), gold.bodies[g], text)
        _score_initiatives(initiatives, _no_body(), gold.bodies[g], text)

    items: list[Metric | Initiative] = [metric for body in pred_bodies for metric in body.metrics]
    items += [initiative for body in pred_bodies for initiative in body.key_initiatives]
    grounded = sum(bool(occurrences(item.evidence, text)) for item in items)
    return {
        "article_id": gold.article_id,
        "predicted": prediction is not None,
        "bodies": prf(len(pairs), len(lone_pred), len(lone_gold)),
        "metrics": prf(metrics.tp, metrics.fp, metrics.fn),
        "initiatives": prf(initiatives.tp, initiatives.fp, initiatives.fn),
        "year": _accuracy(year_correct, len(pairs)),
        "grounding": {"grounded": grounded, "items": len(items)},
        "grounding_rate": grounded / len(items) if items else 0.0,
        "summary_rouge_l": sum(rouge_scores) / len(rouge_scores) if rouge_scores else 0.0,
        "summaries_scored": len(rouge_scores),
        "usage": _usage(prediction),
        "details": {
            "bodies": body_details,
            "metrics": metrics.details(),
            "initiatives": initiatives.details(),
        },
    }


def _accuracy(correct: int, total: int) -> dict[str, Any]:
    return {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total}


def _usage(prediction: ArticleSummary | None) -> dict[str, int] | None:
    meta = prediction.meta if prediction is not None else None
    if meta is None or (meta.model is None and not meta.usage.requests):
        return None  # no model was asked (an offline extractor): no cost, rather than a cost of zero
    usage = meta.usage
    return {
        "requests": usage.requests,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "retries": usage.retries,
        "cache_hits": meta.cache_hits,  # chunks answered from the cache cost nothing now
    }


def _sum_prf(per_article: Sequence[Mapping[str, Any]], field: str) -> dict[str, Any]:
    return prf(*(sum(entry[field][count] for entry in per_article) for count in ("tp", "fp", "fn")))


def _run_label(predictions: Iterable[ArticleSummary], attribute: str) -> str | None:
    labels = sorted({str(value) for p in predictions if p.meta is not None and (value := getattr(p.meta, attribute))})
    return ", ".join(labels) if labels else None


def _totals(per_article: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Micro-averaged figures over some per-article entries (the whole run, or one split)."""
    year_correct = sum(entry["year"]["correct"] for entry in per_article)
    year_total = sum(entry["year"]["total"] for entry in per_article)
    grounded = sum(entry["grounding"]["grounded"] for entry in per_article)
    items = sum(entry["grounding"]["items"] for entry in per_article)
    rouge_total = sum(entry["summary_rouge_l"] * entry["summaries_scored"] for entry in per_article)
    rouge_count = sum(entry["summaries_scored"] for entry in per_article)
    usages = [entry["usage"] for entry in per_article if entry["usage"] is not None]
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usages)
    requests = sum(u["requests"] for u in usages)
    return {
        "metrics": _sum_prf(per_article, "metrics"),
        "bodies": _sum_prf(per_article, "bodies"),
        "year": _accuracy(year_correct, year_total),
        "initiatives": _sum_prf(per_article, "initiatives"),
        "grounding_rate": grounded / items if items else 0.0,
        "grounding": {"grounded": grounded, "items": items},
        "summary_rouge_l": rouge_total / rouge_count if rouge_count else 0.0,
        "cost": {
            "tokens_per_article": tokens / len(usages) if usages else None,
            "requests_per_article": requests / len(usages) if usages else None,
            "articles_with_usage": len(usages),
            "tokens": tokens,
            "requests": requests,
            "cache_hits": sum(u.get("cache_hits", 0) for u in usages),
        },
    }


def score_run(
    predictions: Mapping[str, ArticleSummary],
    gold: Mapping[str, ArticleSummary],
    articles: Mapping[str, str],
    splits: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score a whole run: micro-averaged totals over every gold article, plus per-article figures.

    Args:
        predictions: article_id -> the tool's summary. A gold article with no prediction scores as
            all misses; predictions for articles without gold are listed in `run` and not scored.
        gold: article_id -> gold label.
        articles: article_id -> article text (as `load_article` reads it), used to locate evidence.
        splits: split name -> article ids (e.g. `dev` and `test`); each split gets its own totals
            under `splits`, and each per-article entry names its split.

    Returns:
        The report dict (the content of report.json).
    """
    split_of = {article_id: name for name, ids in (splits or {}).items() for article_id in ids}
    per_article = []
    for article_id in sorted(gold):
        entry = score_article(predictions.get(article_id), gold[article_id], articles.get(article_id, ""))
        entry["split"] = split_of.get(article_id)
        per_article.append(entry)
    scored_predictions = [predictions[a] for a in sorted(gold) if a in predictions]
    return {
        **_totals(per_article),
        "splits": {
            name: {"articles": len(ids), **_totals([e for e in per_article if e["split"] == name])}
            for name, ids in (splits or {}).items()
        },
        "per_article": per_article,
        "run": {
            "backend": _run_label(scored_predictions, "backend"),
            "model": _run_label(scored_predictions, "model"),
            "articles": len(gold),
            "missing_predictions": sorted(set(gold) - set(predictions)),
            "extra_predictions": sorted(set(predictions) - set(gold)),
        },
    }


def load_splits(path: str | Path, gold_ids: Iterable[str]) -> dict[str, list[str]]:
    """Read a split file: TOML with one list of article ids per split name (`dev = [...]`, `test = [...]`).

    Raises:
        EvalDataError: unreadable TOML, an id with no gold label, or an article in two splits.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read the split file ({exc})") from exc
    known = set(gold_ids)
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name, ids in data.items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise EvalDataError(f"{path}: {name}: expected a list of article ids")
        for article_id in ids:
            if article_id not in known:
                raise EvalDataError(f"{path}: {name}: {article_id!r} has no gold label")
            if article_id in seen:
                raise EvalDataError(f"{path}: {article_id!r} is in both {seen[article_id]!r} and {name!r}")
            seen[article_id] = name
        splits[name] = list(ids)
    return splits


# --- Loading files ------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise EvalDataError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read ({exc})") from exc


def _load_json_dir(directory: Path, kind: str) -> dict[str, ArticleSummary]:
    if not directory.is_dir():
        raise EvalDataError(f"{directory}: no such {kind} directory")
    loaded: dict[str, ArticleSummary] = {}
    for path in sorted(directory.glob("*.json")):
        summary = parse_summary(_read_text(path), str(path))
        if summary.article_id != path.stem:
            raise EvalDataError(
                f"{path}: article_id: {summary.article_id!r} does not match the file name {path.stem!r}"
            )
        loaded[summary.article_id] = summary
    if not loaded:
        raise EvalDataError(f"{directory}: no {kind} files (*.json) found")
    return loaded


def load_gold(directory: str | Path) -> dict[str, ArticleSummary]:
    """Load every `<article_id>.json` gold label in a directory.

    Raises:
        EvalDataError: missing or empty directory, a malformed file (the message names the file and
            the field), or an article_id that differs from the file name.
    """
    return _load_json_dir(Path(directory), "gold")


def load_predictions(path: str | Path) -> dict[str, ArticleSummary]:
    """Load a run's output: a results file (JSONL, or one JSON object) or a directory of `.json` files.

    An article on several lines counts once, by its last line (a results file is appended to).

    Raises:
        EvalDataError: unreadable file, or a malformed line (named as `file:line` with the field).
    """
    path = Path(path)
    if path.is_dir():
        return _load_json_dir(path, "prediction")
    if not path.exists():
        raise EvalDataError(f"{path}: no such file")
    try:
        return {summary.article_id: summary for summary in read_results(path, strict=True)}
    except InputError as exc:
        if isinstance(exc, EvalDataError):
            raise
        raise EvalDataError(str(exc)) from exc


def check_gold_grounded(gold: Mapping[str, ArticleSummary], articles: Mapping[str, str], gold_dir: Path) -> None:
    """Every gold evidence must be a verbatim substring of its article, or scoring would be unfair.

    Raises:
        EvalDataError: naming the gold file and the field whose evidence is not in the article.
    """
    for article_id, label in sorted(gold.items()):
        text = articles[article_id]
        for b, body in enumerate(label.bodies):
            items: list[tuple[str, Metric | Initiative]] = [
                *((f"metrics[{i}]", metric) for i, metric in enumerate(body.metrics)),
                *((f"key_initiatives[{i}]", item) for i, item in enumerate(body.key_initiatives)),
            ]
            for field, item in items:
                if item.evidence not in text:
                    raise EvalDataError(
                        f"{gold_dir / (article_id + '.json')}: bodies[{b}].{field}.evidence: "
                        f"{item.evidence!r} is not in the article text"
                    )


def load_article_texts(directory: str | Path, article_ids: Iterable[str]) -> dict[str, str]:
    """Read `<directory>/<article_id>.txt` for each id, as `load_article` decodes it (spans refer to this).

    Raises:
        EvalDataError: an article file is missing or unreadable.
    """
    directory = Path(directory)
    texts: dict[str, str] = {}
    for article_id in article_ids:
        path = directory / f"{article_id}.txt"
        try:
            texts[article_id] = load_article(path, article_id=article_id).text
        except InputError as exc:
            raise EvalDataError(f"gold label {article_id!r} has no readable article: {exc}") from exc
    return texts


@dataclass(frozen=True)
class EvalRun:
    """A scored run and the article texts it was scored on (the report shows them highlighted)."""

    result: dict[str, Any]
    articles: dict[str, str]


def _summarise_all(
    summarise: Callable[[Path], ArticleSummary], articles_dir: Path, article_ids: Sequence[str]
) -> tuple[dict[str, ArticleSummary], list[dict[str, str]]]:
    """Run the summariser on each article; one failing article is scored as all misses, not fatal.

    Bad settings or refused credentials would fail every article alike, so those stop the run.
    """
    predicted: dict[str, ArticleSummary] = {}
    failed: list[dict[str, str]] = []
    for article_id in article_ids:
        try:
            predicted[article_id] = summarise(articles_dir / f"{article_id}.txt")
        except (AuthError, ConfigError):
            raise
        except SummarizerError as exc:
            failed.append({"article_id": article_id, "error": str(exc)})
    return predicted, failed


def run_eval(
    *,
    gold_dir: str | Path = "eval/gold",
    articles_dir: str | Path = "eval/articles",
    predictions: str | Path | None = None,
    summarise: Callable[[Path], ArticleSummary] | None = None,
    backend: str | None = None,
    model: str | None = None,
    split_file: str | Path | None = None,
) -> EvalRun:
    """Score either a saved run (`predictions`) or a fresh one (`summarise` is called on each article).

    Args:
        gold_dir: directory of gold `<article_id>.json` files.
        articles_dir: directory of the matching `<article_id>.txt` articles.
        predictions: a JSONL file or directory of `.json` summaries to score.
        summarise: called with each article's path when no `predictions` are given
            (the CLI passes the pipeline's summarise_article bound to its settings).
        backend, model: recorded in `run` when the predictions do not say themselves.
        split_file: TOML naming the splits (`dev`, `test`); default `split.toml` beside the gold
            folder when there is one.

    Returns:
        The scored run; `result["run"]["failed"]` lists articles the summariser failed on (scored as
        all misses).

    Raises:
        EvalDataError: bad gold or prediction files, or neither/both of `predictions` and `summarise`.
        AuthError, ConfigError: from `summarise`; they would fail every article, so the run stops.
    """
    if predictions is not None and summarise is not None:
        raise EvalDataError("give either a predictions file or a backend to run, not both")
    gold = load_gold(gold_dir)
    articles = load_article_texts(articles_dir, sorted(gold))
    check_gold_grounded(gold, articles, Path(gold_dir))
    failed: list[dict[str, str]] = []
    if predictions is not None:
        predicted = load_predictions(predictions)
    elif summarise is not None:
        predicted, failed = _summarise_all(summarise, Path(articles_dir), sorted(gold))
    else:
        raise EvalDataError("nothing to score: give a predictions file or a backend to run")
    if split_file is None and (beside := Path(gold_dir).parent / "split.toml").is_file():
        split_file = beside
    splits = load_splits(split_file, gold) if split_file is not None else None
    result = score_run(predicted, gold, articles, splits)
    result["run"]["failed"] = failed if summarise is not None else []
    result["run"]["backend"] = result["run"]["backend"] or backend
    result["run"]["model"] = result["run"]["model"] or model
    return EvalRun(result=result, articles=articles)
