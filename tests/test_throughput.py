"""The mechanisms behind batch throughput: the article-level cache entry, the producer that prepares
articles ahead of the requests, the writer thread, the request template, the limiter's queue, and
the command's quick exit. Counts, never timings (speed figures live in bench/)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import summarizer.batch.pool as pool_module
import summarizer.pipeline as pipeline
from fake_backend import FakeBackend
from helpers import loop_clock, run_on_virtual_time
from summarizer.backends import ChunkRequest
from summarizer.backends.openai_backend import RequestTemplate, chunk_messages, request_body
from summarizer.batch import BatchReport, errors_path_for, run_batch
from summarizer.batch.report import Outcome
from summarizer.batch.writer import ResultsWriter, open_results
from summarizer.cache import DB_NAME, Cache
from summarizer.limits import Limiter
from summarizer.progress import NullProgress
from summarizer.prompt import load_prompt
from summarizer.settings import Settings

EVAL = Path(__file__).resolve().parents[1] / "eval" / "articles"
TESTS = Path(__file__).resolve().parent


CITIES = ["苏州市", "无锡市", "常州市", "南通市", "扬州市", "镇江市", "泰州市", "徐州市"]


def long_article(i: int) -> str:
    """An article of several chunks (at the small chunk size below), each quoting counts."""
    committee = CITIES[i % len(CITIES)] + "政协"
    paragraphs = [
        f"{committee}围绕第{n + 1}项重点工作开展专题调研，组织调研{i + n + 2}次，委员参与{i + n + 30}人，"
        f"形成调研报告{n + 1}篇，提出意见建议{n + 5}条，推动有关部门解决问题{n + 3}件。"
        for n in range(10)
    ]
    return f"{committee}召开第{i + 1}期协商会议\n发布时间：2023-05-04\n" + "\n".join(paragraphs) + "\n"


def eval_folder(root: Path, count: int = 8) -> Path:
    """A folder of articles of several chunks each, every chunk with something the cache keeps."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"a{i:02d}.txt").write_text(long_article(i), "utf-8")
    return root


def settings(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "fake",
        "cache_dir": tmp_path / "cache",
        "concurrency": 4,
        "chunk_tokens": 200,
        "chunk_overlap": 0,
    }
    values.update(changes)
    return Settings(**values)


def batch(tmp_path: Path, folder: Path, out: Path, force: bool = False, **changes: Any) -> BatchReport:
    return run_batch(folder, out, settings(tmp_path, **changes), force=force, progress=NullProgress())


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    """Record every call of owner.name (its first argument) and let it run."""
    seen: list[Any] = []
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[1] if args and isinstance(args[0], Cache) else args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return seen


# --- the article-level cache entry -------------------------------------------------------------


def test_a_forced_rerun_is_one_cache_lookup_per_article_and_no_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = eval_folder(tmp_path / "in")
    out = tmp_path / "results.jsonl"
    first = batch(tmp_path, folder, out)
    assert first.done == 8 and FakeBackend.calls > 8  # several chunks an article
    calls = FakeBackend.calls
    lookups = count_calls(monkeypatch, Cache, "get")
    planned = count_calls(monkeypatch, pipeline, "plan_chunks")
    loaded = count_calls(monkeypatch, pool_module, "load_article")
    again = batch(tmp_path, folder, out, force=True)
    assert again.done == 8 and again.cached == 8 and again.usage.requests == 0
    assert FakeBackend.calls == calls  # no request
    assert len(lookups) == 8  # one lookup an article, none per chunk
    assert planned == [] and loaded == []  # neither read as text, nor sectioned, nor chunked


def _drop_article_entries(cache_dir: Path) -> int:
    with sqlite3.connect(cache_dir / DB_NAME) as db:
        return db.execute("DELETE FROM entries WHERE value LIKE '{\"summary\"%'").rowcount


def test_the_article_entry_gives_the_lines_the_chunk_cache_gives(tmp_path: Path) -> None:
    folder = eval_folder(tmp_path / "in")
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    calls = FakeBackend.calls
    batch(tmp_path, folder, out, force=True)  # served by the article entries
    fast = out.read_bytes()
    assert _drop_article_entries(tmp_path / "cache") == 8
    batch(tmp_path, folder, out, force=True)  # served chunk by chunk, as before the article entry
    assert out.read_bytes() == fast and FakeBackend.calls == calls
    lines = [json.loads(line) for line in fast.splitlines()]
    assert all(line["meta"]["cache_hits"] == line["meta"]["chunks"] > 0 for line in lines)


def test_a_changed_article_reuses_its_unchanged_chunks(tmp_path: Path) -> None:
    folder = eval_folder(tmp_path / "in", 3)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    chunks = {line["article_id"]: line["meta"]["chunks"] for line in map(json.loads, out.read_text().splitlines())}
    calls = FakeBackend.calls
    changed = sorted(folder.glob("*.txt"))[0]
    changed.write_text(changed.read_text("utf-8") + "\n会议还通报了其他事项，委员参与88人。\n", "utf-8")
    report = batch(tmp_path, folder, out)
    assert report.done == 1 and report.skipped == 2
    asked = FakeBackend.calls - calls
    assert 1 <= asked < chunks[changed.stem]  # the new last chunk, not the whole article


def test_an_article_with_a_chunk_the_cache_does_not_keep_gets_no_article_entry(tmp_path: Path) -> None:
    """An empty answer is asked again on a re-run; an article entry must not freeze it."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "none.txt").write_text("某地召开会议\n会议听取了情况汇报，没有数字。\n", "utf-8")
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    calls = FakeBackend.calls
    batch(tmp_path, folder, out, force=True)
    assert FakeBackend.calls == 2 * calls  # asked again, as the chunk cache alone would


def test_an_answer_naming_a_committee_without_items_is_kept(tmp_path: Path) -> None:
    """Only an answer that found no committee is asked again; one naming a committee is kept (and its
    article gets an entry) even when it lists no initiative or metric."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "meeting.txt").write_text("苏州市政协召开常委会议\n苏州市政协召开常委会议，听取了情况汇报。\n", "utf-8")
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    (line,) = map(json.loads, out.read_text().splitlines())
    assert [b["body"] for b in line["bodies"]] == ["苏州市政协"] and not line["bodies"][0]["metrics"]
    calls = FakeBackend.calls
    again = batch(tmp_path, folder, out, force=True)
    assert again.cached == 1 and FakeBackend.calls == calls  # served from the cache, not asked again
    (redone,) = map(json.loads, out.read_text().splitlines())
    assert redone["bodies"] == line["bodies"]


class _Filed:
    """A cache that only records what is filed."""

    off = None

    def __init__(self) -> None:
        self.values: list[str] = []

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.values.append(key + json.dumps(value, ensure_ascii=False))


def _random_result(rng: Any, text: str) -> Any:
    from summarizer.backends import ChunkResult
    from summarizer.schema import BodySummary, Initiative, Metric, Usage

    def span() -> tuple[int, int] | None:
        start = rng.randrange(len(text) - 10)
        return None if rng.random() < 0.2 else (start, start + rng.randint(1, 9))

    def value() -> int | float:
        return rng.choice([rng.randint(-5, 10**7), float(rng.randint(0, 99)), rng.random() * 10 ** rng.randint(0, 18)])

    bodies = [
        BodySummary(
            body=rng.choice(["苏州市政协", "无锡市政协", "全国政协"]),
            level=rng.choice(["national", "municipal"]),
            year=rng.choice([None, 2023, 2024]),
            summary=rng.choice(["", "开展调研", "𠀋 Ｂ\u3000"]),
            key_initiatives=[
                Initiative(name=rng.choice(["平台", "计划"]), evidence=text[:5], span=span())
                for _ in range(rng.randint(0, 3))
            ],
            metrics=[
                Metric(
                    name="数量",
                    value=value(),
                    unit=rng.choice(["个", "%", ""]),
                    approx=rng.random() < 0.3,
                    evidence=text[5:9],
                    span=span(),
                    optional=rng.random() < 0.1,
                )
                for _ in range(rng.randint(0, 4))
            ],
        )
        for _ in range(rng.randint(1, 3))
    ]
    usage = Usage(requests=1, prompt_tokens=rng.randint(1, 999), completion_tokens=rng.randint(1, 99))
    cached = rng.random() < 0.2
    return ChunkResult(
        bodies=bodies,
        usage=Usage() if cached else usage,
        warnings=rng.sample(["w1", "w2", "w3"], rng.randint(0, 2)),
        cached=cached,
        json_mode=None if cached else rng.choice(["schema", "object", "plain"]),
    )


def test_the_article_entry_from_the_live_summary_is_the_one_assembled_again() -> None:
    """`store_article` given the summary just assembled files what assembling the results again, as
    read back from the chunk cache, files: on random results of random bodies."""
    import random

    from summarizer.article import load_article

    rng = random.Random(11)
    article = load_article(EVAL / "115_zhejiang_roundup.txt")
    backend: Any = FakeBackend(settings(Path("/nonexistent")))
    config = settings(Path("/nonexistent"))
    for _ in range(150):
        nested = [[_random_result(rng, article.text)] for _ in range(rng.randint(1, 6))]
        chunks: Any = [None] * len(nested)
        plan = pipeline.Plan(article, {}, chunks)
        live = pipeline.assemble_summary(article, backend, config, len(nested), [g[0] for g in nested])
        again, derived = _Filed(), _Filed()
        pipeline.store_article(backend, config, again, plan, nested)  # type: ignore[arg-type]
        pipeline.store_article(backend, config, derived, plan, nested, live)  # type: ignore[arg-type]
        assert again.values == derived.values and len(again.values) == 1


# --- per-article work ----------------------------------------------------------------------------


def test_a_roundup_is_split_and_its_year_checked_once_however_many_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning and grounding share the article's sections, and grounding asks about the year once
    per article, not once per part."""
    import summarizer.ground as ground
    import summarizer.sections as sections
    from summarizer.pipeline import summarise_article

    splits = count_calls(monkeypatch, sections, "split_sections")
    years = count_calls(monkeypatch, ground, "_year_supported")
    summary = summarise_article(EVAL / "115_zhejiang_roundup.txt", Settings(backend="rules", use_cache=False))
    assert summary.meta is not None and summary.meta.chunks >= 5 and len(summary.bodies) >= 5
    assert len(splits) == 1
    assert len(years) == len({body.year for body in summary.bodies if body.year is not None}) == 1


# --- the producer --------------------------------------------------------------------------------


def test_the_first_request_starts_before_all_articles_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_batch import make_folder

    folder = make_folder(tmp_path / "in", 60)
    read = count_calls(monkeypatch, pool_module, "load_article")
    read_when_asked: list[int] = []
    real = FakeBackend.extract

    async def extract(self: FakeBackend, request: ChunkRequest) -> Any:
        read_when_asked.append(len(read))
        return await real(self, request)

    monkeypatch.setattr(FakeBackend, "extract", extract)
    report = batch(tmp_path, folder, tmp_path / "results.jsonl", concurrency=2, use_cache=False)
    assert report.done == 60 and len(read) == 60
    # Four askers (two per slot) and four plans prepared ahead bound what is read before the first
    # request, whatever the threads' timing.
    assert read_when_asked[0] <= 4 + 4 + 1 < 60


def test_a_cpu_bound_backend_reads_each_article_in_turn_on_the_extracting_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No preparing thread for the rules: it would only take turns with the extraction for the
    interpreter. Articles are read, summarised and written one after another, in input order."""
    from test_batch import make_folder

    folder = make_folder(tmp_path / "in", 12)
    readers: list[str] = []
    real = pool_module.load_article

    def load(*args: Any, **kwargs: Any) -> Any:
        readers.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool_module, "load_article", load)
    out = tmp_path / "results.jsonl"
    report = batch(tmp_path, folder, out, backend="rules", workers=1, use_cache=False)
    assert report.done == 12
    assert set(readers) == {threading.main_thread().name}
    ids = [json.loads(line)["article_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ids == sorted(ids)


def _prepared_by(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Note, in `log`, the process that reads each article (a forked child cannot append to a list)."""
    real = pool_module.load_article

    def load(*args: Any, **kwargs: Any) -> Any:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(pool_module, "load_article", load)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
def test_a_large_model_run_prepares_in_a_child_process_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From PREPARE_PROCESS_MIN articles on, a child process prepares them; every line, the cache
    and the report come out as when the thread prepares them."""
    from test_batch import make_folder

    count = pool_module.PREPARE_PROCESS_MIN + 6
    folder = make_folder(tmp_path / "in", count)
    (folder / "a001.txt").write_bytes(b"\x00binary")  # settled by preparing: handed over as an outcome
    count += 1
    log = tmp_path / "readers.txt"
    _prepared_by(monkeypatch, log)
    reports, outputs = [], []
    for name, least in (("thread", 10**9), ("process", pool_module.PREPARE_PROCESS_MIN)):
        monkeypatch.setattr(pool_module, "PREPARE_PROCESS_MIN", least)
        log.write_text("", encoding="utf-8")
        out = tmp_path / f"{name}.jsonl"
        reports.append(batch(tmp_path / name, folder, out, concurrency=3))
        outputs.append(sorted(out.read_text(encoding="utf-8").splitlines()))
        readers = Counter(log.read_text(encoding="utf-8").split())
        if name == "thread":
            assert readers == {str(os.getpid()): count}
        else:  # the first article here, before the fork; the others in the child
            assert readers.pop(str(os.getpid())) == 1 and list(readers.values()) == [count - 1]
    assert outputs[0] == outputs[1] and len(outputs[0]) == count - 1
    assert [(r.done, r.failed, r.usage) for r in reports[:1]] == [(r.done, r.failed, r.usage) for r in reports[1:]]
    assert reports[1].failed == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
@pytest.mark.parametrize("where", ["a000", "a005"])  # prepared before the fork, and in the child
def test_a_bug_in_the_preparing_process_is_raised_by_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from test_batch import make_folder

    folder = make_folder(tmp_path / "in", pool_module.PREPARE_PROCESS_MIN + 1)
    real = pool_module.prepare_candidate

    def prepare(candidate: Any, *args: Any) -> Any:
        if candidate.article_id.endswith(where):
            raise KeyError("a bug in preparing")
        return real(candidate, *args)

    monkeypatch.setattr(pool_module, "prepare_candidate", prepare)
    with pytest.raises(KeyError, match="a bug in preparing"):
        batch(tmp_path, folder, tmp_path / "results.jsonl")


class _TwoPartError(Exception):
    """An exception that pickles but cannot be rebuilt from its pickle (its constructor wants two)."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
def test_an_exception_the_parent_cannot_rebuild_comes_as_a_runtime_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_batch import make_folder

    folder = make_folder(tmp_path / "in", pool_module.PREPARE_PROCESS_MIN + 1)
    real = pool_module.prepare_candidate

    def prepare(candidate: Any, *args: Any) -> Any:
        if candidate.article_id.endswith("a005"):  # prepared in the child
            raise _TwoPartError("a bug", "in preparing")
        return real(candidate, *args)

    monkeypatch.setattr(pool_module, "prepare_candidate", prepare)
    with pytest.raises(RuntimeError, match="_TwoPartError: a bug: in preparing"):
        batch(tmp_path, folder, tmp_path / "results.jsonl")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
@pytest.mark.parametrize("least", [10**9, pool_module.PREPARE_PROCESS_MIN])  # the thread, the child process
def test_grounding_facts_that_fail_while_preparing_fail_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, least: int
) -> None:
    """Working an article's grounding facts out ahead is a shortcut: where it fails, they are worked
    out again when its replies are grounded, and at worst that article fails, never the run."""
    import summarizer.ground as ground
    from test_batch import make_folder

    count = pool_module.PREPARE_PROCESS_MIN + 2
    folder = make_folder(tmp_path / "in", count)
    real = ground.article_facts

    def facts(article: Any) -> Any:
        if article.article_id.endswith("a005"):
            raise ValueError("a bug in working out the facts")
        return real(article)

    monkeypatch.setattr(ground, "article_facts", facts)
    monkeypatch.setattr(pool_module, "PREPARE_PROCESS_MIN", least)
    out = tmp_path / "results.jsonl"
    report = batch(tmp_path, folder, out)
    assert report.stopped is None and report.done + report.failed == count and report.failed <= 1
    assert len(out.read_text(encoding="utf-8").splitlines()) == report.done >= count - 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
def test_an_authentication_failure_stops_a_run_prepared_in_a_child_process_and_reaps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_batch import make_folder

    count = pool_module.PREPARE_PROCESS_MIN + 40
    folder = make_folder(tmp_path / "in", count, nested=False)
    for path in folder.glob("*.txt"):
        path.write_text(path.read_text(encoding="utf-8") + "KEY\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_AUTH_MARK", "KEY")
    children: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            children.append(pid)
        return pid

    monkeypatch.setattr(pool_module.os, "fork", fork)
    report = batch(tmp_path, folder, tmp_path / "results.jsonl", concurrency=1)
    assert report.stopped and "refused the API key" in report.stopped
    assert report.failed < count and len(children) == 1
    with pytest.raises(ChildProcessError):  # reaped: no zombie is left behind
        os.waitpid(children[0], os.WNOHANG)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a preparing process is forked")
def test_a_run_that_cannot_fork_prepares_in_the_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_batch import make_folder

    count = pool_module.PREPARE_PROCESS_MIN + 2
    folder = make_folder(tmp_path / "in", count)
    log = tmp_path / "readers.txt"
    _prepared_by(monkeypatch, log)

    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(pool_module.os, "fork", no_fork)
    report = batch(tmp_path, folder, tmp_path / "results.jsonl", concurrency=3)
    assert report.done == count
    assert Counter(log.read_text(encoding="utf-8").split()) == {str(os.getpid()): count}


def test_grounding_facts_travel_with_a_pickled_article() -> None:
    """An article prepared in another process arrives pickled, with the facts found there: replies
    about it are grounded as about the article itself."""
    import pickle

    from summarizer.article import load_article
    from summarizer.backends.rules import RulesBackend
    from summarizer.ground import adopt_facts, article_facts, ground_bodies

    rules = RulesBackend(Settings(backend="rules", use_cache=False))
    for path in [*sorted(EVAL.glob("*.txt"))[:12], EVAL / "115_zhejiang_roundup.txt"]:
        article = load_article(path)
        bodies = pipeline.summarise_article(path, Settings(backend="rules", use_cache=False), rules).bodies
        facts = article_facts(article)
        copy, copied_facts = pickle.loads(pickle.dumps((article, facts)))
        assert copied_facts == facts
        adopt_facts(copy, copied_facts)
        here, there = ground_bodies(bodies, article), ground_bodies(bodies, copy)
        assert (here.bodies, here.warnings, here.failures) == (there.bodies, there.warnings, there.failures)


# --- the writer thread ---------------------------------------------------------------------------


def _writer(tmp_path: Path) -> tuple[ResultsWriter, Path]:
    out = tmp_path / "results.jsonl"
    fd, index = open_results(out)
    report = BatchReport(tmp_path, out, errors_path_for(out), "fake", None)
    return ResultsWriter(fd, out, errors_path_for(out), index, "key", NullProgress(), report), out


def _line(i: int) -> str:
    return json.dumps({"article_id": f"a{i:03d}", "meta": {"input_sha256": str(i), "settings_key": "key"}})


def test_the_writer_thread_writes_everything_handed_to_it_when_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import summarizer.batch.writer as writer_module

    real = writer_module.append_line
    gate = threading.Event()

    def slow(fd: int, text: str, sync: bool = True) -> None:
        gate.wait()  # the disk is slower than the askers: outcomes pile up in the queue
        real(fd, text, sync)

    monkeypatch.setattr(writer_module, "append_line", slow)
    writer, out = _writer(tmp_path)
    writer.start(200, threaded=True)

    async def run() -> None:
        for i in range(200):
            await writer.submit_async(Outcome(f"a{i:03d}", "done", line=_line(i)))
            if i == 150:
                gate.set()
        raise RuntimeError("the loop died")

    with pytest.raises(RuntimeError, match="died"):
        try:
            asyncio.run(run())
        finally:
            writer.close()  # what run_batch does on any exit
    written = out.read_bytes()
    assert written.endswith(b"\n")
    assert [json.loads(line)["article_id"] for line in written.splitlines()] == [f"a{i:03d}" for i in range(200)]
    assert writer.tally.done == 200 and writer.error() is None


def test_a_write_that_fails_in_the_writer_thread_stops_the_run_with_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import summarizer.batch.writer as writer_module

    real = writer_module.append_line
    count = 0

    def failing(fd: int, text: str, sync: bool = True) -> None:
        nonlocal count
        count += 1
        if count == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, text, sync)

    monkeypatch.setattr(writer_module, "append_line", failing)
    writer, out = _writer(tmp_path)
    writer.start(10, threaded=True)
    for i in range(10):
        writer.submit(Outcome(f"a{i:03d}", "done", line=_line(i)))
    writer.close()
    error = writer.error()
    assert error is not None and "stopped after 4 of 10" in str(error)
    assert len(out.read_bytes().splitlines()) == 4 and out.read_bytes().endswith(b"\n")


def test_a_paid_line_is_synced_at_once_and_lines_from_the_cache_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forced re-run from the cache must not wait on the disk once per article, but an answer that
    cost a request still reaches the disk before the next one is asked for."""
    import summarizer.batch.writer as writer_module
    from summarizer.schema import Usage

    clock = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: clock[0])
    writer, out = _writer(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(writer_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[-1])
    fd = writer.results_fd
    steps = [(0.0, 1, 1), (0.2, 0, 1), (0.5, 0, 1), (0.6, 1, 2), (1.0, 0, 2), (1.7, 0, 3)]
    for i, (at, requests, syncs) in enumerate(steps):
        clock[0] = 1000.0 + at
        writer.handle(Outcome(f"a{i:03d}", "done", line=_line(i), usage=Usage(requests=requests)))
        assert synced.count(fd) == syncs, f"after line {i}"
    writer.close()
    assert synced.count(fd) == 4  # the rest at the end
    assert len(out.read_bytes().splitlines()) == len(steps)


def test_the_compaction_from_the_writers_line_numbers_is_the_one_from_reading_the_file(tmp_path: Path) -> None:
    """The writer compacts with the line numbers it knows (from the index and its own appends), not
    by reading the file back: the result must be what reading it gives, a killed run's mess included."""
    from summarizer.batch import compact_results
    from summarizer.batch.report import error_record

    def line(article_id: str, version: str, key: str = "key") -> str:
        return json.dumps({"article_id": article_id, "v": version, "meta": {"input_sha256": "s", "settings_key": key}})

    out = tmp_path / "results.jsonl"
    killed = [line("a0", "1"), line("a1", "1"), "not json", line("a0", "2"), line("a2", "1", "old"), line("a3", "1")]
    out.write_text("\n".join(killed) + "\n" + line("a4", "cut")[:20])  # duplicates, garbage, a cut last line
    writer, _ = _writer(tmp_path)
    assert writer.index.lines == 4  # compacted at open: a1, a0 (its last line), a2, a3
    writer.handle(Outcome("a1", "done", line=line("a1", "2")))
    writer.handle(Outcome("a5", "done", line=line("a5", "1")))
    writer.handle(Outcome("a1", "done", line=line("a1", "3")))
    writer.handle(Outcome("a2", "failed", error=error_record("a2", None, "boom"), input_sha256="s"))  # old settings
    assert writer.dropped == {"a2"}
    unread = tmp_path / "unread.jsonl"
    unread.write_bytes(out.read_bytes())
    compact_results(unread, set(writer.dropped))  # reads the file to find each article's last line
    writer.close()
    assert out.read_bytes() == unread.read_bytes()
    assert [(r["article_id"], r["v"]) for r in map(json.loads, out.read_text().splitlines())] == [
        ("a0", "2"),
        ("a3", "1"),
        ("a5", "1"),
        ("a1", "3"),
    ]


# --- the request template ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["schema", "object", "plain"])
@pytest.mark.parametrize("official", [True, False])
def test_the_pre_encoded_request_is_the_batch_files_request(mode: str, official: bool) -> None:
    from summarizer.article import load_article
    from summarizer.backends.rules import RulesBackend
    from summarizer.pipeline import plan_chunks

    config = Settings(backend="openai", model="m", chunk_tokens=300, chunk_overlap=0)
    prompt = load_prompt(config.prompt_version)
    template = RequestTemplate(config, prompt, mode, official)
    article = load_article(sorted(EVAL.glob("*.txt"))[0])
    sections, chunks = plan_chunks(article, RulesBackend(Settings(backend="rules")), config)
    for chunk in chunks:
        request = ChunkRequest(article, sections[chunk.section_index], chunk, len(chunks))
        messages = template.messages(request)
        assert messages == chunk_messages(prompt, request)
        assert json.loads(template.encode(messages)) == request_body(config, messages, mode, official)
        longer = [*messages, {"role": "assistant", "content": "{}"}, {"role": "user", "content": "再来"}]
        assert json.loads(template.encode(longer)) == request_body(config, longer, mode, official)


# --- the limiter's queue -------------------------------------------------------------------------


def test_the_first_fast_answer_opens_the_window_and_a_freed_slot_wakes_one_waiter() -> None:
    async def run() -> tuple[int, int, list[int]]:
        limiter = Limiter(32, queue_deadline=60.0, clock=loop_clock)
        before_first_answer, order = 0, []

        async def one(number: int) -> None:
            nonlocal before_first_answer
            async with limiter.request() as permit:
                order.append(number)
                if not limiter._done:
                    before_first_answer = max(before_first_answer, limiter.in_flight)
                await asyncio.sleep(0.5)
                permit.answer()

        await asyncio.gather(*(one(n) for n in range(200)))
        return before_first_answer, limiter.peak_in_flight, order

    before, peak, order = run_on_virtual_time(run())
    assert before == 2  # a start as careful as before: two, until the server has answered
    assert peak == 32  # one answer in 0.5 s against a 60 s deadline opens the whole window
    assert order == list(range(200))  # first come, first served


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    async def run() -> int:
        limiter = Limiter(1)
        async with limiter.request():
            waiter = asyncio.ensure_future(limiter.request().__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
        async with limiter.request():  # would wait for ever had the cancelled waiter kept the slot
            return limiter.in_flight

    assert asyncio.run(run()) == 1


# --- the command's exit --------------------------------------------------------------------------


def test_the_command_flushes_its_output_and_keeps_its_exit_codes(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("summarizer")
    article = sorted(EVAL.glob("*.txt"))[0]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [str(exe), "summarise", str(article), "--backend", "rules"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0 and json.loads(done.stdout)["article_id"] == article.stem  # whole JSON on a pipe
    refused = subprocess.run(
        [str(exe), "batch", str(tmp_path / "missing"), "-o", "r.jsonl"], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and "not a folder" in refused.stderr
