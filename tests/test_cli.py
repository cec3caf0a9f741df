"""The command line as a user runs it: summarise, eval, cache, errors and the import contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import EVAL_ARTICLES
from summarizer.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_summarise_prints_grounded_json_and_says_it_used_rules() -> None:
    path = EVAL_ARTICLES[1]
    result = runner.invoke(app, ["summarise", str(path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    text = path.read_text(encoding="utf-8")
    assert summary["article_id"] == path.stem and summary["meta"]["backend"] == "rules"
    items = [i for b in summary["bodies"] for i in b["metrics"] + b["key_initiatives"]]
    assert items and all(text[i["span"][0] : i["span"][1]] == i["evidence"] for i in items)
    assert "rules backend" in result.stderr


def test_summarise_to_file_writes_a_results_line(tmp_path: Path) -> None:
    out = tmp_path / "one.jsonl"
    result = runner.invoke(app, ["summarise", str(EVAL_ARTICLES[0]), "--backend", "rules", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and out.name in result.stderr  # the data went to the file
    (line,) = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["article_id"] == EVAL_ARTICLES[0].stem


def test_bad_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01\x02binary")
    result = runner.invoke(app, ["summarise", str(bad), "--backend", "rules"])
    assert result.exit_code == 2  # an input error
    errors = [line for line in result.stderr.splitlines() if line.startswith("summarizer: error")]
    assert len(errors) == 1 and str(bad) in errors[0] and "binary" in errors[0]
    assert "Traceback" not in result.output


def test_usage_errors_exit_2() -> None:
    result = runner.invoke(app, ["summarise", str(EVAL_ARTICLES[0]), "--backend", "nonsense"])
    assert result.exit_code == 2
    assert "unknown backend" in result.stderr


def test_openai_without_a_model_is_a_clear_config_error() -> None:
    result = runner.invoke(
        app,
        ["summarise", str(EVAL_ARTICLES[0]), "--backend", "openai"],
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert result.exit_code != 0
    assert "model" in result.stderr.lower()


def test_eval_writes_the_three_reports(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--backend", "rules", "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert set(report["splits"]) == {"dev", "test"} and report["run"]["failed"] == []
    assert report["splits"]["dev"]["articles"] + report["splits"]["test"]["articles"] == len(report["per_article"])
    assert "dev (" in result.stdout and "test (" in result.stdout
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()
    again = runner.invoke(app, ["eval", "--compare", str(tmp_path / "report.json"), str(tmp_path / "report.json")])
    assert again.exit_code == 0 and "metrics" in again.stdout


def test_cache_commands(tmp_path: Path) -> None:
    stats = runner.invoke(app, ["cache", "stats", "--cache-dir", str(tmp_path)])
    assert stats.exit_code == 0 and "entries: 0" in stats.stdout
    cleared = runner.invoke(app, ["cache", "clear", "--cache-dir", str(tmp_path)])
    assert cleared.exit_code == 0 and "removed 0" in cleared.stderr  # a message: stdout is for data


def test_help_runs_as_an_installed_command() -> None:
    exe = shutil.which("summarizer", path=str(Path(sys.executable).parent))
    assert exe, "the console script is installed with the package"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "summarise" in result.stdout


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency"
    result = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_exhausted_reasks_name_article_chunk_and_last_reply(fake: object) -> None:
    from fake_openai import FakeOpenAI, chat

    assert isinstance(fake, FakeOpenAI)
    fake.default = lambda seen: chat('{"bodies": [ not json')
    path = EVAL_ARTICLES[0]
    result = runner.invoke(app, ["summarise", str(path), "--model", "fake-model", "--no-cache"])
    assert result.exit_code == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("summarizer: error")]
    import re

    assert path.stem in line and len(re.findall(r"chunk \d+/\d+", line)) == 1  # chunks run in parallel
    assert "last reply" in line and "not json" in line


def test_eval_says_which_articles_failed_and_exits_1(fake: object, tmp_path: Path) -> None:
    from fake_openai import FakeOpenAI, chat

    assert isinstance(fake, FakeOpenAI)
    fake.default = lambda seen: chat("not json at all")
    result = runner.invoke(
        app, ["eval", "--backend", "openai", "--model", "fake-model", "--report-dir", str(tmp_path), "--no-cache"]
    )
    assert result.exit_code == 1
    assert result.stderr.count("failed: ") == len(EVAL_ARTICLES)
    assert "articles failed" in result.stderr and (tmp_path / "report.json").is_file()


def test_batch_errors_record_the_requests_a_failure_cost(fake: object, tmp_path: Path) -> None:
    import shutil

    from fake_openai import FakeOpenAI, chat

    assert isinstance(fake, FakeOpenAI)
    fake.default = lambda seen: chat("not json at all")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EVAL_ARTICLES[0], folder / "one.txt")
    out = tmp_path / "results.jsonl"
    from summarizer.article import load_article
    from summarizer.chunk import chunk_article
    from summarizer.sections import split_sections

    article = load_article(EVAL_ARTICLES[0])
    chunks = len(chunk_article(article, split_sections(article), 400, 150))
    result = runner.invoke(
        app,
        [
            "batch",
            str(folder),
            "-o",
            str(out),
            "--backend",
            "openai",
            "--model",
            "fake-model",
            "--no-cache",
            "--concurrency",
            "1",
        ],
        env={"SUMMARIZER_CHUNK_TOKENS": "400"},
    )
    assert result.exit_code == 1
    (error,) = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert error["error"] == "OutputValidationError"
    assert error["attempts"] == 3  # the first ask and two re-asks, then the chunk gave up
    # Once one chunk has failed the article, its other chunks are cancelled instead of asked to exhaustion.
    assert chunks >= 4 and fake.count < 3 * chunks


def test_the_us_spelling_works_too() -> None:
    result = runner.invoke(app, ["summarize", str(EVAL_ARTICLES[0]), "--backend", "rules", "--compact"])
    assert result.exit_code == 0 and json.loads(result.stdout)["bodies"]


def test_cache_stats_does_not_create_a_cache(tmp_path: Path) -> None:
    where = tmp_path / "nothing-here"
    stats = runner.invoke(app, ["cache", "stats", "--cache-dir", str(where)])
    assert stats.exit_code == 0 and "entries: 0" in stats.stdout
    assert not where.exists()


def test_verbose_keeps_the_http_stack_quiet() -> None:
    import logging

    runner.invoke(app, ["-v", "cache", "stats", "--cache-dir", "/nonexistent-cache-dir"])
    assert all(logging.getLogger(name).level == logging.WARNING for name in ("httpx", "httpx2", "httpcore"))


def test_batch_progress_sink_passes_every_call_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink that has rich imported ahead of the report table shows the same progress as the one it wraps."""
    from summarizer import cli
    from summarizer.progress import Tally

    calls: list[tuple[str, int]] = []
    imports: list[str] = []

    class Recorder:
        def start(self, total: int) -> None:
            calls.append(("start", total))

        def update(self, tally: Tally) -> None:
            calls.append(("update", tally.finished))

        def finish(self, tally: Tally) -> None:
            calls.append(("finish", tally.finished))

    monkeypatch.setattr(cli, "import_table", lambda: imports.append("rich"))
    sink = cli.TableAhead(Recorder())
    sink.start(3)
    for done in range(4):
        sink.update(Tally(total=3, done=done))
    sink.finish(Tally(total=3, done=3))
    assert calls == [("start", 3), ("update", 0), ("update", 1), ("update", 2), ("update", 3), ("finish", 3)]
    for thread in threading.enumerate():
        if thread.name == "summarizer-import-rich":
            thread.join()
    assert imports == ["rich"]  # once, after the first finished article
