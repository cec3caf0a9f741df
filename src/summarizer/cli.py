"""The `summarizer` command: parse options, call one library function, print, map errors to exit codes.

Heavy modules (openai, tiktoken, the pipeline) are imported inside the commands so `--help` is quick.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from .progress import ProgressSink, Tally
    from .settings import Settings

# The same for every command, in every --help and in the README.
EXIT_CODES = (
    "Exit codes: 0 done; 1 some articles failed (or a run stopped: refused key, interrupted); "
    "2 usage or input error (bad option, missing or unreadable file, refused output). "
    "Data goes to stdout or -o; messages go to stderr."
)

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Grounded structured summaries of Chinese CPPCC (政协) work reports and news pages.",
    epilog=EXIT_CODES,
)
cache_app = typer.Typer(no_args_is_help=True, help="Inspect or empty the result cache.", epilog=EXIT_CODES)
app.add_typer(cache_app, name="cache")


def flag(*names: str, help: str) -> Any:
    """A switch, off unless given."""
    return typer.Option(False, *names, help=help, show_default=False)


def _type_column(param: Any, ctx: Any, _shown: Any = typer.core.TyperOption.display_type_rich) -> str | None:
    # This Typer release prints a value placeholder ("<bool>") beside switches such as --help,
    # which take no value: show none for them.
    return None if getattr(param, "is_flag", False) else _shown(param, ctx)


setattr(typer.core.TyperOption, "display_type_rich", _type_column)  # noqa: B010


def _set_verbose(value: bool) -> None:
    if value:  # after the subcommand too: `summarizer batch DIR -o X -v`
        logging.getLogger().setLevel(logging.DEBUG)


# Every command takes -v as well, so it works after the subcommand as users type it.
VERBOSE = typer.Option(
    False,
    "--verbose",
    "-v",
    help="Debug logging on stderr.",
    show_default=False,
    callback=_set_verbose,
    expose_value=False,
)


# Options several commands share, defined once so they read and behave the same everywhere.
MODEL = typer.Option(None, "--model", "-m", envvar="SUMMARIZER_MODEL", help="Model name for the openai backend.")
CACHE_DIR = typer.Option(None, "--cache-dir", envvar="SUMMARIZER_CACHE_DIR", help="Cache folder (default: cache/).")
NO_CACHE = flag("--no-cache", help="Neither read nor write the cache.")
TIMEOUT = typer.Option(None, "--timeout", min=0.001, help="Seconds one model request may take.")
JSON_MODE = typer.Option(None, "--json-mode", help="auto | schema | object | plain.")
CONCURRENCY = typer.Option(None, "--concurrency", "-j", min=1, help="Requests in flight.")
MAX_FILE_BYTES = typer.Option(None, "--max-file-bytes", help="Refuse larger input files.")


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit."""
    typer.echo(f"summarizer: error: {message}", err=True)
    raise typer.Exit(code)


def notice(message: str) -> None:
    typer.echo(f"summarizer: {message}", err=True)


def build_settings(**overrides: Any) -> Settings:
    from .errors import SummarizerError
    from .settings import load_settings

    try:
        return load_settings(overrides)
    except SummarizerError as exc:
        fail(str(exc), 2)


def run_guarded(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a library function; turn our errors into one line and an exit code."""
    from .errors import SummarizerError

    try:
        return function(*args, **kwargs)
    except SummarizerError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        last_reply = getattr(exc, "last_reply", None)
        if last_reply:  # the model's last answer, shortened to fit the one line
            flat = " ".join(str(last_reply).split())
            message += f"; last reply: {flat[:160]!r}" + (" …" if len(flat) > 160 else "")
        fail(message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except typer.Exit:
        raise
    except Exception as exc:  # a bug, not bad input: one line, the traceback only with --verbose
        logging.getLogger("summarizer").debug("unexpected error", exc_info=True)
        fail(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)")


@app.callback()
def main(verbose: bool = flag("--verbose", "-v", help="Debug logging on stderr.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The HTTP stack's debug lines carry request headers (the API key among them): never with -v.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command(epilog=EXIT_CODES)
def summarise(
    verbose: bool = VERBOSE,
    path: Path = typer.Argument(..., help="Article text file (UTF-8, UTF-8 with BOM, or GB18030/GBK)."),
    backend: str | None = typer.Option(
        None,
        "--backend",
        "-b",
        help="rules | openai | auto (openai when a key or base URL is set). [default: SUMMARIZER_BACKEND, else auto]",
    ),
    model: str | None = MODEL,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Add the result as a line to this results file (JSONL, as batch writes)."
    ),
    compact: bool = flag("--compact", help="One line of JSON on stdout instead of pretty-printed."),
    force: bool = flag("--force", help="With -o: replace a file that is not a results file."),
    cache_dir: Path | None = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    timeout: float | None = TIMEOUT,
    json_mode: str | None = JSON_MODE,
    chunk_tokens: int | None = typer.Option(None, "--chunk-tokens", help="Token budget per chunk."),
    max_file_bytes: int | None = MAX_FILE_BYTES,
) -> None:
    """Summarise one article and print its ArticleSummary as JSON.

    Example: summarizer summarise eval/articles/001_c079abc98a656ef6.txt --backend rules
    """
    from .pipeline import resolve_backend_name, summarise_article

    settings = build_settings(
        backend=backend,
        model=model,
        cache_dir=cache_dir,
        use_cache=False if no_cache else None,
        timeout=timeout,
        json_mode=json_mode,
        chunk_tokens=chunk_tokens,
        max_file_bytes=max_file_bytes,
    )
    _, message = resolve_backend_name(settings)
    if message:
        notice(message)
    result = run_guarded(summarise_article, path, settings)
    if output:
        from .results import append_result

        run_guarded(append_result, output, result, force=force)
        notice(f"{result.article_id}: {len(result.bodies)} committees -> {output}")
    else:
        typer.echo(result.model_dump_json(indent=None if compact else 2))


# The US spelling works too (hidden from the command list).
app.command("summarize", hidden=True, epilog=EXIT_CODES)(summarise)


@app.command(epilog=EXIT_CODES)
def batch(
    verbose: bool = VERBOSE,
    directory: Path = typer.Argument(..., metavar="DIR", help="Folder of article files (read recursively)."),
    output: Path = typer.Option(..., "--output", "-o", help="Results file, one JSON summary per line."),
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="rules | openai | auto. [default: SUMMARIZER_BACKEND, else auto]"
    ),
    model: str | None = MODEL,
    glob: str = typer.Option("**/*.txt", "--glob", help="Which files, relative to DIR."),
    concurrency: int | None = CONCURRENCY,
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="At most this many requests per minute."),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="At most this many tokens per minute."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Processes for the rules backend."),
    force: bool = flag("--force", help="Redo articles already in the results file."),
    quiet: bool = flag("--quiet", "-q", help="No progress bar or progress lines."),
    cache_dir: Path | None = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    max_file_bytes: int | None = MAX_FILE_BYTES,
    timeout: float | None = TIMEOUT,
    json_mode: str | None = JSON_MODE,
    via: str = typer.Option(
        "online", "--via", help="online: ask the model now | batch-file: write Batch API requests (docs/scale.md)."
    ),
    submit: bool = flag("--submit", help="With --via batch-file: upload them as an OpenAI batch."),
) -> None:
    """Summarise every article in a folder into a JSONL file; failures go to <name>.errors.jsonl.

    Re-running the same command skips articles already done with the same input and settings.

    Example: summarizer batch eval/articles -o results.jsonl --backend rules

    With --via batch-file, no model is asked: every chunk's request goes to <name>.requests.jsonl for
    the OpenAI Batch API or `vllm run-batch`; `summarizer collect` reads the answers back.

    Example: summarizer batch articles/ --via batch-file -o results.jsonl --model gpt-4o-mini --submit
    """
    from .batch import run_batch

    if via not in ("online", "batch-file"):
        fail(f"--via {via!r}: choose online or batch-file", 2)
    if submit and via != "batch-file":
        fail("--submit goes with --via batch-file", 2)
    settings = build_settings(
        backend=backend,
        model=model,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        workers=workers,
        cache_dir=cache_dir,
        use_cache=False if no_cache else None,
        max_file_bytes=max_file_bytes,
        timeout=timeout,
        json_mode=json_mode,
    )
    if via == "batch-file":
        if settings.backend not in ("auto", "openai"):
            fail("--via batch-file asks a model: use --backend openai (or auto) with --model", 2)
        write_batch_file(directory, output, settings, glob=glob, force=force, submit=submit)
    from .progress import choose_progress

    progress = TableAhead(choose_progress(quiet))
    report = run_guarded(run_batch, directory, output, settings, glob=glob, force=force, progress=progress)
    from rich.console import Console
    from rich.table import Table

    if report.notice:
        notice(report.notice)
    table = Table(
        title=f"batch {directory} ({report.backend}{', ' + report.model if report.model else ''})", show_header=False
    )
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    for label, value in report.rows():
        table.add_row(label, value)
    Console(stderr=True).print(table)  # a report on the run; the data is in the results file
    show_failures(report.failures, report.errors_path)
    if report.stopped:
        fail(f"batch stopped: {report.stopped}")
    raise typer.Exit(0 if report.ok else 1)


class TableAhead:
    """A batch's progress sink that also has rich (for the report table) imported in a background
    thread once the first article is finished: rich is not needed to send the first request, and
    by then a model run is mostly waiting on replies, so the import leaves the run's start and end."""

    def __init__(self, inner: ProgressSink) -> None:
        self.inner = inner
        self.importing = False

    def start(self, total: int) -> None:
        self.inner.start(total)

    def update(self, tally: Tally) -> None:
        if tally.finished and not self.importing:
            self.importing = True
            threading.Thread(target=import_table, name="summarizer-import-rich", daemon=True).start()
        self.inner.update(tally)

    def finish(self, tally: Tally) -> None:
        self.inner.finish(tally)


def import_table() -> None:
    """Import what printing the report table needs (see `TableAhead`)."""
    for name in ("rich.console", "rich.table"):
        importlib.import_module(name)


def write_batch_file(
    directory: Path, output: Path, settings: Settings, *, glob: str, force: bool, submit: bool
) -> NoReturn:
    """`batch --via batch-file`: write the requests (and submit them), print one line, exit."""
    from .batchfile import write_requests

    report = run_guarded(write_requests, directory, output, settings, glob=glob, force=force)
    notice(f"batch-file: {report.written_line()}")
    show_failures(report.failures, report.errors_path)
    if submit:
        submit_batch(output, settings)
    raise typer.Exit(0 if report.failed == 0 else 1)


def submit_batch(output: Path, settings: Settings) -> None:
    from .batchfile import submit_requests_file

    submitted = run_guarded(submit_requests_file, output, settings)
    typer.echo(submitted.batch_id)
    notice(
        f"submitted as batch {submitted.batch_id} ({submitted.status}); when it has finished: "
        f"summarizer collect --batch-id {submitted.batch_id} -o {output}"
    )


def show_failures(failures: list[dict[str, Any]], errors_path: Path) -> None:
    for failure in failures[:5]:
        notice(f"failed: {failure['message']}")
    if len(failures) > 5:
        notice(f"... and {len(failures) - 5} more in {errors_path}")


@app.command(epilog=EXIT_CODES)
def collect(
    verbose: bool = VERBOSE,
    replies: Path | None = typer.Argument(
        None, metavar="OUTPUT.jsonl", help="The batch's output file (OpenAI Batch API or vllm run-batch)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The results file given to `batch --via batch-file`."),
    batch_id: str | None = typer.Option(None, "--batch-id", help="Download this batch's output instead of a file."),
    submit: bool = flag("--submit", help="Upload the next round's requests as a new batch."),
    cache_dir: Path | None = CACHE_DIR,
    no_cache: bool = NO_CACHE,
) -> None:
    """Read a batch's answers into the results file, as `batch` would have written them.

    Replies that fail the checks (re-asks) and errored requests go to the next round's requests
    file (<name>.requests-2.jsonl, ...); collect the output of that round the same way.
    Exit code 1 here also means some articles are still pending (in the next round's requests).

    Example: summarizer collect batch_output.jsonl -o results.jsonl
    Example: summarizer collect --batch-id batch_abc123 -o results.jsonl --submit
    """
    from .batchfile import collect_replies, fetch_batch_output

    if (replies is None) == (batch_id is None):
        fail("give the batch's output file or --batch-id ID (one of the two)", 2)
    settings = build_settings(cache_dir=cache_dir, use_cache=False if no_cache else None)
    if batch_id is not None:
        fetched = run_guarded(fetch_batch_output, batch_id, output, settings)
        if fetched.path is None:
            if fetched.status == "failed":
                fail(f"batch {batch_id} failed: {fetched.message}")
            notice(
                f"batch {batch_id} is {fetched.status} ({fetched.completed}/{fetched.total} requests done); "
                "collect again later"
            )
            raise typer.Exit(1)
        replies = fetched.path
    assert replies is not None
    report = run_guarded(collect_replies, replies, output, settings)
    notice(f"collect: {report.line()}")
    show_failures(report.failures, report.errors_path)
    if submit and report.requests_path is not None:
        submit_batch(output, settings)
    raise typer.Exit(0 if report.ok else 1)


@app.command(epilog=EXIT_CODES)
def export(
    verbose: bool = VERBOSE,
    results: Path = typer.Argument(..., help="A results file (from batch, summarise -o or collect)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write one row per metric here."),
    initiatives: Path | None = typer.Option(None, "--csv-initiatives", help="One row per initiative here."),
    bodies: Path | None = typer.Option(None, "--csv-bodies", help="One row per (article, committee) here."),
    xlsx: Path | None = typer.Option(None, "--xlsx", help="An Excel workbook with all three tables as sheets."),
    bom: bool = flag("--bom", help="Start CSV files with a UTF-8 byte-order mark (for Excel)."),
) -> None:
    """Turn a results file into tables for pandas or Excel: committees, metrics, initiatives.

    Example: summarizer export results.jsonl --csv-bodies committees.csv --csv metrics.csv --xlsx results.xlsx
    """
    from .export import export_csv, export_xlsx

    if csv_path is None and initiatives is None and bodies is None and xlsx is None:
        fail("nothing to write: give --csv, --csv-initiatives, --csv-bodies and/or --xlsx", 2)
    if xlsx is not None and xlsx in (csv_path, initiatives, bodies):
        fail(f"{xlsx}: given for the workbook and a CSV table; name one file each", 2)
    outputs = [p for p in (bodies, csv_path, initiatives, xlsx) if p]
    if csv_path or initiatives or bodies:
        counts = run_guarded(export_csv, results, csv_path, initiatives, bodies_csv=bodies, bom=bom)
    if xlsx is not None:
        counts = run_guarded(export_xlsx, results, xlsx)
    written = [(bodies, f"{counts.bodies} committees"), (csv_path, f"{counts.metrics} metrics")]
    written.append((initiatives, f"{counts.initiatives} initiatives"))
    tally = ", ".join(text for path, text in written if path or xlsx)
    notice(f"{counts.articles} articles: {tally} -> {', '.join(map(str, outputs))}")
    if counts.bad_lines:
        notice(f"skipped {counts.bad_lines} unreadable lines in {results}")
    if counts.articles == 0:
        fail(f"{results}: no readable summaries, so the tables have no rows", 2)


@app.command(epilog=EXIT_CODES)
def view(
    verbose: bool = VERBOSE,
    results: Path = typer.Argument(..., help="A results file (from batch, summarise -o or collect)."),
    output: Path = typer.Option(..., "--output", "-o", help="The HTML page to write."),
    articles: Path | None = typer.Option(
        None, "--articles", help="Folder to find the articles in by id, when the paths the results record have moved."
    ),
) -> None:
    """Write one self-contained HTML page to read a results file, no gold labels needed.

    The page lists every committee (filter by committee, level and year) and shows each article's
    text with every metric's and initiative's quote highlighted; click an item to jump to its quote.
    Exit code 1 here means some article texts or quotes could not be shown (the page says which).

    Example: summarizer view results.jsonl -o view.html
    """
    from .view import write_view

    counts = run_guarded(write_view, results, output, articles)
    notice(
        f"{counts.articles} articles: {counts.bodies} committees, {counts.items} metrics and initiatives -> {output}"
    )
    if counts.bad_lines:
        notice(f"skipped {counts.bad_lines} unreadable lines in {results}")
    if counts.missing:
        hint = "" if articles else " (pass --articles DIR if the files moved)"
        notice(f"{counts.missing} articles are listed without their text: file not found or unreadable{hint}")
    if counts.unverified:
        notice(f"{counts.unverified} quotes are not at their recorded span; the page marks them")
    if counts.articles == 0:
        fail(f"{results}: no readable summaries, so the page lists nothing", 2)
    if not counts.complete:
        raise typer.Exit(1)


@app.command("eval", epilog=EXIT_CODES)
def evaluate(
    verbose: bool = VERBOSE,
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="Backend to score: rules | openai. [default: SUMMARIZER_BACKEND, else rules]"
    ),
    model: str | None = MODEL,
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Score this results.jsonl instead of running a backend."
    ),
    gold: Path = typer.Option(Path("eval/gold"), "--gold", help="Folder of gold label files."),
    articles: Path = typer.Option(Path("eval/articles"), "--articles", help="Folder of the articles they label."),
    report_dir: Path = typer.Option(Path("reports/latest"), "--report-dir", help="Where report.json/.md/.html go."),
    compare: tuple[Path, Path] | None = typer.Option(
        None, "--compare", help="Show the deltas between two report.json files."
    ),
    cache_dir: Path | None = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    timeout: float | None = TIMEOUT,
    json_mode: str | None = JSON_MODE,
    concurrency: int | None = CONCURRENCY,
) -> None:
    """Score a backend (or a predictions file) against the hand-labelled eval set and write a report.

    Example: summarizer eval --backend rules --report-dir reports/rules
    """
    from rich.console import Console

    from .report import compare_reports, load_report, render_comparison, render_table, write_report

    console = Console()
    if compare:
        comparison = run_guarded(lambda: compare_reports(load_report(compare[0]), load_report(compare[1])))
        console.print(render_comparison(comparison))
        return
    from .evaluate import run_eval

    summarise_one = None
    if predictions is None:
        from .pipeline import summarise_article

        settings = build_settings(
            backend=backend,
            model=model,
            cache_dir=cache_dir,
            use_cache=False if no_cache else None,
            timeout=timeout,
            json_mode=json_mode,
            concurrency=concurrency,
        )
        if backend is None and settings.backend == "auto":  # eval scores the offline baseline unless told
            settings = dataclasses.replace(settings, backend="rules")

        def summarise_one(path: Path) -> Any:
            return summarise_article(path, settings)

    run = run_guarded(
        run_eval,
        gold_dir=gold,
        articles_dir=articles,
        predictions=predictions,
        summarise=summarise_one,
        backend=None if summarise_one is None else settings.backend,
        model=model,
    )
    paths = run_guarded(write_report, run.result, run.articles, report_dir)
    console.print(render_table(run.result))
    for kind, path in paths.items():
        notice(f"{kind} report: {path}")
    failed = run.result["run"].get("failed") or []
    for failure in failed:  # scored as all misses; say so rather than let a table of zeros speak
        notice(f"failed: {failure['error'].splitlines()[0] if failure['error'] else failure['article_id']}")
    if failed:
        fail(f"{len(failed)} of {len(run.articles)} articles failed; their items count as misses in the report")


@cache_app.command("stats", epilog=EXIT_CODES)
def cache_stats(
    verbose: bool = VERBOSE,
    cache_dir: Path | None = CACHE_DIR,
) -> None:
    """Show how many results the cache holds and how large it is.

    Example: summarizer cache stats
    """
    from .cache import DB_NAME, Cache

    settings = build_settings(cache_dir=cache_dir)
    if not (Path(settings.cache_dir) / DB_NAME).exists():  # looking must not create a cache
        typer.echo("entries: 0")
        notice(f"no cache at {settings.cache_dir}")
        return
    stats = run_guarded(lambda: Cache(settings.cache_dir).stats())
    for key, value in stats.items():
        typer.echo(f"{key}: {value}")


@cache_app.command("clear", epilog=EXIT_CODES)
def cache_clear(
    verbose: bool = VERBOSE,
    cache_dir: Path | None = CACHE_DIR,
) -> None:
    """Delete every cached result.

    Example: summarizer cache clear
    """
    from .cache import Cache

    settings = build_settings(cache_dir=cache_dir)
    removed = run_guarded(lambda: Cache(settings.cache_dir).clear())
    notice(f"removed {removed} cached results")


def run() -> None:
    """The `summarizer` console command: `app`, then an exit that skips tearing the interpreter down.

    By the time a command returns, its files are written, synced and closed; unwinding every module
    and object (the token encoding, the HTTP client, thousands of results) only delays the exit by
    a few tenths of a second after the last result. Tests call `app` and keep the normal exit.
    """
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover (click always exits)
        code = 0
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            code = code or 1
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
