"""One identity for a result: whatever changes what a backend returns makes `batch` redo the article
and miss the cache; nothing else does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import EVAL_ARTICLES
from fake_openai import FakeOpenAI
from helpers import fast_settings
from summarizer import identity
from summarizer.backends.openai_backend import OpenAIBackend
from summarizer.batch import run_batch
from summarizer.settings import Settings

# Each changes a result, so each must redo the article and ask the model again.
CHANGES_A_RESULT = [
    "model",
    "base url",
    "prompt version",
    "schema version",
    "backend version",
    "json mode",
    "temperature",
    "max tokens",
    "chunk tokens",
    "input bytes",
]
# None of these changes a result: the article stays done, and a forced redo comes from the cache.
CHANGES_NOTHING = {
    "concurrency": {"concurrency": 3},
    "timeout": {"timeout": 7.0},
    "rpm": {"rpm": 6000},
    "transport attempts": {"transport_attempts": 2},
    "prices": {"prices": '{"fake-model": {"input": 1.0, "output": 2.0}}'},
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    articles = tmp_path / "in"
    articles.mkdir()
    shutil.copy(EVAL_ARTICLES[0], articles / "a.txt")
    return articles


def batch(folder: Path, out: Path, tmp_path: Path, **overrides: Any) -> Any:
    settings = fast_settings(cache_dir=tmp_path / "cache", **overrides)
    return run_batch(folder, out, settings, quiet=True)


@pytest.mark.parametrize("change", CHANGES_A_RESULT)
def test_what_changes_a_result_redoes_the_article_and_misses_the_cache(
    fake: FakeOpenAI, folder: Path, tmp_path: Path, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.jsonl"
    assert batch(folder, out, tmp_path).done == 1
    asked = fake.count
    again = batch(folder, out, tmp_path)
    assert again.skipped == 1 and fake.count == asked  # an identical re-run does nothing
    overrides: dict[str, Any] = {}
    if change == "model":
        overrides["model"] = "other-model"
    elif change == "base url":
        overrides["base_url"] = fake.base_url.replace("/v1", "/proxy/v1")  # another endpoint (same test server)
    elif change == "prompt version":
        overrides["prompt_version"] = "v2"
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        from summarizer.prompt import prompts_dir

        text = (prompts_dir() / "extract_v1.md").read_text("utf-8")
        (prompts / "extract_v1.md").write_text(text, "utf-8")
        (prompts / "extract_v2.md").write_text(text + "\n请只输出 JSON。\n", "utf-8")  # a new version says more
        monkeypatch.setenv("SUMMARIZER_PROMPTS_DIR", str(prompts))
    elif change == "schema version":
        monkeypatch.setattr(identity, "SCHEMA_VERSION", identity.SCHEMA_VERSION + 1)
    elif change == "backend version":
        monkeypatch.setattr(OpenAIBackend, "version", OpenAIBackend.version + "-next")
    elif change == "json mode":
        overrides["json_mode"] = "object"
    elif change == "temperature":
        overrides["temperature"] = 0.7
    elif change == "max tokens":
        overrides["max_output_tokens"] = 1234
    elif change == "chunk tokens":
        overrides["chunk_tokens"] = 1500
    else:
        (folder / "a.txt").write_text((folder / "a.txt").read_text("utf-8") + "\n附记：本文另有补充说明。\n", "utf-8")
    redone = batch(folder, out, tmp_path, **overrides)
    assert redone.done == 1 and redone.skipped == 0, change
    assert fake.count > asked and redone.cached == 0, f"{change}: the cache served a result it must not"


def test_a_trailing_slash_does_not_make_another_endpoint(fake: FakeOpenAI, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    batch(folder, out, tmp_path, base_url=fake.base_url)
    assert batch(folder, out, tmp_path, base_url=fake.base_url + "/").skipped == 1


@pytest.mark.parametrize("change", sorted(CHANGES_NOTHING))
def test_what_changes_no_result_keeps_the_article_and_the_cache(
    fake: FakeOpenAI, folder: Path, tmp_path: Path, change: str
) -> None:
    out = tmp_path / "results.jsonl"
    batch(folder, out, tmp_path)
    asked = fake.count
    assert batch(folder, out, tmp_path, **CHANGES_NOTHING[change]).skipped == 1
    forced = run_batch(
        folder, out, fast_settings(cache_dir=tmp_path / "cache", **CHANGES_NOTHING[change]), quiet=True, force=True
    )
    assert forced.done == 1 and forced.cached == 1 and fake.count == asked


def test_a_new_rules_version_redoes_rules_results(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import summarizer.backends.rules as rules

    out = tmp_path / "results.jsonl"
    settings = Settings(backend="rules", workers=1)
    assert run_batch(folder, out, settings, quiet=True).done == 1
    assert run_batch(folder, out, settings, quiet=True).skipped == 1
    monkeypatch.setattr(rules, "rules_version", lambda: "edited")
    assert run_batch(folder, out, settings, quiet=True).done == 1  # rules changed: their results may have


def test_the_rules_version_follows_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing any module the rules' output depends on changes the version; editing the CLI does not."""
    import summarizer
    import summarizer.backends.rules as rules

    package = Path(summarizer.__file__).parent
    copy = tmp_path / "summarizer"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(rules, "__file__", str(copy / "backends" / "rules" / "__init__.py"))
    versions = []
    for edit in (None, "cli.py", "numbers.py", "backends/rules/metrics.py"):
        if edit:
            with (copy / edit).open("a", encoding="utf-8") as handle:
                handle.write("\n# edited\n")
        rules.rules_version.cache_clear()
        versions.append(rules.rules_version())
    rules.rules_version.cache_clear()
    assert versions[0] == versions[1]  # the CLI cannot change an extraction
    assert len({versions[1], versions[2], versions[3]}) == 3


def test_the_remembered_identity_is_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pipeline.identity_of` remembers `result_key` per settings object and what it reads of the
    backend: across settings, JSON modes and backends changed between calls, it answers as
    `result_key` does."""
    import random
    from types import SimpleNamespace

    from summarizer.pipeline import identity_of

    rng = random.Random(3)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    choices: dict[str, list[Any]] = {
        "json_mode": ["auto", "schema", "plain"],
        "temperature": [0.0, 0.3],
        "max_output_tokens": [512, 2048],
        "chunk_tokens": [300, 1200],
        "chunk_overlap": [0, 40],
    }
    every_settings = [
        Settings(backend="openai", model="m", **{k: rng.choice(v) for k, v in choices.items()}) for _ in range(12)
    ]
    backends = [OpenAIBackend(s) for s in every_settings[:3]]
    stand_in = SimpleNamespace(
        name="fake", version="1", model="x", base_url=None, prompt=None, needs_network=True, wants_chunks=True
    )
    for _ in range(400):
        backend: Any = rng.choice([*backends, stand_in])
        if backend is stand_in and rng.random() < 0.3:
            stand_in.version, stand_in.model = rng.choice(["1", "2"]), rng.choice(["x", "y", None])
            stand_in.wants_chunks = rng.random() < 0.5
        if backend is not stand_in and rng.random() < 0.2:
            monkeypatch.setenv("OPENAI_BASE_URL", rng.choice(["http://a/v1", "http://b/v1"]))
        settings = rng.choice(every_settings)
        mode = rng.choice([None, "schema", "object", "plain"])
        assert identity_of(backend, settings, mode) == identity.result_key(backend, settings, mode)
