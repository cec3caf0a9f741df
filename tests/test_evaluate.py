"""Scoring rules, on small made-up articles (nothing here comes from the eval set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval_samples import sample_run
from summarizer.errors import AuthError, EvalDataError, ProviderError
from summarizer.evaluate import (
    bigram_dice,
    canonical_body_key,
    load_gold,
    load_predictions,
    load_splits,
    match_bodies,
    rouge_l,
    run_eval,
    score_run,
    units_agree,
)
from summarizer.schema import ArticleSummary, BodySummary, Initiative, Meta, Metric, Usage

TEXT = (
    "白鹭市政协今年召开协商会12场,收到提案300件,其中立案280件。"
    "委员们开展“河湖同护”行动,建立委员联络站15个,走访群众2000余人。"
)


def metric(name: str, value: float, unit: str, evidence: str, *, optional: bool = False) -> Metric:
    return Metric(name=name, value=value, unit=unit, evidence=evidence, optional=optional)


def body(
    name: str = "白鹭市政协",
    *,
    year: int | None = 2023,
    metrics: list[Metric] | None = None,
    initiatives: list[Initiative] | None = None,
    summary: str = "",
) -> BodySummary:
    return BodySummary(
        body=name,
        level="municipal",
        year=year,
        summary=summary,
        metrics=metrics or [],
        key_initiatives=initiatives or [],
    )


def score_one(pred: list[BodySummary], gold: list[BodySummary], text: str = TEXT) -> dict[str, Any]:
    return score_run(
        {"a": ArticleSummary(article_id="a", bodies=pred)},
        {"a": ArticleSummary(article_id="a", bodies=gold)},
        {"a": text},
    )


# --- body names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "白鹭市政协",
        "政协白鹭市委员会",
        "中国人民政治协商会议白鹭市委员会",
        "白鹭市第九届政协",
        "白鹭市九届政协",
    ],
)
def test_spellings_of_one_committee_share_a_key(name: str) -> None:
    assert canonical_body_key(name) == canonical_body_key("白鹭市政协") == "白鹭"


def test_autonomous_region_names_match_only_when_the_place_is_named() -> None:
    assert canonical_body_key("自治区十三届政协") is None
    assert canonical_body_key("海风自治区十三届政协") == canonical_body_key("海风自治区政协") == "海风"
    pairs, lone_pred, lone_gold = match_bodies([body("自治区十三届政协")], [body("海风自治区政协")])
    assert pairs == [] and lone_pred == [0] and lone_gold == [0]


@pytest.mark.parametrize("name", ["自治区政协", "市政协", "区政协", "我市政协"])
def test_a_body_without_a_place_matches_nothing(name: str) -> None:
    assert canonical_body_key(name) is None
    assert match_bodies([body(name)], [body(name)])[0] == []


def test_bodies_match_one_to_one() -> None:
    result = score_one([body("白鹭市政协"), body("政协白鹭市委员会")], [body("白鹭市政协")])
    assert result["bodies"]["tp"] == 1
    assert result["bodies"]["fp"] == 1
    assert result["bodies"]["precision"] == 0.5
    assert result["bodies"]["recall"] == 1.0


def test_a_parent_area_prefix_still_matches() -> None:
    pairs, _, _ = match_bodies([body("东海市松涛新区政协")], [body("松涛新区政协")])
    assert pairs == [(0, 0)]


def test_year_accuracy_counts_matched_bodies_only() -> None:
    result = score_one(
        [body("白鹭市政协", year=2022), body("黄沙县政协", year=2023)],
        [body("白鹭市政协", year=2023)],
    )
    assert result["year"] == {"accuracy": 0.0, "correct": 0, "total": 1}


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [("名", "人", True), ("位", "名", True), ("场", "次", True), ("场次", "次", True), ("份", "篇", True),
     ("件次", "件", True), ("%", "％", True), ("个", "个", True), ("人次", "人", False), ("件", "篇", False),
     ("个", "家", False)],
)  # fmt: skip
def test_unit_families(a: str, b: str, agree: bool) -> None:
    assert units_agree(a, b) is agree


def test_metric_matches_across_a_unit_family() -> None:
    gold = [metric("协商会", 12, "次", "召开协商会12场")]
    pred = [metric("协商会次数", 12, "场", "协商会12场")]
    assert score_one([body(metrics=pred)], [body(metrics=gold)])["metrics"]["f1"] == 1.0


def test_metric_with_a_wrong_value_is_both_a_miss_and_a_false_positive() -> None:
    gold = [metric("提案", 300, "件", "收到提案300件")]
    pred = [metric("提案", 280, "件", "立案280件")]
    result = score_one([body(metrics=pred)], [body(metrics=gold)])
    assert (result["metrics"]["tp"], result["metrics"]["fp"], result["metrics"]["fn"]) == (0, 1, 1)
    details = result["per_article"][0]["details"]["metrics"]
    assert details["missed"][0]["evidence"] == "收到提案300件"
    assert details["false_positive"][0]["span"] == (TEXT.index("立案280件"), TEXT.index("立案280件") + 6)


def test_metric_needs_a_similar_name_or_evidence_besides_the_value() -> None:
    gold = [metric("委员联络站", 15, "个", "建立委员联络站15个")]
    inside = [metric("站点", 15, "个", "15个")]  # evidence inside the gold evidence
    by_name = [metric("联络站", 15, "个", "联络站")]  # name inside the gold name
    far = [metric("河湖行动", 15, "个", "开展“河湖同护”行动")]  # right number, wrong thing
    assert score_one([body(metrics=inside)], [body(metrics=gold)])["metrics"]["tp"] == 1
    assert score_one([body(metrics=by_name)], [body(metrics=gold)])["metrics"]["tp"] == 1
    assert score_one([body(metrics=far)], [body(metrics=gold)])["metrics"]["tp"] == 0


def test_metric_evidences_that_overlap_in_the_article_match() -> None:
    gold = [metric("走访群众", 2000, "人", "走访群众2000余人")]
    pred = [metric("人数", 2000, "名", "联络站15个,走访群众2000")]  # overlapping spans, no containment
    assert score_one([body(metrics=pred)], [body(metrics=gold)])["metrics"]["tp"] == 1


def test_metrics_match_one_to_one() -> None:
    gold = [metric("协商会", 12, "场", "召开协商会12场")]
    pred = [metric("协商会", 12, "场", "召开协商会12场"), metric("协商会", 12, "场", "协商会12场")]
    result = score_one([body(metrics=pred)], [body(metrics=gold)])
    assert (result["metrics"]["tp"], result["metrics"]["fp"], result["metrics"]["fn"]) == (1, 1, 0)


def test_optional_gold_metric_neither_required_nor_punished() -> None:
    gold = [
        metric("提案", 300, "件", "收到提案300件"),
        metric("联络站", 15, "个", "委员联络站15个", optional=True),
    ]
    found = score_one([body(metrics=[gold[0], metric("联络站", 15, "个", "联络站15个")])], [body(metrics=gold)])
    skipped = score_one([body(metrics=[gold[0]])], [body(metrics=gold)])
    for result in (found, skipped):
        assert (result["metrics"]["tp"], result["metrics"]["fp"], result["metrics"]["fn"]) == (1, 0, 0)
    assert found["per_article"][0]["details"]["metrics"]["ignored"][0]["gold"]["optional"] is True


def test_metrics_of_unmatched_bodies_are_false_positives_and_misses() -> None:
    gold = [body("白鹭市政协", metrics=[metric("提案", 300, "件", "收到提案300件")])]
    pred = [body("黄沙县政协", metrics=[metric("提案", 300, "件", "收到提案300件")])]
    result = score_one(pred, gold)
    assert (result["metrics"]["tp"], result["metrics"]["fp"], result["metrics"]["fn"]) == (0, 1, 1)


# --- initiatives ---------------------------------------------------------------------------------


def test_initiatives_match_by_evidence_containment_and_one_to_one() -> None:
    gold = [Initiative(name="河湖同护行动", evidence="开展“河湖同护”行动")]
    pred = [
        Initiative(name="河湖保护", evidence="“河湖同护”"),
        Initiative(name="河湖同护", evidence="开展“河湖同护”行动"),
    ]
    result = score_one([body(initiatives=pred)], [body(initiatives=gold)])
    assert (result["initiatives"]["tp"], result["initiatives"]["fp"], result["initiatives"]["fn"]) == (
        1,
        1,
        0,
    )


def test_unrelated_initiative_is_not_a_match() -> None:
    gold = [Initiative(name="委员联络站", evidence="建立委员联络站15个")]
    pred = [Initiative(name="协商会", evidence="召开协商会12场")]
    result = score_one([body(initiatives=pred)], [body(initiatives=gold)])
    assert result["initiatives"]["f1"] == 0.0


# --- grounding, summaries, cost -----------------------------------------------------------------


def test_grounding_rate_counts_verbatim_evidence() -> None:
    pred = body(
        metrics=[metric("提案", 300, "件", "收到提案300件"), metric("提案", 300, "件", "提案共300件")],
        initiatives=[Initiative(name="联络站", evidence="建立委员联络站15个")],
    )
    result = score_one([pred], [body()])
    assert result["grounding_rate"] == pytest.approx(2 / 3)
    assert result["grounding"] == {"grounded": 2, "items": 3}


def test_rouge_l_at_character_level() -> None:
    assert rouge_l("白鹭市政协召开协商会", "白鹭市政协召开协商会") == 1.0
    assert rouge_l("", "白鹭") == 0.0
    # LCS "ABD" (3) of "ABCD" (4) and "ABD" (3): P=1, R=0.75.
    assert rouge_l("ABD", "ABCD") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("A B D", "ABCD") == rouge_l("ABD", "ABCD")  # whitespace does not count


def test_summary_rouge_averages_matched_bodies() -> None:
    result = score_one([body(summary="ABD")], [body(summary="ABCD")])
    assert result["summary_rouge_l"] == pytest.approx(6 / 7)


def test_cost_per_article_from_usage() -> None:
    usage = Usage(requests=3, prompt_tokens=1000, completion_tokens=200)
    pred = ArticleSummary(article_id="a", bodies=[], meta=Meta(backend="openai", model="m1", usage=usage))
    result = score_run({"a": pred}, {"a": ArticleSummary(article_id="a"), "b": ArticleSummary(article_id="b")}, {})
    assert result["cost"]["tokens_per_article"] == 1200
    assert result["cost"]["requests_per_article"] == 3
    assert result["run"]["backend"] == "openai" and result["run"]["model"] == "m1"
    assert result["run"]["missing_predictions"] == ["b"]


def test_bigram_dice_ignores_punctuation() -> None:
    assert bigram_dice("“河湖同护”", "河湖同护") == 1.0
    assert bigram_dice("河湖", "山林") == 0.0


def test_occurrences_finds_every_one() -> None:
    from summarizer.ground import occurrences  # the one place evidence is located, scoring included

    assert occurrences("AA", "AAA") == [(0, 2), (1, 3)]
    assert occurrences("", "AAA") == []


# --- files ---------------------------------------------------------------------------------------


def write_gold(directory: Path, article_id: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{article_id}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def gold_data(value: Any = 300) -> dict[str, Any]:
    return {
        "article_id": "x",
        "bodies": [
            {
                "body": "白鹭市政协",
                "level": "municipal",
                "year": 2023,
                "metrics": [
                    {"name": "协商会", "value": 12, "unit": "场", "evidence": "召开协商会12场"},
                    {"name": "立案", "value": 280, "unit": "件", "evidence": "立案280件"},
                    {"name": "提案", "value": value, "unit": "件", "evidence": "收到提案300件"},
                ],
            }
        ],
    }


def test_malformed_gold_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = write_gold(tmp_path / "gold", "x", gold_data(value="三百"))
    with pytest.raises(EvalDataError) as caught:
        load_gold(tmp_path / "gold")
    assert str(caught.value).startswith(f"{path}: bodies[0].metrics[2].value: Input should be a valid number")


def test_gold_file_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"x\.json: not valid JSON"):
        load_gold(tmp_path)


def test_gold_article_id_must_match_file_name(tmp_path: Path) -> None:
    write_gold(tmp_path, "y", gold_data())
    with pytest.raises(EvalDataError, match=r"y\.json: article_id: 'x' does not match"):
        load_gold(tmp_path)


def test_predictions_from_jsonl_name_the_line(tmp_path: Path) -> None:
    good = ArticleSummary(article_id="x").model_dump_json()
    path = tmp_path / "run.jsonl"
    path.write_text(good + "\n\n" + '{"article_id": "y", "bodies": [{"body": "", "level": "county"}]}\n')
    with pytest.raises(EvalDataError, match=r"run\.jsonl:3: bodies\[0\]\.body: String should have at least 1"):
        load_predictions(path)
    path.write_text(good + "\n")
    assert list(load_predictions(path)) == ["x"]


def test_run_eval_scores_a_saved_run_and_checks_gold_evidence(tmp_path: Path) -> None:
    write_gold(tmp_path / "gold", "x", gold_data())
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "x.txt").write_text(TEXT, encoding="utf-8")
    run = run_eval(gold_dir=tmp_path / "gold", articles_dir=tmp_path / "articles", predictions=tmp_path / "gold")
    assert run.result["metrics"]["f1"] == 1.0
    assert run.articles["x"] == TEXT

    broken = gold_data()
    broken["bodies"][0]["metrics"][1]["evidence"] = "立案二百八十件"
    write_gold(tmp_path / "gold", "x", broken)
    with pytest.raises(EvalDataError, match=r"x\.json: bodies\[0\]\.metrics\[1\]\.evidence: .* not in the article"):
        run_eval(gold_dir=tmp_path / "gold", articles_dir=tmp_path / "articles", predictions=tmp_path / "gold")


def test_run_eval_calls_the_summariser_for_each_article(tmp_path: Path) -> None:
    write_gold(tmp_path / "gold", "x", gold_data())
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "x.txt").write_text(TEXT, encoding="utf-8")
    seen: list[Path] = []

    def summarise(path: Path) -> ArticleSummary:
        seen.append(path)
        return ArticleSummary(article_id=path.stem, bodies=[body()], meta=Meta(backend="fake"))

    run = run_eval(gold_dir=tmp_path / "gold", articles_dir=tmp_path / "articles", summarise=summarise)
    assert seen == [tmp_path / "articles" / "x.txt"]
    assert run.result["bodies"]["f1"] == 1.0
    assert run.result["metrics"]["recall"] == 0.0
    assert run.result["run"]["backend"] == "fake"


def test_run_eval_scores_a_failed_article_as_misses_but_stops_on_bad_credentials(tmp_path: Path) -> None:
    write_gold(tmp_path / "gold", "x", gold_data())
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "x.txt").write_text(TEXT, encoding="utf-8")

    def timing_out(path: Path) -> ArticleSummary:
        raise ProviderError("endpoint timed out after 5 attempts")

    run = run_eval(gold_dir=tmp_path / "gold", articles_dir=tmp_path / "articles", summarise=timing_out)
    assert run.result["run"]["failed"] == [{"article_id": "x", "error": "endpoint timed out after 5 attempts"}]
    assert run.result["metrics"]["fn"] == 3 and run.result["per_article"][0]["predicted"] is False

    def refused(path: Path) -> ArticleSummary:
        raise AuthError("401: the API key was refused")

    with pytest.raises(AuthError):
        run_eval(gold_dir=tmp_path / "gold", articles_dir=tmp_path / "articles", summarise=refused)


def test_each_split_is_scored_on_its_own_articles(tmp_path: Path) -> None:
    whole, _ = sample_run()
    result, _ = sample_run({"dev": [], "test": ["a1"]})
    assert result["splits"]["test"]["metrics"] == whole["metrics"]
    assert result["splits"]["test"]["articles"] == 1
    assert result["splits"]["dev"]["metrics"]["tp"] == 0 and result["splits"]["dev"]["articles"] == 0
    assert result["per_article"][0]["split"] == "test"


def test_split_file_errors_name_the_file_and_the_article(tmp_path: Path) -> None:
    split = tmp_path / "split.toml"
    split.write_text('dev = ["a1"]\ntest = ["a1"]\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match="'a1' is in both 'dev' and 'test'"):
        load_splits(split, ["a1"])
    split.write_text('test = ["zz"]\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"split\.toml: test: 'zz' has no gold label"):
        load_splits(split, ["a1"])
    split.write_text("test = [\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="cannot read the split file"):
        load_splits(split, ["a1"])
