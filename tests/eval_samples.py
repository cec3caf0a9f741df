"""A small made-up scored run shared by the report tests (nothing here comes from the eval set)."""

from __future__ import annotations

from typing import Any

from summarizer.evaluate import score_run
from summarizer.schema import ArticleSummary, BodySummary, Initiative, Meta, Metric, Usage

TEXT = (
    "白鹭市政协今年召开协商会12场,收到提案300件,其中立案280件。\n"
    "委员们开展“河湖同护”行动,建立委员联络站15个,走访群众2000余人。\n"
    "网页里混进了<script>alert('x')</script>这样的代码。"
)


def sample_run(splits: dict[str, list[str]] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """One article with a match, a miss, a false positive, an optional find and an ungrounded claim."""
    gold = BodySummary(
        body="白鹭市政协",
        level="municipal",
        year=2023,
        summary="白鹭市政协召开协商会,建立委员联络站。",
        metrics=[
            Metric(name="协商会", value=12, unit="场", evidence="召开协商会12场"),
            Metric(name="提案", value=300, unit="件", evidence="收到提案300件"),
            Metric(name="联络站", value=15, unit="个", evidence="委员联络站15个", optional=True),
        ],
        key_initiatives=[Initiative(name="河湖同护行动", evidence="开展“河湖同护”行动")],
    )
    pred = BodySummary(
        body="政协白鹭市委员会",
        level="municipal",
        year=2023,
        summary="白鹭市政协召开协商会。",
        metrics=[
            Metric(name="协商会", value=12, unit="次", evidence="协商会12场"),
            Metric(name="立案<b>", value=280, unit="件", evidence="立案280件"),
            Metric(name="联络站", value=15, unit="个", evidence="联络站15个"),
            Metric(name="群众", value=2000, unit="人", evidence="走访群众两千人"),
        ],
        key_initiatives=[Initiative(name="<script>alert(1)</script>", evidence="<script>alert('x')</script>")],
    )
    usage = Usage(requests=2, prompt_tokens=900, completion_tokens=100)
    result = score_run(
        {"a1": ArticleSummary(article_id="a1", bodies=[pred], meta=Meta(backend="fake", model="m", usage=usage))},
        {"a1": ArticleSummary(article_id="a1", bodies=[gold])},
        {"a1": TEXT},
        splits,
    )
    return result, {"a1": TEXT}
