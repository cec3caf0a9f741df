"""The OpenAI backend end to end: the real `openai` client against the local fake endpoint."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAI, Response, Seen, chat, error
from helpers import ARTICLES, DUMMY_KEY, VirtualClock, assert_grounded, assert_matches_gold, fast_settings
from summarizer.backends import create_backend
from summarizer.backends.openai_backend import OpenAIBackend, parse_reply, retry_after_seconds
from summarizer.errors import ConfigError, ProviderError
from summarizer.limits import Limiter, Permit
from summarizer.pipeline import summarise_article
from summarizer.schema import Reply, strict_json_schema


def gold_reply(fake: FakeOpenAI, seen: Seen) -> dict[str, Any]:
    """What a perfect model would answer, for responders that then alter it."""
    return fake.gold.reply(seen)


@pytest.mark.parametrize("path", ARTICLES, ids=lambda p: p.stem)
def test_perfect_model_reproduces_every_gold_label(fake: FakeOpenAI, path: Path) -> None:
    """A model that quotes exactly the gold items inside each chunk yields the gold summary after merging."""
    summary = summarise_article(path, fast_settings())
    assert_matches_gold(summary, path)
    assert_grounded(summary, path)
    assert summary.meta is not None and summary.meta.backend == "openai" and summary.meta.model == "fake-model"
    assert summary.meta.usage.requests == fake.count > 0
    assert summary.meta.warnings == []


def test_request_carries_strict_json_schema_and_prompt(fake: FakeOpenAI) -> None:
    summarise_article(ARTICLES[0], fast_settings(temperature=0.2, max_output_tokens=3000))
    seen = next(s for s in fake.requests if "三级政协联动开展" in s.chunk_text)
    response_format = seen.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"] == strict_json_schema(Reply)
    assert seen.body["model"] == "fake-model"
    assert seen.body["temperature"] == 0.2 and seen.body["max_tokens"] == 3000
    assert seen.messages[0]["role"] == "system" and "本节政协:内蒙古自治区政协" in seen.prompt
    assert all(s.body["response_format"] == response_format for s in fake.requests)
    assert seen.headers["authorization"] == f"Bearer {DUMMY_KEY}"


def test_second_run_is_served_from_cache(fake: FakeOpenAI) -> None:
    first = summarise_article(ARTICLES[1], fast_settings())
    calls = fake.count
    empty = sum(1 for seen in fake.requests if not fake.gold.reply(seen)["bodies"])
    second = summarise_article(ARTICLES[1], fast_settings())
    assert fake.count == calls + empty  # only chunks that found nothing are asked again (not cached)
    assert second.bodies == first.bodies
    assert second.meta is not None and second.meta.cache_hits == second.meta.chunks - empty
    assert second.meta.usage.requests == empty


def test_broken_json_is_reasked_then_succeeds(fake: FakeOpenAI) -> None:
    fake.script.append(chat('{"bodies": [{"body": "内蒙古自治区政协", '))
    summary = summarise_article(ARTICLES[0], fast_settings())
    assert_matches_gold(summary, ARTICLES[0])
    reask = next(s for s in fake.requests if len(s.messages) > 2)
    assert reask.messages[-2] == {"role": "assistant", "content": '{"bodies": [{"body": "内蒙古自治区政协", '}
    assert "not valid JSON" in reask.messages[-1]["content"]
    assert summary.meta is not None
    assert summary.meta.usage.requests == fake.count == summary.meta.chunks + 1
    assert summary.meta.usage.prompt_tokens == 100 * fake.count  # the failed attempt's tokens count too
    assert summary.meta.usage.retries == 1


def test_truncated_reply_splits_the_chunk(fake: FakeOpenAI) -> None:
    """A chunk whose reply hits the token limit is halved, never sent again as is."""
    limit = 700

    def answer(seen: Seen) -> Response:
        if len(seen.chunk_text) > limit:
            return chat('{"bodies": [{"body": "呼和浩特市政协", "level": "munic', finish_reason="length")
        return chat(json.dumps(gold_reply(fake, seen), ensure_ascii=False))

    fake.default = answer
    summary = summarise_article(ARTICLES[1], fast_settings())
    assert_grounded(summary, ARTICLES[1])
    assert summary.meta is not None
    assert fake.count > summary.meta.chunks
    assert summary.meta.usage.requests == fake.count  # the truncated attempts are counted too
    sizes = [len(s.chunk_text) for s in fake.requests]
    assert max(sizes) > limit and min(sizes) <= limit
    bodies = [json.dumps(s.body, sort_keys=True) for s in fake.requests]
    assert len(set(bodies)) == len(bodies)  # no identical retry
    assert [b.body for b in summary.bodies] == ["呼和浩特市政协"]
    assert len(summary.bodies[0].metrics) >= 20


def test_ungrounded_item_is_dropped_with_warning(fake: FakeOpenAI) -> None:
    def answer(seen: Seen) -> Response:
        reply = gold_reply(fake, seen)
        bodies = reply["bodies"]
        assert isinstance(bodies, list) and bodies
        bodies[0]["key_initiatives"].append({"name": "虚构的数字政协平台", "evidence": "建成全国首个元宇宙政协大厅"})
        return chat(json.dumps(reply, ensure_ascii=False))

    fake.default = answer
    settings = fast_settings()
    summary = summarise_article(ARTICLES[0], settings)
    names = [i.name for b in summary.bodies for i in b.key_initiatives]
    assert "虚构的数字政协平台" not in names
    assert_matches_gold(summary, ARTICLES[0])
    assert summary.meta is not None
    assert any("虚构的数字政协平台" in w and "dropped" in w for w in summary.meta.warnings)
    # The model was told what was wrong before the item was dropped.
    reasks = [s for s in fake.requests if len(s.messages) > 2]
    assert reasks and "建成全国首个元宇宙政协大厅" in reasks[0].messages[-1]["content"]
    assert fake.count == summary.meta.chunks * (settings.reask_attempts + 1)


def test_chunk_boundary_duplicates_are_merged(fake: FakeOpenAI) -> None:
    path = ARTICLES[1]
    summary = summarise_article(path, fast_settings(chunk_tokens=500, chunk_overlap=200))
    # Overlapping chunks really did report some items twice...
    reported = Counter(
        m["evidence"] for s in fake.requests for b in gold_reply(fake, s)["bodies"] for m in b["metrics"]
    )
    assert max(reported.values()) >= 2
    # ...yet each appears once in the output.
    keys = [(m.span, m.value, m.unit) for b in summary.bodies for m in b.metrics]
    assert len(keys) == len(set(keys))
    spans = [i.span for b in summary.bodies for i in b.key_initiatives]
    assert len(spans) == len(set(spans))
    assert_matches_gold(summary, path)


def test_json_schema_refused_falls_back_to_json_object_and_remembers(fake: FakeOpenAI) -> None:
    refused = error(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.")

    def answer(seen: Seen) -> Response:
        if seen.body["response_format"]["type"] == "json_schema":
            return refused
        return chat(json.dumps(gold_reply(fake, seen), ensure_ascii=False))

    fake.default = answer
    summary = summarise_article(ARTICLES[1], fast_settings(concurrency=1))
    assert_matches_gold(summary, ARTICLES[1])
    kinds = [s.body["response_format"]["type"] for s in fake.requests]
    assert kinds == ["json_schema"] + ["json_object"] * (len(kinds) - 1)


def test_json_mode_schema_does_not_fall_back(fake: FakeOpenAI) -> None:
    fake.default = lambda seen: error(400, "response_format json_schema is not supported")
    with pytest.raises(ProviderError, match="HTTP 400"):
        summarise_article(ARTICLES[0], fast_settings(json_mode="schema", concurrency=1))


def test_json_mode_object_sends_json_object(fake: FakeOpenAI) -> None:
    summarise_article(ARTICLES[0], fast_settings(json_mode="object"))
    assert {s.body["response_format"]["type"] for s in fake.requests} == {"json_object"}


def test_missing_model_is_a_clear_config_error(fake: FakeOpenAI) -> None:
    with pytest.raises(ConfigError, match="--model"):
        create_backend("openai", fast_settings(model=None))


def test_missing_key_and_base_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend(fast_settings())


def test_key_and_base_url_are_read_when_the_client_is_built(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing OPENAI_* after import takes effect; settings.base_url beats OPENAI_BASE_URL."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    summary = summarise_article(ARTICLES[0], fast_settings(base_url=fake.base_url))
    assert summary.bodies and fake.count == 2


def test_local_server_without_key(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    summary = summarise_article(ARTICLES[0], fast_settings())
    assert summary.bodies and fake.count == 2


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "empty"),
        ("1" * 5000, "digits"),
        ('{"bodies": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests deeper"),
        ('{"bodies": [{"body": "x", "level": "county", "year": NaN}]}', "NaN"),
        ('{"bodies": [], "bodies": []}', "twice"),
        ('{"bodies": [{"body": "x", "level": "county", "year": 1e999}]}', "not finite"),
        ('{"bodies": "none"}', "required format"),
        (
            '{"bodies": [{"body": "x", "level": "town", "year": null, "summary": "", "key_initiatives": [], '
            '"metrics": []}]}',
            "level",
        ),
        ("x" * 2_100_000, "larger than"),
    ],
)
def test_hostile_replies_are_rejected_with_a_reason(content: str, problem: str) -> None:
    from summarizer.backends.openai_backend import ReplyError

    with pytest.raises(ReplyError, match=problem):
        parse_reply(content)


def test_fenced_reply_is_accepted() -> None:
    assert parse_reply('```json\n{"bodies": []}\n```') == Reply(bodies=[])


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_rpm_paces_every_attempt_including_retries(fake: FakeOpenAI) -> None:
    """--rpm spaces request starts evenly across chunks, retries and re-asks: no burst at start."""
    clock = VirtualClock()
    starts: list[float] = []

    class Recording(Limiter):
        @contextlib.asynccontextmanager
        async def request(self, tokens: int = 0) -> AsyncIterator[Permit]:
            async with super().request(tokens) as permit:
                starts.append(permit.started_at)
                yield permit

    fake.script = [lambda seen: error(500)]  # the first attempt fails and is retried under the same pacing
    settings = fast_settings(rpm=240, concurrency=8, chunk_tokens=600, chunk_overlap=50)
    limiter = Recording(8, rpm=240, clock=clock, sleep=clock.sleep)
    summary = summarise_article(ARTICLES[0], settings, backend=OpenAIBackend(settings, limiter=limiter))
    assert summary.bodies and summary.meta is not None and summary.meta.usage.retries == 1
    assert len(starts) == fake.count >= 4, "every attempt, the retry included, went through the limiter"
    # 240 per minute: the k-th start is never before k x 0.25 s (virtual time only moves by sleeps,
    # so a start without its wait would sit at 0).
    assert all(start >= 0.25 * k - 1e-9 for k, start in enumerate(sorted(starts))), starts


def test_cache_hit_from_another_file_gets_spans_for_this_file(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The same chunk text at other offsets (another file) is served from the cache with its own spans."""
    settings = fast_settings(cache_dir=tmp_path / "cache")
    first = summarise_article(ARTICLES[0], settings)
    moved = tmp_path / ARTICLES[0].name
    moved.write_text("\n\n\n" + ARTICLES[0].read_text(encoding="utf-8"), encoding="utf-8")
    requests = fake.count
    second = summarise_article(moved, settings)
    assert fake.count == requests, "every chunk came from the cache"
    assert second.meta is not None and second.meta.cache_hits == second.meta.chunks
    assert_grounded(second, moved)
    shifted = [m.span for b in second.bodies for m in b.metrics]
    original = [m.span for b in first.bodies for m in b.metrics]
    assert shifted == [(s + 3, e + 3) for s, e in original if s is not None]  # type: ignore[misc]


ONE_CHUNK = "临洮县政协召开提案工作推进会\n发布时间:2023-05-10\n临洮县政协围绕乡村振兴开展专题协商4次。\n"


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_a_server_failing_every_time_gets_exactly_the_configured_attempts(
    fake: FakeOpenAI, tmp_path: Path, attempts: int
) -> None:
    """The first attempt runs before tenacity is set up; the attempts counted must not change."""
    import openai  # noqa: F401  (loaded, so no attempt's deadline waits for its import)

    path = tmp_path / "one.txt"
    path.write_text(ONE_CHUNK, encoding="utf-8")
    fake.default = lambda seen: error(503, "overloaded")
    with pytest.raises(ProviderError, match="HTTP 503"):
        summarise_article(path, fast_settings(use_cache=False, transport_attempts=attempts))
    assert fake.count == attempts


@pytest.mark.parametrize("failures", [1, 2])
def test_transient_failures_then_an_answer_count_as_transport_retries(
    fake: FakeOpenAI, tmp_path: Path, failures: int
) -> None:
    import openai  # noqa: F401  (loaded, so no attempt's deadline waits for its import)

    path = tmp_path / "one.txt"
    path.write_text(ONE_CHUNK, encoding="utf-8")
    fake.script.extend([error(503, "overloaded"), error(429, "slow down", headers={"retry-after": "0"})][:failures])
    summary = summarise_article(path, fast_settings(use_cache=False, transport_attempts=3))
    assert summary.meta is not None and summary.meta.usage.transport_retries == failures
    assert summary.meta.usage.requests == fake.count == failures + 1


def test_the_depth_shortcut_answers_as_the_walk_does() -> None:
    """`_too_deep` skips the character walk when too few brackets exist to nest too deep: on random
    texts of brackets, quotes and escapes, around the limit, it answers as the walk does."""
    import random

    from summarizer.backends.openai_backend import MAX_JSON_DEPTH, _json_depth, _too_deep

    rng = random.Random(7)
    pieces = ["[", "{", "]", "}", '"', "\\", "a", ",", "[[[[", "{{{{"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 2 * MAX_JSON_DEPTH)))
        assert _too_deep(text) == (_json_depth(text) > MAX_JSON_DEPTH), text
    for depth in (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1):
        text = "[" * depth + "]" * depth
        assert _too_deep(text) == (depth > MAX_JSON_DEPTH)
