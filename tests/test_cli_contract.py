"""What every command shares: one results format, one exit-code table, data on stdout and messages on stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import EVAL_ARTICLES
from summarizer.cli import EXIT_CODES, app

runner = CliRunner()
GOLD = Path(__file__).resolve().parents[1] / "eval" / "gold"
COMMANDS = [
    ["summarise"],
    ["summarize"],
    ["batch"],
    ["export"],
    ["view"],
    ["eval"],
    ["cache", "stats"],
    ["cache", "clear"],
]


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> object:
    return runner.invoke(app, [str(a) for a in args], env=env)


def gold_for(tmp_path: Path, *articles: Path) -> Path:
    gold = tmp_path / "gold"
    gold.mkdir()
    for article in articles:
        shutil.copy(GOLD / f"{article.stem}.json", gold)
    return gold


def score(predictions: Path, tmp_path: Path, *articles: Path) -> object:
    """`summarizer eval --predictions` against the gold labels of these articles only."""
    gold = gold_for(tmp_path, *articles)
    return invoke(
        "eval",
        "--predictions",
        predictions,
        "--gold",
        gold,
        "--articles",
        articles[0].parent,
        "--report-dir",
        tmp_path / "report",
    )


def test_what_summarise_writes_is_read_by_export_and_eval(tmp_path: Path) -> None:
    first, second = EVAL_ARTICLES[:2]
    results = tmp_path / "results.jsonl"
    for article in (first, second, first):  # a re-run appends; the last line of an article wins
        done = invoke("summarise", article, "-b", "rules", "-o", results)
        assert done.exit_code == 0, done.stderr  # type: ignore[attr-defined]
    assert len(results.read_text("utf-8").splitlines()) == 3
    exported = invoke("export", results, "--csv-bodies", tmp_path / "c.csv")
    assert exported.exit_code == 0 and "2 articles" in exported.stderr  # type: ignore[attr-defined]
    scored = score(results, tmp_path, first, second)
    assert scored.exit_code == 0, scored.stderr  # type: ignore[attr-defined]
    report = json.loads((tmp_path / "report" / "report.json").read_text("utf-8"))
    assert len(report["per_article"]) == 2 and not report["run"].get("failed")


def test_one_pretty_printed_summary_is_a_results_file_too(tmp_path: Path) -> None:
    article = EVAL_ARTICLES[0]
    shown = invoke("summarise", article, "-b", "rules")
    pretty = tmp_path / "one.json"
    pretty.write_text(shown.stdout, "utf-8")  # type: ignore[attr-defined]
    assert pretty.read_text("utf-8").startswith("{\n")
    exported = invoke("export", pretty, "--csv", tmp_path / "m.csv")
    assert exported.exit_code == 0 and "1 articles" in exported.stderr  # type: ignore[attr-defined]
    scored = score(pretty, tmp_path, article)
    assert scored.exit_code == 0, scored.stderr  # type: ignore[attr-defined]
    # Appending to it turns it into JSON lines, the earlier summary first.
    assert invoke("summarise", EVAL_ARTICLES[1], "-b", "rules", "-o", pretty).exit_code == 0  # type: ignore[attr-defined]
    ids = [json.loads(line)["article_id"] for line in pretty.read_text("utf-8").splitlines()]
    assert ids == [article.stem, EVAL_ARTICLES[1].stem]


def test_summarise_never_appends_to_a_file_it_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n", "utf-8")
    refused = invoke("summarise", EVAL_ARTICLES[0], "-b", "rules", "-o", notes)
    assert refused.exit_code == 2 and "not a results file" in refused.stderr  # type: ignore[attr-defined]
    assert notes.read_text("utf-8") == "my notes\n"
    forced = invoke("summarise", EVAL_ARTICLES[0], "-b", "rules", "-o", notes, "--force")
    assert forced.exit_code == 0
    assert json.loads(notes.read_text("utf-8"))["article_id"] == EVAL_ARTICLES[0].stem


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_help_states_the_exit_codes_and_shows_no_placeholder_for_switches(command: list[str]) -> None:
    shown = invoke(*command, "--help")
    assert shown.exit_code == 0
    flat = " ".join(shown.stdout.split())  # type: ignore[attr-defined]
    assert " ".join(EXIT_CODES.split()) in flat
    assert "<bool>" not in flat and "--verbose" in flat  # -v after the subcommand too


def test_exit_codes_are_the_same_for_every_command(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EVAL_ARTICLES[0], folder)
    results = tmp_path / "results.jsonl"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    ok = invoke("batch", folder, "-o", results, "-b", "rules", "-q", "-v")
    assert ok.exit_code == 0 and ok.stdout == ""  # type: ignore[attr-defined]  # the table is a message
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    some_failed = invoke("batch", folder, "-o", results, "-b", "rules", "-q")
    empty = tmp_path / "empty"
    empty.mkdir()
    gold = gold_for(tmp_path, EVAL_ARTICLES[0])
    eval_args = ["--gold", gold, "--articles", EVAL_ARTICLES[0].parent, "--report-dir", tmp_path / "r"]
    codes = {
        "summarise done": invoke("summarise", EVAL_ARTICLES[0], "-b", "rules", "--no-cache"),
        "summarise missing file": invoke("summarise", tmp_path / "none.txt", "-b", "rules"),
        "summarise bad option": invoke("summarise", EVAL_ARTICLES[0], "--backend", "nonsense"),
        "batch some failed": some_failed,
        "batch empty folder": invoke("batch", empty, "-o", tmp_path / "e.jsonl", "-b", "rules"),
        "batch bad env value": invoke(
            "batch", folder, "-o", tmp_path / "x.jsonl", "-b", "rules", env={"SUMMARIZER_CONCURRENCY": "abc"}
        ),
        "export done": invoke("export", results, "--csv", tmp_path / "m.csv"),
        "export missing file": invoke("export", tmp_path / "none.jsonl", "--csv", tmp_path / "m2.csv"),
        "view done": invoke("view", results, "-o", tmp_path / "view.html"),
        "view missing file": invoke("view", tmp_path / "none.jsonl", "-o", tmp_path / "v2.html"),
        "collect missing file": invoke("collect", tmp_path / "none.jsonl", "-o", tmp_path / "c.jsonl"),
        "eval done": invoke("eval", "--predictions", results, *eval_args),
        "eval missing gold": invoke("eval", "--predictions", results, "--gold", tmp_path / "nogold"),
        "cache stats done": invoke("cache", "stats", *cache),
        "cache clear done": invoke("cache", "clear", *cache),
        "cache stats bad env value": invoke("cache", "stats", env={"SUMMARIZER_TIMEOUT": "soon"}),
    }
    expected = {name: 0 if "done" in name else 1 if "failed" in name else 2 for name in codes}
    assert {name: result.exit_code for name, result in codes.items()} == expected  # type: ignore[attr-defined]
    for name, result in codes.items():
        if expected[name]:
            (line,) = [ln for ln in result.stderr.splitlines() if "error" in ln.lower()]  # type: ignore[attr-defined]
            assert "Traceback" not in result.output, name  # type: ignore[attr-defined]
            assert line, name


def test_a_results_file_with_a_first_line_past_64_kb_is_still_ours(tmp_path: Path) -> None:
    from summarizer.results import looks_like_results
    from summarizer.schema import ArticleSummary, BodySummary

    long = ArticleSummary(article_id="a", bodies=[BodySummary(body="甲县政协", level="county", summary="长" * 40_000)])
    results = tmp_path / "results.jsonl"
    results.write_text(long.model_dump_json() + "\n", "utf-8")
    assert results.stat().st_size > 65_536 and looks_like_results(results)
    again = invoke("summarise", EVAL_ARTICLES[0], "-b", "rules", "-o", results)  # appends, no --force needed
    assert again.exit_code == 0, again.stderr  # type: ignore[attr-defined]
    assert len(results.read_text("utf-8").splitlines()) == 2


def test_batch_onto_one_pretty_printed_summary_keeps_it(tmp_path: Path) -> None:
    first, second = EVAL_ARTICLES[:2]
    pretty = tmp_path / "res.json"
    pretty.write_text(invoke("summarise", first, "-b", "rules").stdout, "utf-8")  # type: ignore[attr-defined]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(second, folder)
    done = invoke("batch", folder, "-o", pretty, "-b", "rules", "-q")
    assert done.exit_code == 0, done.stderr  # type: ignore[attr-defined]
    ids = [json.loads(line)["article_id"] for line in pretty.read_text("utf-8").splitlines()]
    assert sorted(ids) == sorted([first.stem, second.stem])  # the earlier summary was not dropped
