"""The Batch API path: `batch --via batch-file` writes requests, a runner answers them as `vllm run-batch`
would (or the fake's Files/Batches API does), and `collect` turns the answers into the same results
as the online path, with re-ask and retry rounds for replies that fail."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fake_openai import FakeOpenAI, Response, Seen, chat, error
from helpers import ARTICLES, DUMMY_KEY, assert_grounded, assert_matches_gold
from summarizer.batchfile import collect_replies, load_state, write_requests
from summarizer.cli import app
from summarizer.prices import batch_prices, estimate_cost, load_prices
from summarizer.schema import ArticleSummary
from summarizer.settings import load_settings

SEEDS = [p for p in ARTICLES if p.name[:4] in ("000_", "001_", "002_", "003_", "004_")]
Tamper = Callable[[int, dict[str, Any], dict[str, Any]], dict[str, Any]]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    for path in SEEDS:
        shutil.copy(path, folder / path.name)
    assert len(SEEDS) == 5
    return folder


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def replay(requests: Path, base_url: str, out: Path, tamper: Tamper | None = None) -> int:
    """Answer a requests file as `vllm run-batch` does: POST each body to the server's
    /v1/chat/completions and write one output line per request in the Batch API format."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    lines = []
    for number, raw in enumerate(requests.read_text(encoding="utf-8").splitlines()):
        request = json.loads(raw)
        assert request["method"] == "POST" and request["url"] == "/v1/chat/completions"
        post = urllib.request.Request(
            base_url + "/chat/completions",
            data=json.dumps(request["body"], ensure_ascii=False).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with opener.open(post, timeout=10) as answer:
                status, body = answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as failure:
            status, body = failure.code, json.loads(failure.read())
        line = {
            "id": f"vllm-{number}",
            "custom_id": request["custom_id"],
            "response": {"status_code": status, "request_id": f"req-{number}", "body": body},
            "error": None,
        }
        lines.append(tamper(number, request, line) if tamper else line)
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def results(path: Path) -> dict[str, ArticleSummary]:
    summaries = [ArticleSummary.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_id = {s.article_id: s for s in summaries}
    assert len(by_id) == len(summaries), "an article has two lines"
    return by_id


def comparable(summary: ArticleSummary) -> dict[str, Any]:
    """What a reader gets from a summary: bodies, metrics, initiatives, evidence, spans, and the meta
    that says how it was made (not timing, usage or cache counts)."""
    data = summary.model_dump(mode="json")
    data["meta"] = {k: v for k, v in data["meta"].items() if k not in ("usage", "cache_hits")}
    return data


def request_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def garble(chunk_of: str) -> Tamper:
    """Replace the reply to the first request for `chunk_of`'s article with text that is not JSON
    (and that quotes the API key, which must never reach a file)."""
    done: list[int] = []

    def tamper(number: int, request: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
        if request["custom_id"].startswith(chunk_of + "#") and not done:
            done.append(number)
            message = line["response"]["body"]["choices"][0]["message"]
            message["content"] = f"Sure! Authorization: Bearer {DUMMY_KEY} here is {{not json"
        return line

    return tamper


def fail_line(chunk_of: str) -> Tamper:
    """Turn the first request for `chunk_of`'s article into an error line, as the provider writes them."""
    done: list[int] = []

    def tamper(number: int, request: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
        if request["custom_id"].startswith(chunk_of + "#") and not done:
            done.append(number)
            return {**line, "response": None, "error": {"code": "server_error", "message": "the batch worker died"}}
        return line

    return tamper


def no_secret_in(folder: Path) -> None:
    """No file the tool wrote (results, errors, requests, state, downloads) holds the key."""
    written = list(folder.glob("results*"))
    assert written
    for path in written:
        assert DUMMY_KEY.encode() not in path.read_bytes(), path


# --- the round trip -------------------------------------------------------------------------------


def test_batch_file_round_trip_gives_the_online_results(fake: FakeOpenAI, seeds: Path, tmp_path: Path) -> None:
    online = cli("batch", str(seeds), "-o", "online.jsonl", "--backend", "openai", "-m", "fake-model", "-q",
                 "--cache-dir", "cache-online")  # fmt: skip
    assert online.exit_code == 0, online.stderr
    online_bodies = Counter(json.dumps(s.body, sort_keys=True) for s in fake.requests)
    fake.requests.clear()

    wrote = cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model",
                "--cache-dir", "cache-batch")  # fmt: skip
    assert wrote.exit_code == 0, wrote.stderr
    assert fake.count == 0  # writing the requests asks no model
    requests = tmp_path / "results.requests.jsonl"
    assert "requests in results.requests.jsonl for 5 articles; 0 done" in wrote.stderr
    lines = request_lines(requests)
    # Exactly the bodies the online path sent, one line per chunk, each custom_id naming its article.
    assert Counter(json.dumps(line["body"], sort_keys=True) for line in lines) == online_bodies
    assert {line["custom_id"].split("#")[0] for line in lines} == {p.stem for p in SEEDS}
    assert len({line["custom_id"] for line in lines}) == len(lines)

    replay(requests, fake.base_url, tmp_path / "output.jsonl")
    collected = cli("collect", "output.jsonl", "-o", "results.jsonl", "--cache-dir", "cache-batch")
    assert collected.exit_code == 0, collected.stderr
    assert "5 done" in collected.stderr and "0 pending" in collected.stderr and "nothing left" in collected.stderr

    got, want = results(tmp_path / "results.jsonl"), results(tmp_path / "online.jsonl")
    assert sorted(got) == sorted(want) == sorted(p.stem for p in SEEDS)
    for article_id, summary in want.items():
        assert comparable(got[article_id]) == comparable(summary), article_id
        assert got[article_id].meta is not None and summary.meta is not None
        assert got[article_id].meta.usage.requests == summary.meta.usage.requests  # one per chunk, both ways
    for path in SEEDS:
        assert_grounded(got[path.stem], path)
    assert not (tmp_path / "results.requests-2.jsonl").exists()


def test_articles_whose_chunks_are_all_cached_are_finished_without_requests(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path
) -> None:
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "first.jsonl", "-m", "fake-model").exit_code == 0
    replay(tmp_path / "first.requests.jsonl", fake.base_url, tmp_path / "out.jsonl")
    assert cli("collect", "out.jsonl", "-o", "first.jsonl").exit_code == 0
    asked = fake.count

    # collect filled the cache as an online run would: a new results file needs no request at all
    # for articles whose chunks all found something (a chunk that found nothing is never cached).
    again = cli("batch", str(seeds), "--via", "batch-file", "-o", "second.jsonl", "-m", "fake-model")
    assert again.exit_code == 0, again.stderr
    second, first = results(tmp_path / "second.jsonl"), results(tmp_path / "first.jsonl")
    pending = load_state(tmp_path / "second.jsonl").articles
    assert set(second) | {a.article_id for a in pending} == set(first)
    assert second, "no article came from the cache"
    for article_id, summary in second.items():
        assert summary.meta is not None and summary.meta.usage.requests == 0 and summary.meta.cache_hits > 0
        assert summary.bodies == first[article_id].bodies
    empty_chunks = sum(1 for p in [p for a in pending for p in a.pieces] if p.custom_id)
    assert len(request_lines(tmp_path / "second.requests.jsonl")) == empty_chunks
    assert fake.count == asked  # and writing asked nothing


# --- rounds: re-asks and retries ------------------------------------------------------------------


def test_a_garbled_reply_goes_into_a_second_round_that_completes_it(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZER_PRICES", json.dumps({"fake-model": [2.0, 8.0]}))
    settings = load_settings({"model": "fake-model"})
    output = tmp_path / "results.jsonl"
    target = SEEDS[1].stem
    written = write_requests(seeds, output, settings)
    first_ids = {line["custom_id"] for line in request_lines(written.requests_path or Path())}
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl", garble(target))

    round1 = collect_replies(tmp_path / "out-1.jsonl", output, settings)
    assert (round1.done, round1.pending, round1.failed) == (4, 1, 0) and not round1.ok
    assert round1.requests_path == tmp_path / "results.requests-2.jsonl"
    (reask,) = request_lines(round1.requests_path)
    assert reask["custom_id"].startswith(target + "#") and reask["custom_id"] not in first_ids
    # As the online re-ask: the failed reply goes back, then what was wrong with it.
    assistant, user = reask["body"]["messages"][-2:]
    assert assistant["role"] == "assistant" and "{not json" in assistant["content"]
    assert user["role"] == "user" and "not valid JSON" in user["content"]
    assert target not in results(output)

    replay(round1.requests_path, fake.base_url, tmp_path / "out-2.jsonl")
    round2 = collect_replies(tmp_path / "out-2.jsonl", output, settings)
    assert (round2.done, round2.pending, round2.failed) == (1, 0, 0) and round2.ok and round2.requests_path is None
    summary = results(output)[target]
    assert_matches_gold(summary, SEEDS[1])
    assert summary.meta is not None and summary.meta.usage.reasks == 1
    assert summary.meta.usage.requests == summary.meta.chunks + 1
    # Priced at the Batch API's half price.
    prices = load_prices(settings.prices)
    assert round2.cost_usd == estimate_cost("fake-model", round2.usage, batch_prices(prices))
    online_cost = estimate_cost("fake-model", round2.usage, prices)
    assert round2.cost_usd is not None and online_cost is not None and round2.cost_usd == pytest.approx(online_cost / 2)
    no_secret_in(tmp_path)


def test_an_error_line_is_asked_again_in_a_second_round(fake: FakeOpenAI, seeds: Path, tmp_path: Path) -> None:
    target = SEEDS[2].stem
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    first = {line["custom_id"]: line for line in request_lines(tmp_path / "results.requests.jsonl")}
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl", fail_line(target))

    round1 = cli("collect", "out-1.jsonl", "-o", "results.jsonl")
    assert round1.exit_code == 1 and "4 done" in round1.stderr and "1 pending" in round1.stderr
    assert "results.requests-2.jsonl" in round1.stderr
    (retry,) = request_lines(tmp_path / "results.requests-2.jsonl")
    assert retry == first[retry["custom_id"]]  # the same request, unchanged

    # Collecting the same output again changes nothing: no duplicate, no new round, no extra error.
    before = (tmp_path / "results.jsonl").read_bytes()
    repeat = cli("collect", "out-1.jsonl", "-o", "results.jsonl")
    assert repeat.exit_code == 1 and "matched no awaited request" in repeat.stderr
    assert (tmp_path / "results.jsonl").read_bytes() == before
    assert not (tmp_path / "results.requests-3.jsonl").exists()

    replay(tmp_path / "results.requests-2.jsonl", fake.base_url, tmp_path / "out-2.jsonl")
    round2 = cli("collect", "out-2.jsonl", "-o", "results.jsonl")
    assert round2.exit_code == 0 and "1 done" in round2.stderr and "nothing left" in round2.stderr
    summary = results(tmp_path / "results.jsonl")[target]
    assert_matches_gold(summary, SEEDS[2])
    assert summary.meta is not None and summary.meta.usage.transport_retries == 1


def test_a_chunk_that_keeps_erroring_fails_its_article_into_the_errors_file(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZER_TRANSPORT_ATTEMPTS", "2")
    target = SEEDS[3].stem
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl", fail_line(target))
    assert cli("collect", "out-1.jsonl", "-o", "results.jsonl").exit_code == 1
    replay(tmp_path / "results.requests-2.jsonl", fake.base_url, tmp_path / "out-2.jsonl", fail_line(target))
    last = cli("collect", "out-2.jsonl", "-o", "results.jsonl")
    assert last.exit_code == 1 and "1 failed" in last.stderr and "0 pending" in last.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert record["article_id"] == target and record["error"] == "ProviderError"
    assert "the batch worker died" in record["message"] and record["attempts"] == 2
    assert target not in results(tmp_path / "results.jsonl") and len(results(tmp_path / "results.jsonl")) == 4


def test_a_chunk_out_of_reasks_fails_its_article_as_online(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZER_REASK_ATTEMPTS", "0")
    target = SEEDS[4].stem
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl", garble(target))
    collected = cli("collect", "out-1.jsonl", "-o", "results.jsonl")
    assert collected.exit_code == 1 and "4 done" in collected.stderr and "1 failed" in collected.stderr
    assert "nothing left" in collected.stderr and not (tmp_path / "results.requests-2.jsonl").exists()
    (record,) = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert record["article_id"] == target and record["error"] == "OutputValidationError"
    assert (
        record["message"].startswith(f"{target} chunk 1/")
        and "no valid JSON reply after 1 attempts" in record["message"]
    )
    assert "{not json" in record["last_reply"] and record["usage"]["requests"] >= 1
    no_secret_in(tmp_path)


def test_an_article_edited_after_its_requests_were_written_is_asked_again(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path
) -> None:
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl")
    edited = seeds / SEEDS[0].name
    edited.write_text(edited.read_text(encoding="utf-8") + "\n（本文有更新）\n", encoding="utf-8")

    collected = cli("collect", "out-1.jsonl", "-o", "results.jsonl")
    assert collected.exit_code == 1 and "4 done" in collected.stderr and "changed since" in collected.stderr
    assert SEEDS[0].stem not in results(tmp_path / "results.jsonl")
    again = request_lines(tmp_path / "results.requests-2.jsonl")
    assert again and all(line["custom_id"].startswith(SEEDS[0].stem + "#") for line in again)
    assert any("本文有更新" in line["body"]["messages"][-1]["content"] for line in again)


def truncating(fake: FakeOpenAI) -> Callable[[Seen], Response]:
    """A model whose reply to a long chunk hits the output limit (the chunk must be halved)."""

    def answer(seen: Seen) -> Response:
        if len(seen.chunk_text) > 700:
            return chat('{"bodies": [{"body": "呼和浩特市政协", "level": "munic', finish_reason="length")
        return chat(json.dumps(fake.gold.reply(seen), ensure_ascii=False))

    return answer


def refusing_schema(fake: FakeOpenAI) -> Callable[[Seen], Response]:
    """A server that cannot do strict json_schema (the tool falls back to json_object)."""

    def answer(seen: Seen) -> Response:
        if seen.body["response_format"]["type"] == "json_schema":
            return error(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported.")
        return chat(json.dumps(fake.gold.reply(seen), ensure_ascii=False))

    return answer


@pytest.mark.parametrize("server", [truncating, refusing_schema], ids=["truncated", "schema-refused"])
def test_truncated_and_refused_requests_end_as_the_online_path(
    fake: FakeOpenAI, tmp_path: Path, server: Callable[[FakeOpenAI], Callable[[Seen], Response]]
) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(SEEDS[1], folder / SEEDS[1].name)
    fake.default = server(fake)
    online = cli("batch", str(folder), "-o", "online.jsonl", "-b", "openai", "-m", "fake-model", "-q", "-j", "1",
                 "--cache-dir", "cache-online")  # fmt: skip
    assert online.exit_code == 0, online.stderr

    assert cli("batch", str(folder), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    requests, rounds = tmp_path / "results.requests.jsonl", 1
    while True:
        replay(requests, fake.base_url, tmp_path / f"out-{rounds}.jsonl")
        collected = cli("collect", f"out-{rounds}.jsonl", "-o", "results.jsonl")
        if collected.exit_code == 0:
            break
        assert collected.exit_code == 1 and rounds < 4, collected.stderr
        rounds += 1
        requests = tmp_path / f"results.requests-{rounds}.jsonl"
        second = request_lines(requests)
        if server is truncating:  # halves of the chunk, named by their place in it
            assert all(line["custom_id"].split("#")[1].count(".") >= 1 for line in second)
        else:  # asked again in the next JSON mode, the schema in the prompt
            assert all(line["body"]["response_format"]["type"] == "json_object" for line in second)
    assert rounds >= 2  # a half may be cut off again and halved in turn, as online
    (got,), (want,) = results(tmp_path / "results.jsonl").values(), results(tmp_path / "online.jsonl").values()
    assert comparable(got) == comparable(want)
    assert got.meta is not None and want.meta is not None and got.meta.usage.requests > got.meta.chunks


# --- the provider's Files and Batches API ---------------------------------------------------------


def test_submit_uploads_the_requests_and_collect_by_batch_id_finishes(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path
) -> None:
    def leaky(seen: Seen) -> Response:  # a server that echoes the key inside an otherwise good reply
        reply = fake.gold.reply(seen)
        for body in reply["bodies"]:
            body["summary"] += f" (Authorization: Bearer {DUMMY_KEY})"
        return chat(json.dumps(reply, ensure_ascii=False))

    fake.default = leaky
    fake.script = [chat("Sure, here it is: {not json")]  # the batch's first request gets a garbled reply
    wrote = cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model", "--submit")
    assert wrote.exit_code == 0, wrote.stderr
    (batch_id,) = fake.batches
    assert wrote.stdout.strip() == batch_id
    batch = fake.batches[batch_id]
    assert batch["endpoint"] == "/v1/chat/completions" and batch["completion_window"] == "24h"
    purpose, uploaded = fake.files[batch["input_file_id"]]
    assert purpose == "batch" and uploaded == (tmp_path / "results.requests.jsonl").read_bytes()
    assert load_state(tmp_path / "results.jsonl").batch_id == batch_id

    # Round 1 by batch id; the garbled chunk's re-ask is submitted as a second batch at once.
    first = cli("collect", "--batch-id", batch_id, "-o", "results.jsonl", "--submit")
    assert first.exit_code == 1 and "4 done" in first.stderr and "1 pending" in first.stderr, first.stderr
    second_id = first.stdout.strip()
    assert second_id in fake.batches and second_id != batch_id
    _, uploaded = fake.files[fake.batches[second_id]["input_file_id"]]
    assert uploaded == (tmp_path / "results.requests-2.jsonl").read_bytes() and len(uploaded.splitlines()) == 1

    last = cli("collect", "--batch-id", second_id, "-o", "results.jsonl")
    assert last.exit_code == 0, last.stderr
    got = results(tmp_path / "results.jsonl")
    assert sorted(got) == sorted(p.stem for p in SEEDS)
    for path in SEEDS:
        assert_matches_gold(got[path.stem], path)
    assert "Bearer ***" in (tmp_path / "results.jsonl").read_text(encoding="utf-8")
    no_secret_in(tmp_path)  # results, requests, state and both downloaded outputs


def test_collect_of_a_batch_still_running_waits(fake: FakeOpenAI, seeds: Path, tmp_path: Path) -> None:
    fake.batch_status = "in_progress"
    wrote = cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model", "--submit")
    assert wrote.exit_code == 0, wrote.stderr
    waiting = cli("collect", "--batch-id", wrote.stdout.strip(), "-o", "results.jsonl")
    assert waiting.exit_code == 1 and "in_progress" in waiting.stderr and "collect again later" in waiting.stderr
    assert (tmp_path / "results.jsonl").read_text() == ""


# --- usage errors ---------------------------------------------------------------------------------


def test_usage_errors_exit_2(fake: FakeOpenAI, seeds: Path, tmp_path: Path) -> None:
    (tmp_path / "out.jsonl").write_text("")
    no_state = cli("collect", "out.jsonl", "-o", "results.jsonl")
    assert no_state.exit_code == 2 and "--via batch-file" in no_state.stderr
    assert cli("collect", "-o", "results.jsonl").exit_code == 2
    assert cli("collect", "out.jsonl", "--batch-id", "b", "-o", "results.jsonl").exit_code == 2
    assert cli("batch", str(seeds), "--via", "carrier-pigeon", "-o", "r.jsonl").exit_code == 2
    assert cli("batch", str(seeds), "--via", "batch-file", "-b", "rules", "-o", "r.jsonl").exit_code == 2
    assert cli("batch", str(seeds), "--submit", "-o", "r.jsonl", "-m", "fake-model").exit_code == 2
    # A requests file in the way that this tool did not write is never overwritten.
    (tmp_path / "mine.requests.jsonl").write_text("my notes\n")
    refused = cli("batch", str(seeds), "--via", "batch-file", "-o", "mine.jsonl", "-m", "fake-model")
    assert refused.exit_code == 2 and "not a requests file" in refused.stderr
    assert (tmp_path / "mine.requests.jsonl").read_text() == "my notes\n"


def test_an_article_that_failed_in_round_one_keeps_its_error_record_after_round_two(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZER_REASK_ATTEMPTS", "0")
    failed, retried = SEEDS[4].stem, SEEDS[2].stem
    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0

    def both(number: int, request: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
        return fail_line(retried)(number, request, garble(failed)(number, request, line))

    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl", both)
    assert cli("collect", "out-1.jsonl", "-o", "results.jsonl").exit_code == 1
    replay(tmp_path / "results.requests-2.jsonl", fake.base_url, tmp_path / "out-2.jsonl")
    assert cli("collect", "out-2.jsonl", "-o", "results.jsonl").exit_code == 0
    records = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert [r["article_id"] for r in records] == [failed]  # round two did not wipe round one's failure
    assert failed not in results(tmp_path / "results.jsonl") and retried in results(tmp_path / "results.jsonl")


def test_a_failed_write_in_collect_loses_no_paid_result(
    fake: FakeOpenAI, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    import summarizer.batch.writer as writer_module

    assert cli("batch", str(seeds), "--via", "batch-file", "-o", "results.jsonl", "-m", "fake-model").exit_code == 0
    replay(tmp_path / "results.requests.jsonl", fake.base_url, tmp_path / "out-1.jsonl")
    real = writer_module.append_line
    written: list[str] = []

    def failing(fd: int, text: str, sync: bool = True) -> None:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, text, sync)
        written.append(text)

    monkeypatch.setattr(writer_module, "append_line", failing)
    full = cli("collect", "out-1.jsonl", "-o", "results.jsonl")
    assert full.exit_code == 1 and os.strerror(errno.ENOSPC) in full.stderr
    monkeypatch.setattr(writer_module, "append_line", real)
    again = cli("collect", "out-1.jsonl", "-o", "results.jsonl")  # space again: the same output completes it
    assert again.exit_code == 0, again.stderr
    assert sorted(results(tmp_path / "results.jsonl")) == sorted(p.stem for p in SEEDS)
