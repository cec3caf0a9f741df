"""Batch over a folder: results file, resume, bad input, concurrency, crash safety, CLI exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_backend import FakeBackend
from helpers import VirtualClock, loop_clock, read_only, run_on_virtual_time
from summarizer.batch import BatchReport, errors_path_for, glob_regex, run_batch
from summarizer.cli import app
from summarizer.errors import ConfigError, WriteError
from summarizer.limits import Limiter
from summarizer.progress import NullProgress
from summarizer.schema import ArticleSummary
from summarizer.settings import Settings

# Twelve current counties (any real ones will do): each heading makes a section of its own.
ROUNDUP_COUNTIES = (
    "蓟州区",
    "宁河区",
    "静海区",
    "滦南县",
    "乐亭县",
    "迁西县",
    "玉田县",
    "曹妃甸区",
    "丰南区",
    "丰润区",
    "遵化市",
    "迁安市",
)
EVAL = Path(__file__).resolve().parents[1] / "eval" / "articles"
TESTS = Path(__file__).resolve().parent
CITIES = ["苏州市", "无锡市", "常州市", "南通市", "扬州市", "镇江市", "泰州市", "徐州市", "盐城市", "淮安市"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # CLI runs write relative paths such as results.jsonl


def article_text(i: int, committee: str | None = None) -> str:
    committee = committee or CITIES[i % len(CITIES)] + "政协"
    return (
        f"{committee}召开第{i + 1}期协商会议\n发布时间：2023-05-04\n"
        f"{committee}近日召开专题协商会，围绕营商环境提出建议，组织调研{i + 2}次，委员参与{i + 30}人。\n"
        f"会议指出，{committee}将持续推进协商议政工作。\n"
    )


def make_folder(root: Path, count: int, nested: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        folder = root / f"part{i % 3}" if nested and i % 2 else root
        folder.mkdir(exist_ok=True)
        (folder / f"a{i:03d}.txt").write_text(article_text(i), encoding="utf-8")
    return root


def settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {"backend": "fake", "cache_dir": tmp_path / "cache", "concurrency": 4}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def batch(
    tmp_path: Path,
    folder: Path,
    out: Path,
    *,
    config: Settings | None = None,
    glob: str = "**/*.txt",
    force: bool = False,
) -> BatchReport:
    config = config or settings(tmp_path)
    return run_batch(folder, out, config, glob=glob, force=force, progress=NullProgress())


def lines(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n") or not raw, "results file ends in a partial line"
    return [json.loads(line) for line in raw.decode().splitlines()]


def ids(path: Path) -> list[str]:
    return [str(line["article_id"]) for line in lines(path)]


# --- the glob and the limiter ----------------------------------------------------------------


def test_glob_matches_like_a_shell_and_refuses_to_climb_out() -> None:
    pattern = glob_regex("**/*.txt")
    assert pattern.match("a.txt") and pattern.match("x/y/a.txt")
    assert not pattern.match("a.md") and not pattern.match("a.txt.bak")
    top = glob_regex("*.txt")
    assert top.match("a.txt") and not top.match("x/a.txt")
    assert glob_regex("reports/202[34]/*.txt").match("reports/2023/b.txt")
    for bad in ("../*.txt", "/etc/*.txt", "a/../../b.txt", ""):
        with pytest.raises(ConfigError):
            glob_regex(bad)


def test_limiter_never_exceeds_its_concurrency() -> None:
    limiter = Limiter(3)
    current = peak = 0

    async def one() -> None:
        nonlocal current, peak
        async with limiter.request():
            current += 1
            peak = max(peak, current)
            await asyncio.sleep(0.01)
            current -= 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(main())
    assert peak == 3 and limiter.peak_in_flight == 3 and limiter.started == 20


def test_limiter_works_across_successive_event_loops() -> None:
    limiter = Limiter(1)

    async def two() -> None:
        async def one() -> None:
            async with limiter.request():
                await asyncio.sleep(0.001)

        await asyncio.gather(one(), one())  # contended, so the semaphore really waits

    asyncio.run(two())
    asyncio.run(two())  # a single-article CLI run after another: no "bound to a different loop"
    assert limiter.started == 4 and limiter.in_flight == 0


def test_limiter_paces_requests_evenly_without_a_burst() -> None:
    clock = VirtualClock()  # time moves only by the limiter's own waits
    limiter = Limiter(10, rpm=1200, clock=clock, sleep=clock.sleep)  # one start every 50 ms
    starts: list[float] = []

    async def one() -> None:
        async with limiter.request():
            starts.append(clock())

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(5)))

    asyncio.run(main())
    assert min(starts) == 0.0  # the first starts at once
    # The rest never bunch up, even at start-up: start k is never before its slot k x 50 ms.
    assert all(start >= 0.05 * k - 1e-9 for k, start in enumerate(sorted(starts))), starts


def test_limiter_paces_tokens_and_settles_with_real_usage() -> None:
    clock = [0.0]
    limiter = Limiter(10, tpm=60_000, clock=lambda: clock[0])  # 1,000 tokens a second
    assert limiter._reserve(500) == 0.0
    assert limiter._reserve(500) == pytest.approx(0.5)  # waits for the first reservation to drain
    limiter._adjust_tokens(-400)  # the second used 100 tokens, not 500
    assert limiter._reserve(100) == pytest.approx(0.6)


# --- results file ----------------------------------------------------------------------------


def test_every_article_becomes_one_line_named_by_its_relative_path(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 6)
    shutil.copy(EVAL / "001_c079abc98a656ef6.txt", folder / "part1" / "eval001.txt")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    out = tmp_path / "out" / "results.jsonl"
    report = batch(tmp_path, folder, out)
    assert report.ok and report.done == 7 and report.total == 7
    found = ids(out)
    assert sorted(found) == sorted(["a000", "part1/a001", "a002", "part0/a003", "a004", "part2/a005", "part1/eval001"])
    for line in lines(out):
        summary = ArticleSummary.model_validate(line)
        assert summary.meta is not None and summary.meta.input_sha256 and summary.meta.settings_key
    first = next(ArticleSummary.model_validate(x) for x in lines(out) if x["article_id"] == "a000")
    assert first.bodies[0].body == "苏州市政协"
    assert [m.value for m in first.bodies[0].metrics] == [2, 30]
    assert not (tmp_path / "out" / "results.errors.jsonl").exists()
    assert "picture" not in out.read_text()


def test_batch_gives_the_same_summaries_as_the_single_article_command(tmp_path: Path) -> None:
    from summarizer.pipeline import summarise_article

    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(EVAL.glob("*.txt"))[:3]:
        shutil.copy(path, folder / path.name)
    rules = Settings(backend="rules", use_cache=False, workers=1)
    batch(tmp_path, folder, tmp_path / "results.jsonl", config=rules)
    for line in lines(tmp_path / "results.jsonl"):
        alone = summarise_article(folder / f"{line['article_id']}.txt", rules)
        assert line["bodies"] == alone.model_dump(mode="json")["bodies"]
        assert line["meta"]["chunks"] == alone.meta.chunks  # type: ignore[index,union-attr]


def test_rerun_skips_finished_articles_and_leaves_the_file_alone(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 5)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    before = out.read_bytes()
    calls = FakeBackend.calls
    report = batch(tmp_path, folder, out)
    assert report.skipped == 5 and report.done == 0
    assert FakeBackend.calls == calls
    assert out.read_bytes() == before


def test_changed_input_is_redone_and_its_old_line_replaced(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 5)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    (folder / "a000.txt").write_text(article_text(77, "杭州市政协"), encoding="utf-8")
    report = batch(tmp_path, folder, out)
    assert report.done == 1 and report.skipped == 4
    assert sorted(ids(out)) == sorted(set(ids(out))) and len(ids(out)) == 5
    line = next(x for x in lines(out) if x["article_id"] == "a000")
    assert line["bodies"][0]["body"] == "杭州市政协"  # type: ignore[index]


def test_changed_settings_redo_everything_without_duplicates(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 4)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    report = batch(tmp_path, folder, out, config=settings(tmp_path, chunk_tokens=900))
    assert report.done == 4 and report.skipped == 0
    assert len(ids(out)) == 4 == len(set(ids(out)))
    keys = {line["meta"]["settings_key"] for line in lines(out)}  # type: ignore[index]
    assert len(keys) == 1


def test_force_redoes_all_from_the_cache_without_duplicates(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 4)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    calls = FakeBackend.calls
    report = batch(tmp_path, folder, out, force=True)
    assert report.done == 4 and report.cached == 4 and report.usage.requests == 0
    assert FakeBackend.calls == calls
    assert len(ids(out)) == 4 == len(set(ids(out)))


def test_partial_last_line_and_duplicates_from_a_killed_run_are_repaired(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 4)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    good = out.read_bytes().splitlines(keepends=True)
    # A killed run: one article written twice (old + new), then half of another line.
    out.write_bytes(good[0] + good[1] + good[0] + good[2] + good[3][: len(good[3]) // 2])
    report = batch(tmp_path, folder, out)
    assert report.done == 1 and report.skipped == 3
    assert sorted(ids(out)) == sorted({"a000", "part1/a001", "a002", "part0/a003"})


def test_a_second_batch_on_the_same_results_file_is_refused(tmp_path: Path) -> None:
    import fcntl

    folder = make_folder(tmp_path / "in", 2)
    out = tmp_path / "results.jsonl"
    with out.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as a running batch holds it
        with pytest.raises(ConfigError, match="another batch is writing"):
            batch(tmp_path, folder, out)
    assert batch(tmp_path, folder, out).done == 2


def test_output_inside_the_input_folder_is_not_read_as_input(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 2)
    report = batch(tmp_path, folder, folder / "results.jsonl", glob="**/*")
    assert report.done == 2 and report.failed == 0


# --- bad input -------------------------------------------------------------------------------


def test_bad_files_each_get_a_one_line_reason_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "in", 2, nested=False)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text(" \n\t\u3000\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (folder / "gbk.txt").write_bytes(article_text(5, "宁波市政协").encode("gbk"))
    with (folder / "huge.txt").open("wb") as handle:  # 50 MB, sparse: refused by size before any read
        handle.truncate(50 * 1024 * 1024)
    (folder / "nobody.txt").write_text("今天天气很好。\n市民在公园里散步，孩子们在玩耍。\n", encoding="utf-8")
    os.mkfifo(folder / "fifo.txt")
    (folder / "locked.txt").write_text(article_text(9), encoding="utf-8")
    os.symlink("loop.txt", folder / "loop.txt")
    outside = tmp_path / "secret.txt"
    outside.write_text(article_text(8), encoding="utf-8")
    os.symlink(outside, folder / "escape.txt")
    os.symlink("a000.txt", folder / "alias.txt")  # inside the folder: fine
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.txt").write_text(article_text(7), encoding="utf-8")
    os.symlink(elsewhere, folder / "linked")  # a symlinked folder is never descended into
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4 binary")

    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:  # tests run as root, so chmod 000 would not stop a read
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    out = tmp_path / "results.jsonl"
    report = batch(tmp_path, folder, out)

    errors = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    reasons = {e["article_id"]: e["message"] for e in errors}
    assert set(reasons) == {"empty", "blank", "binary", "huge", "fifo", "locked", "loop", "escape"}
    assert "empty" in reasons["empty"]
    assert "whitespace only" in reasons["blank"]
    assert "binary" in reasons["binary"]
    assert "52,428,800 bytes is over the 5,000,000-byte limit" in reasons["huge"]
    assert "not a regular file" in reasons["fifo"]
    assert "permission denied" in reasons["locked"]
    assert "symlink loop" in reasons["loop"]
    assert "outside the input folder" in reasons["escape"]
    assert all("\n" not in message for message in reasons.values())
    assert all(e["error"] == "InputError" and e["attempts"] == 0 for e in errors)
    assert report.failed == 8 and report.done == 5
    done = {x["article_id"]: ArticleSummary.model_validate(x) for x in lines(out)}
    assert set(done) == {"a000", "a001", "gbk", "nobody", "alias"}
    assert done["gbk"].title == "宁波市政协召开第6期协商会议" and done["gbk"].bodies[0].body == "宁波市政协"
    assert done["nobody"].bodies == []
    assert done["nobody"].meta and "no CPPCC committee found in the article" in done["nobody"].meta.warnings
    assert "scan" not in out.read_text() + (tmp_path / "results.errors.jsonl").read_text()
    assert "other" not in out.read_text() and "secret" not in out.read_text()


def test_a_model_failure_records_class_attempts_and_last_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "in", 3, nested=False)
    (folder / "a001.txt").write_text(article_text(1) + "坏数据\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_FAIL_MARK", "坏数据")
    out = tmp_path / "results.jsonl"
    report = batch(tmp_path, folder, out)
    assert report.failed == 1 and report.done == 2
    (error,) = [json.loads(x) for x in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert error["article_id"] == "a001" and error["error"] == "OutputValidationError"
    assert "not valid JSON" in error["message"] and error["last_reply"] == "{not json"
    assert "attempts" in error
    # Fixed on the next run: only that article is redone, and the errors file is gone.
    monkeypatch.delenv("FAKE_FAIL_MARK")
    report = batch(tmp_path, folder, out)
    assert report.done == 1 and report.skipped == 2 and report.ok
    assert not (tmp_path / "results.errors.jsonl").exists()


def test_a_stale_line_goes_when_its_redo_fails_but_a_current_one_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "in", 3, nested=False)
    out = tmp_path / "results.jsonl"
    config = settings(tmp_path, use_cache=False)
    batch(tmp_path, folder, out, config=config)
    # a002 is edited and its redo fails: its old line describes a file that no longer exists.
    (folder / "a002.txt").write_text(article_text(2) + "坏数据\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_FAIL_MARK", "坏数据")
    report = batch(tmp_path, folder, out, config=config)
    assert report.failed == 1 and sorted(ids(out)) == ["a000", "a001"]
    # a000 is unchanged and a --force redo fails: its line is still the right answer and stays.
    monkeypatch.setenv("FAKE_FAIL_MARK", "苏州市政协召开第1期")
    report = batch(tmp_path, folder, out, config=config, force=True)
    assert report.failed == 1 and report.failures[0]["article_id"] == "a000"
    assert sorted(ids(out)) == ["a000", "a001", "a002"]


def test_an_authentication_failure_stops_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "in", 40, nested=False)
    for path in folder.glob("*.txt"):
        path.write_text(path.read_text(encoding="utf-8") + "KEY\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_AUTH_MARK", "KEY")
    report = batch(tmp_path, folder, tmp_path / "results.jsonl", config=settings(tmp_path, concurrency=1))
    assert report.stopped and "refused the API key" in report.stopped
    assert report.failed < 40


# --- concurrency and worker processes ---------------------------------------------------------


def test_requests_in_flight_stay_within_the_concurrency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "in", 24)
    shutil.copy(EVAL / "002_a0e3353743ab7c90.txt", folder / "long.txt")  # several chunks, gathered at once
    monkeypatch.setenv("FAKE_DELAY", "0.03")
    report = batch(
        tmp_path,
        folder,
        tmp_path / "results.jsonl",
        config=settings(tmp_path, concurrency=4, chunk_tokens=300, chunk_overlap=20),
    )
    assert report.done == 25
    assert FakeBackend.peak == 4


def test_a_cpu_bound_backend_uses_worker_processes_and_the_parent_writes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 40)
    out = tmp_path / "results.jsonl"
    report = run_batch(
        folder, out, settings(tmp_path, backend="cpufake", workers=2), progress=NullProgress(), pool_threshold=10
    )
    assert report.done == 40 and report.ok
    assert FakeBackend.calls == 0  # nothing ran in this process
    assert len(ids(out)) == 40 == len(set(ids(out)))
    report = run_batch(
        folder, out, settings(tmp_path, backend="cpufake", workers=2), progress=NullProgress(), pool_threshold=10
    )
    assert report.skipped == 40


# --- the command line ------------------------------------------------------------------------


def test_cli_exit_codes_progress_lines_and_summary_table(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 3)
    runner = CliRunner()
    result = runner.invoke(app, ["batch", str(folder), "-o", "results.jsonl", "--backend", "fake"])
    assert result.exit_code == 0, result.output
    assert "articles done" in result.stderr and result.stdout == ""  # the table reports on the run: stderr
    assert "batch: finished 3/3 articles" in result.stderr  # stderr is not a terminal: plain lines

    (folder / "empty.txt").write_bytes(b"")
    result = runner.invoke(app, ["batch", str(folder), "-o", "results.jsonl", "--backend", "fake", "--quiet"])
    assert result.exit_code == 1
    assert "batch:" not in result.stderr and "failed: " in result.stderr and "empty file" in result.stderr

    missing = runner.invoke(app, ["batch", str(tmp_path / "nope"), "-o", "r.jsonl", "--backend", "fake"])
    assert missing.exit_code == 2 and "not a folder" in missing.stderr
    bad_glob = runner.invoke(app, ["batch", str(folder), "-o", "r.jsonl", "-b", "fake", "--glob", "../*.txt"])
    assert bad_glob.exit_code == 2 and "relative to the folder" in bad_glob.stderr
    assert runner.invoke(app, ["batch", str(folder), "-o", "r.jsonl", "--concurrency", "0"]).exit_code == 2


def test_cost_uses_the_price_table_and_says_unknown_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "in", 2)
    report = batch(tmp_path, folder, tmp_path / "r1.jsonl")
    assert report.cost_usd is None and "unknown" in dict(report.rows())["estimated cost"]
    priced = settings(tmp_path, use_cache=False, prices='{"fake-model": {"input": 1.0, "output": 2.0}}')
    report = batch(tmp_path, folder, tmp_path / "r2.jsonl", config=priced)
    usage = report.usage
    assert report.cost_usd == pytest.approx((usage.prompt_tokens + 2 * usage.completion_tokens) / 1e6)
    monkeypatch.setenv("SUMMARIZER_PRICES", "{broken")
    result = CliRunner().invoke(app, ["batch", str(folder), "-o", "r3.jsonl", "--backend", "fake"])
    assert result.exit_code == 2 and "prices: not valid JSON" in result.stderr


# --- crashes and concurrent runs (real processes) --------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "summarizer.cli", *args], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_kill_9_mid_batch_then_rerun_finishes_without_half_or_duplicate_lines(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 16)
    out = tmp_path / "results.jsonl"
    cache = tmp_path / "cache"
    process = _cli(
        "batch",
        str(folder),
        "-o",
        str(out),
        "--backend",
        "fake",
        "--concurrency",
        "2",
        "--quiet",
        env={"FAKE_DELAY": "0.25", "SUMMARIZER_CACHE_DIR": str(cache)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 4):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = out.read_bytes().count(b"\n")
    assert 4 <= finished < 16
    with sqlite3.connect(cache / "summaries.sqlite3") as db:  # the cache survived the kill
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] >= finished

    report = batch(tmp_path, folder, out, config=settings(tmp_path, cache_dir=cache))
    assert report.skipped == finished and report.done == 16 - finished
    assert len(ids(out)) == 16 == len(set(ids(out)))


def test_two_runs_sharing_a_cache_lose_nothing_and_never_report_a_locked_database(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"SUMMARIZER_CACHE_DIR": str(cache)}
    first = make_folder(tmp_path / "one", 60, nested=False)
    second = tmp_path / "two"
    second.mkdir()
    for i in range(60):
        (second / f"b{i:03d}.txt").write_text(article_text(i + 100), encoding="utf-8")
    runs = [
        _cli(
            "batch",
            str(folder),
            "-o",
            str(tmp_path / f"{folder.name}.jsonl"),
            "--backend",
            "fake",
            "--concurrency",
            "16",
            "--quiet",
            env=env,
        )
        for folder in (first, second)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()
        assert b"locked" not in stderr
    with sqlite3.connect(cache / "summaries.sqlite3") as db:
        values = [json.loads(v) for (v,) in db.execute("SELECT value FROM entries")]
    # One entry per chunk (one chunk an article here) and one per whole article.
    assert sum("bodies" in v for v in values) == 120 and sum("summary" in v for v in values) == 120
    assert len(ids(tmp_path / "one.jsonl")) == 60 == len(ids(tmp_path / "two.jsonl"))


def _open_and_put(directory: str, key: str) -> str:
    from summarizer.cache import Cache

    try:
        cache = Cache(Path(directory))
        cache.put(key, {"bodies": []})
        cache.close()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_fresh_cache_together_all_succeed(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(6) as pool:
        for trial in range(30):  # the race (switching a new database to WAL) shows up about 1 time in 15
            directory = tmp_path / f"cache{trial}"
            results = pool.starmap(_open_and_put, [(str(directory), f"k{i}") for i in range(6)])
            assert results == ["ok"] * 6
            with sqlite3.connect(directory / "summaries.sqlite3") as db:
                assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 6


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def test_kill_9_of_a_worker_pool_batch_leaves_no_lock_and_no_orphans(tmp_path: Path) -> None:
    """Over 200 files the rules backend runs in worker processes; killing the parent must not leave
    workers holding the results file, so the same command resumes at once."""
    folder = tmp_path / "pool-in"
    folder.mkdir()
    sources = sorted((Path(__file__).resolve().parents[1] / "eval" / "articles").glob("*.txt"))
    for i in range(600):
        (folder / f"a{i:04d}.txt").write_bytes(sources[i % len(sources)].read_bytes())
    out = tmp_path / "results.jsonl"
    process = _cli("batch", str(folder), "-o", str(out), "--backend", "rules", "--workers", "2", "--quiet")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = out.read_bytes().count(b"\n")
    assert 20 <= finished < 600

    rerun = _cli("batch", str(folder), "-o", str(out), "--backend", "rules", "--workers", "2", "--quiet")
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr.decode()
    assert len(ids(out)) == 600 == len(set(ids(out)))
    time.sleep(1.5)  # the killed run's workers notice their parent is gone within half a second
    assert _processes_mentioning(str(folder)) == []


def test_a_file_name_that_is_not_utf8_costs_one_article(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.txt").write_text((EVAL / "210_jixi_changwei.txt").read_text("utf-8"), "utf-8")
    (Path(os.fsdecode(bytes(folder) + b"/\xff.txt"))).write_bytes("市政协开展调研5次。".encode())
    out = tmp_path / "results.jsonl"
    for _ in range(2):  # and again on a re-run
        report = run_batch(folder, out, Settings(backend="rules"), quiet=True)
        assert report.done + report.skipped == 1 and report.failed == 1
    (record,) = [json.loads(line) for line in errors_path_for(out).read_text("utf-8").splitlines()]
    assert "\\xff.txt" in record["message"] and "not valid UTF-8" in record["message"]


def test_a_folder_with_nothing_to_do_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.md").write_text("x", "utf-8")
    with pytest.raises(ConfigError, match="no files match --glob"):
        run_batch(tmp_path / "in", tmp_path / "out.jsonl", Settings(backend="rules"), quiet=True)


def test_batch_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text((EVAL / "210_jixi_changwei.txt").read_text("utf-8"), "utf-8")
    table = tmp_path / "table.csv"
    table.write_text("article,value\na,1\n", "utf-8")
    with pytest.raises(ConfigError, match="not a results file of this tool"):
        run_batch(folder, table, Settings(backend="rules"), quiet=True)
    assert table.read_text("utf-8") == "article,value\na,1\n"
    with pytest.raises(ConfigError, match="is one of the input articles"):
        run_batch(folder, folder / "a.txt", Settings(backend="rules"), quiet=True, force=True)
    report = run_batch(folder, table, Settings(backend="rules"), quiet=True, force=True)  # asked for
    assert report.done == 1 and table.read_text("utf-8").startswith('{"article_id"')


def test_the_rules_deadline_is_per_article_not_per_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """A roundup of many sections, each quick but all together too slow, runs out of the article's time."""
    import summarizer.backends.rules as rules
    from summarizer.errors import ArticleTimeoutError
    from summarizer.pipeline import summarise_article

    real = rules.find_metrics

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(0.05)  # every section takes a little
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "find_metrics", slow)
    monkeypatch.setattr(rules, "MIN_SECONDS", 0.3)
    parts = "".join(f"【{name}政协】\n开展专题协商5次，提交提案30件。\n" for name in ROUNDUP_COUNTIES)
    page = Path(tempfile.mkdtemp()) / "roundup.txt"
    page.write_text("某市各县政协工作综述\n" + parts, "utf-8")
    settings = Settings(backend="rules", cpu_seconds_per_100kb=0.001, use_cache=False)
    with pytest.raises(ArticleTimeoutError, match="ran past"):
        summarise_article(page, settings)  # 12 sections x 0.05 s > 0.3 s, though each is within it


def test_the_rules_leave_no_timer_behind() -> None:
    """One timer serves a whole article; when the article is done (or fails) it is gone, and the
    SIGALRM handler that was there before is back."""
    import signal

    from summarizer.pipeline import summarise_article

    before = signal.getsignal(signal.SIGALRM)
    parts = "".join(f"【{name}政协】\n开展专题协商5次，提交提案30件。\n" for name in ROUNDUP_COUNTIES)
    page = Path(tempfile.mkdtemp()) / "roundup.txt"
    page.write_text("某市各县政协工作综述\n" + parts, "utf-8")
    summary = summarise_article(page, Settings(backend="rules", use_cache=False))
    assert len(summary.bodies) == len(ROUNDUP_COUNTIES)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


def test_a_failing_section_stops_a_cpu_bound_article_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU-bound backend's chunks run one after another: the first failure is the article's
    error, and the sections after it are not worked on."""
    import summarizer.backends.rules as rules
    from summarizer.errors import OutputValidationError
    from summarizer.pipeline import summarise_article

    real = rules.find_metrics
    asked: list[int] = []

    def failing_on_third(text: str, start: int, *args: object, **kwargs: object) -> object:
        asked.append(start)
        if len(asked) == 3:
            raise OutputValidationError("the third section cannot be read")
        return real(text, start, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "find_metrics", failing_on_third)
    parts = "".join(f"【{name}政协】\n开展专题协商5次，提交提案30件。\n" for name in ROUNDUP_COUNTIES)
    page = Path(tempfile.mkdtemp()) / "roundup.txt"
    page.write_text("某市各县政协工作综述\n" + parts, "utf-8")
    with pytest.raises(OutputValidationError, match=f"chunk 3/{len(ROUNDUP_COUNTIES)}: the third section"):
        summarise_article(page, Settings(backend="rules", use_cache=False))
    assert len(asked) == 3


def test_in_a_small_batch_slow_articles_do_not_use_up_the_others_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules' per-article limit counts each article's own work, not the time it waited behind
    slow neighbours in the same run (each of which stays within its own limit)."""
    import summarizer.backends.rules as rules

    real = rules.find_metrics

    def slow_on_marked(text: str, *args: object, **kwargs: object) -> object:
        if "慢慢" in text:
            time.sleep(0.4)  # within the limit, but three of them take longer than it
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "find_metrics", slow_on_marked)
    monkeypatch.setattr(rules, "MIN_SECONDS", 0.8)
    folder = tmp_path / "in"
    folder.mkdir()
    page = (EVAL / "210_jixi_changwei.txt").read_text("utf-8").replace("政协", "政协（慢慢）", 1)
    for number in range(3):
        (folder / f"a_slow{number}.txt").write_text(page, "utf-8")
    for path in sorted(EVAL.glob("2*.txt"))[:4]:
        shutil.copy(path, folder / path.name)
    out = tmp_path / "results.jsonl"
    report = run_batch(folder, out, Settings(backend="rules", cpu_seconds_per_100kb=0.001, workers=1), quiet=True)
    assert (report.done, report.failed) == (7, 0), errors_path_for(out).read_text("utf-8") if report.failed else ""


def test_the_adaptive_window_shrinks_for_a_queue_not_for_a_slow_model() -> None:
    async def run(latency_of: object, requests: int = 24) -> int:
        limiter = Limiter(8, queue_deadline=4.0, clock=loop_clock)
        peak = 0

        async def one() -> None:
            nonlocal peak
            async with limiter.request() as permit:
                peak = max(peak, limiter.in_flight)
                await asyncio.sleep(latency_of(limiter.in_flight))  # type: ignore[operator]
                permit.answer()

        await asyncio.gather(*(one() for _ in range(requests)))
        return peak

    # A parallel server that is slow (1.5 s whatever the load, close to half the 4 s deadline): all 8.
    assert run_on_virtual_time(run(lambda n: 1.5)) == 8
    # A one-slot server: each request waits for the ones before it.
    lock = asyncio.Lock()

    async def serial() -> None:
        async with lock:
            await asyncio.sleep(0.2)

    async def queued(requests: int = 12) -> float:
        limiter = Limiter(8, queue_deadline=1.0, clock=loop_clock)
        worst = 0.0

        async def one() -> None:
            nonlocal worst
            async with limiter.request() as permit:
                began = loop_clock()
                await serial()
                permit.answer()
                worst = max(worst, loop_clock() - began)

        await asyncio.gather(*(one() for _ in range(requests)))
        return worst

    assert run_on_virtual_time(queued()) < 1.0  # no request waited past the deadline


def test_a_page_the_rules_cannot_finish_in_time_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import summarizer.backends.rules as rules

    real = rules.find_metrics

    def stuck_on_marked(text: str, *args: object, **kwargs: object) -> object:
        while "卡住" in text:  # a pathological page: never finishes on its own
            time.sleep(0.01)
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "find_metrics", stuck_on_marked)
    monkeypatch.setattr(rules, "MIN_SECONDS", 0.3)
    folder = tmp_path / "in"
    folder.mkdir()
    good = (EVAL / "210_jixi_changwei.txt").read_text("utf-8")
    (folder / "good.txt").write_text(good, "utf-8")
    (folder / "stuck.txt").write_text(good.replace("政协", "政协卡住", 1), "utf-8")
    out = tmp_path / "results.jsonl"
    began = time.monotonic()
    report = run_batch(folder, out, Settings(backend="rules", cpu_seconds_per_100kb=0.001, workers=1), quiet=True)
    assert time.monotonic() - began < 5
    assert report.done == 1 and report.failed == 1
    (record,) = [json.loads(line) for line in errors_path_for(out).read_text("utf-8").splitlines()]
    assert record["article_id"] == "stuck" and "ran past" in record["message"]


# --- outputs that cannot be written ------------------------------------------------------------


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("summarizer: error:")]
    return line


def test_an_unusable_output_path_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 2)
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("x", "utf-8")
    cases = [
        (["-o", "/dev/full", "--force"], "/dev/full", "not a regular file"),  # an endless read before the fix
        (["-o", str(in_the_way / "results.jsonl")], str(in_the_way), "a file of that name is in the way"),
        (["-o", str(in_the_way / "deeper" / "results.jsonl")], str(in_the_way), "Not a directory"),
    ]
    for args, names, reason in cases:
        process = _cli("batch", str(folder), *args, "--backend", "fake", "--quiet")
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 2, (args, stderr)
        line = _one_error_line(stderr.decode())
        assert names in line and reason in line, line
    assert in_the_way.read_text("utf-8") == "x"


def test_a_read_only_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 3)
    where = tmp_path / "out"
    where.mkdir()
    out = where / "results.jsonl"
    batch(tmp_path, make_folder(tmp_path / "first", 1), out)  # a results file that is writable itself
    before = out.read_bytes()
    with read_only(where):
        result = CliRunner().invoke(app, ["batch", str(folder), "-o", str(out), "--backend", "fake", "--quiet"])
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert str(where) in line and ("Permission denied" in line or "Operation not permitted" in line), line
    assert out.read_bytes() == before and FakeBackend.calls == 1  # nothing was asked for


def test_a_full_disk_stops_the_batch_at_once_and_keeps_whole_lines(tmp_path: Path) -> None:
    """A real failing write: the kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG), as a full
    disk refuses with ENOSPC; the first write of the line that crosses the limit is short."""
    import resource

    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(EVAL.glob("2*.txt"))[:12]:
        shutil.copy(path, folder / path.name)
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "summarizer.cli", "batch", str(folder), "-o", str(out), "-b", "rules", "-q"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    limited = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=120)
    assert limited.returncode == 1, limited.stderr
    line = _one_error_line(limited.stderr)
    assert str(out) in line and "File too large" in line and "the lines written are kept" in line
    kept = ids(out)  # whole lines only, none cut off
    assert 1 <= len(kept) < 12 and out.stat().st_size <= 30_000
    report = run_batch(folder, out, Settings(backend="rules"), quiet=True)  # space again: it resumes
    assert report.skipped == len(kept) and report.done == 12 - len(kept)
    assert sorted(ids(out)) == sorted(p.stem for p in folder.glob("*.txt"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_stops_asking_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    import summarizer.batch.writer as batch_module

    folder = make_folder(tmp_path / "in", 40)
    real = batch_module.append_line
    written: list[str] = []

    def failing(fd: int, text: str, sync: bool = True) -> None:
        if len(written) == 3:
            raise OSError(code, os.strerror(code))
        real(fd, text, sync)
        written.append(text)

    monkeypatch.setattr(batch_module, "append_line", failing)
    monkeypatch.setenv("FAKE_DELAY", "0.01")
    out = tmp_path / "results.jsonl"
    with pytest.raises(WriteError, match=os.strerror(code)) as caught:
        batch(tmp_path, folder, out, config=settings(tmp_path, concurrency=2, use_cache=False))
    assert str(out) in str(caught.value) and "stopped after 3 of 40" in str(caught.value)
    assert len(ids(out)) == 3
    assert FakeBackend.calls <= 3 + 2 * 2 * 2  # the ones in flight when the write failed, not the other 30


def test_a_kill_during_the_final_rewrite_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in", 6, nested=False)
    out = tmp_path / "results.jsonl"
    batch(tmp_path, folder, out)
    (folder / "a000.txt").write_text(article_text(0) + "补充:委员参与99人。\n", "utf-8")
    # The second run appends a000's new line, writes the file without the old one to a temp file and
    # is killed just before moving it into place.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from summarizer.cli import app\n"
            "app(sys.argv[1:])",
            "batch",
            str(folder),
            "-o",
            str(out),
            "--backend",
            "fake",
            "--quiet",
        ],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in tmp_path.glob(".*.tmp")], "the kill left no temp file: nothing was tested"
    assert len(ids(out)) == 7  # the old and the new line of a000

    report = batch(tmp_path, folder, out)
    assert report.skipped == 6 and report.ok
    assert not list(tmp_path.glob(".*.tmp"))
    assert sorted(ids(out)) == [f"a{i:03d}" for i in range(6)]
    (new,) = [line for line in lines(out) if line["article_id"] == "a000"]
    assert "99" in json.dumps(new, ensure_ascii=False)


def test_a_bad_value_in_the_environment_is_exit_2_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path / "in", 1)
    monkeypatch.setenv("SUMMARIZER_CONCURRENCY", "many")
    result = CliRunner().invoke(app, ["batch", str(folder), "-o", "r.jsonl", "--backend", "fake"])
    assert result.exit_code == 2
    assert "concurrency" in _one_error_line(result.stderr) and "'many'" in result.stderr
