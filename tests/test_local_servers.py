"""The model path against servers that behave like the local ones users run (llama.cpp's llama-server,
vLLM, Ollama, llama-cpp-python): refused JSON modes, malformed 200 replies, one slot and a queue,
answers that drip. All against the loopback fake in tests/fake_openai.py."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAI, Response, Seen, chat, error
from helpers import ARTICLES, DUMMY_KEY, ROOT, assert_matches_gold, fast_settings
from summarizer.backends.local_http import LocalHttp, LocalHttpError, RawReply, local_http_usable
from summarizer.backends.openai_backend import OpenAIBackend, RequestTemplate, _SdkLoader, request_body
from summarizer.batch import run_batch
from summarizer.errors import AuthError, ProviderError
from summarizer.evaluate import load_predictions
from summarizer.pipeline import summarise_article
from summarizer.settings import Settings

SEEDS = [p for p in ARTICLES if p.name[:3] in ("000", "001", "002", "003", "004")]


def _seed_folder(tmp_path: Path, count: int = 5) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    for path in SEEDS[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def _refusing(fake: FakeOpenAI, status: int, refused: tuple[str, ...]) -> None:
    """The server refuses these response_format types (the message names them, as real ones do)."""

    def answer(seen: Seen) -> Response:
        kind = (seen.body.get("response_format") or {}).get("type", "none")
        if kind in refused:
            return error(status, f"response_format type '{kind}' is not supported by this server")
        return fake.gold(seen)

    fake.default = answer


@pytest.mark.parametrize("status", [500, 422, 404, 400])
def test_a_server_refusing_json_schema_completes_every_article_in_json_object(
    fake: FakeOpenAI, tmp_path: Path, status: int
) -> None:
    _refusing(fake, status, ("json_schema",))
    out = tmp_path / "results.jsonl"
    report = run_batch(_seed_folder(tmp_path), out, fast_settings(), quiet=True)  # 8 in flight by default
    assert report.done == 5 and report.failed == 0
    for article_id, summary in load_predictions(out).items():
        path = next(p for p in SEEDS if p.stem == article_id)
        assert_matches_gold(summary, path)
        assert summary.meta is not None and summary.meta.json_mode == "object"
    modes = [s.body.get("response_format", {}).get("type") for s in fake.requests]
    first_object = modes.index("json_object")
    assert "json_schema" not in modes[first_object + 8 :]  # the run learnt it once (8 were in flight)


def test_json_object_carries_the_schema_and_the_prompt_states_it(fake: FakeOpenAI) -> None:
    _refusing(fake, 500, ("json_schema",))
    summarise_article(SEEDS[0], fast_settings())
    seen = next(s for s in fake.requests if s.body["response_format"]["type"] == "json_object")
    assert seen.body["response_format"]["schema"]["required"] == ["bodies"]
    assert "JSON Schema" in seen.messages[0]["content"] and '"bodies"' in seen.messages[0]["content"]


def test_a_server_refusing_every_response_format_gets_plain_requests(fake: FakeOpenAI) -> None:
    _refusing(fake, 400, ("json_schema", "json_object"))
    summary = summarise_article(SEEDS[1], fast_settings())
    assert_matches_gold(summary, SEEDS[1])
    assert summary.meta is not None and summary.meta.json_mode == "plain"
    assert any("response_format" not in s.body for s in fake.requests)


def test_the_json_mode_is_part_of_the_cache_key(fake: FakeOpenAI) -> None:
    summarise_article(SEEDS[1], fast_settings(json_mode="object"))
    asked = fake.count
    summarise_article(SEEDS[1], fast_settings(json_mode="plain"))
    assert fake.count > asked  # replies asked for in another mode are not reused


def _html(seen: Seen) -> Response:
    return Response(body="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")


@pytest.mark.parametrize(
    "malformed",
    [
        _html,
        lambda seen: Response(body={"id": "x", "object": "chat.completion", "choices": []}),
        lambda seen: Response(body={"id": "x", "object": "chat.completion", "choices": [{}]}),
    ],
    ids=["html page", "no choices", "empty choice"],
)
def test_a_malformed_200_is_sent_again_and_every_article_completes(
    fake: FakeOpenAI, tmp_path: Path, malformed: object
) -> None:
    fake.script.extend([malformed, malformed])  # the first two requests of the run
    out = tmp_path / "results.jsonl"
    report = run_batch(_seed_folder(tmp_path, 3), out, fast_settings(), quiet=True)
    assert report.done == 3 and report.failed == 0
    predictions = load_predictions(out)
    for path in SEEDS[:3]:
        assert_matches_gold(predictions[path.stem], path)
    total = sum(p.meta.usage.transport_retries for p in predictions.values() if p.meta)
    assert total == 2  # sent again unchanged, not re-asked


def test_content_as_a_list_of_parts_is_read_as_text(fake: FakeOpenAI) -> None:
    def parts(seen: Seen) -> Response:
        text = json.dumps(fake.gold.reply(seen), ensure_ascii=False)
        response = chat("")
        response.body["choices"][0]["message"]["content"] = [
            {"type": "text", "text": text[:10]},
            {"type": "text", "text": text[10:]},
        ]
        return response

    fake.default = parts
    summary = summarise_article(SEEDS[0], fast_settings())
    assert_matches_gold(summary, SEEDS[0])


def test_malformed_replies_every_time_fail_with_one_clear_line(fake: FakeOpenAI) -> None:
    fake.default = _html
    with pytest.raises(ProviderError, match="not a chat completion") as caught:
        summarise_article(SEEDS[0], fast_settings(transport_attempts=2))
    assert "\n" not in str(caught.value) and "<html" in str(caught.value)


def test_a_one_slot_server_is_not_flooded_and_nothing_is_paid_twice(fake: FakeOpenAI, tmp_path: Path) -> None:
    """A llama-server with -np 1: one answer at a time, the rest queue. With the default 8 in flight
    the queue would outlast the timeout; the window shrinks to what the server answers in time."""
    fake.serial_delay = 0.5  # the same ratio as 15 s a call against the default 60 s timeout
    out = tmp_path / "results.jsonl"
    settings = fast_settings(timeout=2.0, transport_attempts=3)
    report = run_batch(_seed_folder(tmp_path, 2), out, settings, quiet=True)
    assert report.done == 2 and report.failed == 0
    bodies = Counter(json.dumps(s.body, sort_keys=True) for s in fake.requests)
    assert max(bodies.values()) == 1  # no request was sent twice
    predictions = load_predictions(out)
    assert sum(p.meta.usage.transport_retries for p in predictions.values() if p.meta) == 0


def test_an_answer_that_drips_past_the_deadline_times_out(fake: FakeOpenAI) -> None:
    reply = chat("{}")
    reply.drip = 3.0
    fake.default = lambda seen: reply
    with pytest.raises(ProviderError, match="--timeout"):
        summarise_article(SEEDS[0], fast_settings(timeout=0.6, transport_attempts=2))
    # two attempts of at most 0.6 s each: the slow body did not hold the attempt open for 3 s
    assert fake.requests[-1].received - fake.requests[0].received < 2.0


def test_the_installed_wheel_finds_its_prompt(fake: FakeOpenAI, tmp_path: Path) -> None:
    """`pip install .` (not -e): the prompt ships inside the package."""
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The wheel is unpacked into the fresh venv; its dependencies come from this one (a plain path
    # line, so this venv's editable install of summarizer is not picked up).
    import zipfile

    (wheel,) = wheels.glob("summarizer-*.whl")
    zipfile.ZipFile(wheel).extractall(site)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = {"OPENAI_API_KEY": DUMMY_KEY, "OPENAI_BASE_URL": fake.base_url, "PATH": "/usr/bin:/bin"}
    code = "from summarizer.cli import app; app()"
    done = subprocess.run(
        [str(python), "-c", code, "summarise", str(SEEDS[0]), "--backend", "openai", "--model", "fake-model"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    where = subprocess.run(
        [str(python), "-c", "import summarizer.prompt as p; print(p.prompts_dir())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    assert where == str(site / "summarizer" / "prompts")  # the wheel's copy, not the checkout's
    summary = json.loads(done.stdout)
    assert summary["meta"]["backend"] == "openai" and summary["bodies"]


def test_a_failed_article_still_counts_what_it_cost(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.default = lambda seen: error(503, "overloaded\nthe whole story: queue full, try later")
    out = tmp_path / "results.jsonl"
    report = run_batch(_seed_folder(tmp_path, 1), out, fast_settings(transport_attempts=2), quiet=True)
    assert report.failed == 1 and report.usage.requests == fake.count > 0
    (record,) = [json.loads(line) for line in (tmp_path / "results.errors.jsonl").read_text().splitlines()]
    assert record["usage"]["requests"] == fake.count and record["usage"]["transport_retries"] >= 1
    assert "\n" not in record["message"] and "queue full" in record["detail"]


def test_a_key_the_server_echoes_stays_out_of_errors(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.default = lambda seen: error(500, f"bad request from {seen.headers['authorization']}")
    out = tmp_path / "results.jsonl"
    run_batch(_seed_folder(tmp_path, 1), out, fast_settings(transport_attempts=1), quiet=True)
    text = (tmp_path / "results.errors.jsonl").read_text()
    assert DUMMY_KEY not in text and "Bearer ***" in text


FIXTURES = sorted((ROOT / "tests" / "fixtures" / "llama_server").glob("*.json"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_recorded_llama_server_replies_are_handled(fake: FakeOpenAI, fixture: Path) -> None:
    """Real replies of a 270M model on llama-server (bench/record_replies.py): it copies the prompt's
    made-up example instead of reading the article. Every such body is dropped, the model is asked
    again, and the article ends with nothing reported rather than invented figures."""
    recorded = json.loads(fixture.read_text(encoding="utf-8"))
    reply = Response(
        status=recorded["status"],
        body=recorded["body"],
        headers={k: v for k, v in recorded["headers"].items() if k != "content-type"},
        content_type=recorded["headers"]["content-type"],
    )
    fake.default = lambda seen: reply
    article = next(p for p in ARTICLES if p.name == recorded["article"])
    summary = summarise_article(article, fast_settings())
    assert summary.bodies == []
    assert summary.meta is not None and summary.meta.usage.reasks > 0
    assert summary.meta.usage.transport_retries == 0
    assert any("not named in the article" in w for w in summary.meta.warnings)


def test_a_server_that_echoes_the_key_never_gets_it_into_results_cache_or_errors(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    def echo(seen: Seen) -> Response:
        reply = fake.gold.reply(seen)
        for body in reply["bodies"]:
            body["summary"] += f" (debug: {seen.headers['authorization']})"
        return chat(json.dumps(reply, ensure_ascii=False))

    fake.default = echo
    fake.script.append(lambda seen: chat(f"not json, but {seen.headers['authorization']}"))  # re-asked
    out = tmp_path / "results.jsonl"
    cache = tmp_path / "cache"
    report = run_batch(_seed_folder(tmp_path, 2), out, fast_settings(cache_dir=cache), quiet=True)
    assert report.done == 2
    assert DUMMY_KEY not in out.read_text(encoding="utf-8")
    for stored in cache.rglob("*"):
        if stored.is_file():
            assert DUMMY_KEY.encode() not in stored.read_bytes()
    assert "Bearer ***" in out.read_text(encoding="utf-8")


def test_a_rerun_against_a_server_refusing_json_schema_is_served_from_the_cache(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    _refusing(fake, 500, ("json_schema",))
    settings = fast_settings(cache_dir=tmp_path / "cache")
    first = summarise_article(SEEDS[1], settings)
    asked = fake.count
    second = summarise_article(SEEDS[1], settings)
    assert second.bodies == first.bodies
    empty = sum(
        1
        for s in fake.requests[:asked]
        if s.body.get("response_format", {}).get("type") == "json_object" and not fake.gold.reply(s)["bodies"]
    )
    again = [s for s in fake.requests[asked:] if s.body.get("response_format", {}).get("type") == "json_object"]
    assert len(again) == empty  # only chunks that found nothing are asked again; the rest come from the cache


def test_any_bearer_token_a_server_echoes_is_removed(fake: FakeOpenAI, tmp_path: Path) -> None:
    other = "Bearer tok_" + "a1b2c3d4e5" * 3  # not our key: someone else's, leaked by a proxy
    fake.default = lambda seen: error(500, f"upstream refused {other}")
    out = tmp_path / "results.jsonl"
    run_batch(_seed_folder(tmp_path, 1), out, fast_settings(transport_attempts=1), quiet=True)
    text = (tmp_path / "results.errors.jsonl").read_text()
    assert other not in text and "tok_a1b2" not in text


def test_a_failure_mid_article_counts_every_chunk_that_was_sent(fake: FakeOpenAI, tmp_path: Path) -> None:
    big = max(SEEDS, key=lambda p: p.stat().st_size)
    sent = 0

    def third_fails(seen: Seen) -> Response:
        nonlocal sent
        sent += 1
        return error(400, "bad request") if sent == 3 else fake.gold(seen)

    fake.default = third_fails
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(big, folder / big.name)
    report = run_batch(folder, tmp_path / "results.jsonl", fast_settings(concurrency=2), quiet=True)
    assert report.failed == 1
    assert report.usage.requests == fake.count >= 3  # the chunks answered before the failure, too


# --- the first requests, sent while the openai package is still loading ---------------------------


class _StillLoading(_SdkLoader):
    """The package import never finishes on its own: every request goes out as plain HTTP until the
    backend has to wait for the SDK (an answer only the SDK reads); then it is there."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    def start(self) -> None:
        self.started += 1

    async def wait(self) -> None:
        self.done.set()


def _early(settings: Settings) -> tuple[OpenAIBackend, _StillLoading]:
    backend, loader = OpenAIBackend(settings), _StillLoading()
    backend._loader = loader
    return backend, loader


def test_first_requests_sent_before_the_sdk_has_loaded_give_the_same_summary(fake: FakeOpenAI) -> None:
    settings = fast_settings(use_cache=False)
    through_sdk = summarise_article(SEEDS[0], settings)
    asked = list(fake.requests)
    backend, loader = _early(settings)
    early = summarise_article(SEEDS[0], settings, backend=backend)
    assert early.bodies == through_sdk.bodies and early.meta is not None and through_sdk.meta is not None
    assert early.meta.usage == through_sdk.meta.usage
    plain = fake.requests[len(asked) :]
    assert not loader.started and not loader.done.is_set()  # every request went out plain; no import needed
    assert sorted(json.dumps(s.body, sort_keys=True) for s in plain) == sorted(
        json.dumps(s.body, sort_keys=True) for s in asked
    )
    assert all(s.headers["authorization"] == f"Bearer {DUMMY_KEY}" for s in plain)
    assert all(s.headers["content-type"] == "application/json" for s in plain)


def test_an_error_answer_to_a_plain_request_is_read_by_the_sdk(fake: FakeOpenAI) -> None:
    fake.script.append(error(429, "slow down", headers={"retry-after": "0"}))
    backend, loader = _early(fast_settings(use_cache=False))
    summary = summarise_article(SEEDS[0], backend.settings, backend=backend)
    assert_matches_gold(summary, SEEDS[0])
    assert loader.done.is_set()  # the 429 waited for the SDK, which raised its RateLimitError
    assert summary.meta is not None and summary.meta.usage.transport_retries == 1


def test_a_refused_response_format_on_a_plain_request_moves_the_run_to_json_object(fake: FakeOpenAI) -> None:
    _refusing(fake, 400, ("json_schema",))
    backend, _ = _early(fast_settings(use_cache=False))
    summary = summarise_article(SEEDS[0], backend.settings, backend=backend)
    assert_matches_gold(summary, SEEDS[0])
    assert summary.meta is not None and summary.meta.json_mode == "object"


def test_a_redirect_answering_a_plain_request_is_sent_again_through_the_sdk(fake: FakeOpenAI) -> None:
    moved = Response(status=307, body="", headers={"location": f"{fake.base_url}/chat/completions?moved=1"})
    fake.script.append(moved)
    backend, loader = _early(fast_settings(use_cache=False, transport_attempts=1))
    summary = summarise_article(SEEDS[0], backend.settings, backend=backend)
    assert_matches_gold(summary, SEEDS[0])  # with one attempt: the redirect cost no retry
    assert loader.done.is_set()  # the request went again through the SDK, which follows redirects


def test_a_refused_key_on_a_plain_request_is_the_same_error(fake: FakeOpenAI) -> None:
    fake.default = lambda seen: error(401, "invalid api key")
    backend, _ = _early(fast_settings(use_cache=False))
    with pytest.raises(AuthError, match="refused the credentials"):
        summarise_article(SEEDS[0], backend.settings, backend=backend)


def test_a_plain_request_to_no_server_fails_as_the_sdk_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # the discard port: nothing listens
    backend, _ = _early(fast_settings(use_cache=False, transport_attempts=2))
    with pytest.raises(ProviderError, match="cannot connect"):
        summarise_article(SEEDS[0], backend.settings, backend=backend)


def test_a_connection_broken_under_a_plain_request_is_a_connection_error_the_sdk_retries(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    post, broken = LocalHttp.post, []

    async def break_first(self: LocalHttp, path: str, body: bytes) -> RawReply:
        if not broken:
            broken.append(path)
            raise LocalHttpError("ConnectionResetError: reset by peer", sent=True)
        return await post(self, path, body)

    monkeypatch.setattr(LocalHttp, "post", break_first)
    backend, _ = _early(fast_settings(use_cache=False))
    summary = summarise_article(SEEDS[0], backend.settings, backend=backend)
    assert_matches_gold(summary, SEEDS[0])
    assert broken and summary.meta is not None and summary.meta.usage.transport_retries == 1


def test_plain_requests_read_content_length_chunked_and_close_delimited_answers() -> None:
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}',
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":2}\r\n0\r\n\r\n',
        # an interim answer first: the real one follows it
        b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":3}',
        [b"HTTP/1.0 503 Busy\r\nRetry-After: 1\r\n\r\nbu", b"sy"],  # the body in two writes
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{",  # cut short
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n',  # closed between chunks
    ]
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            seen.append(head + await reader.readexactly(length))
            answer = answers.pop(0)
            for part in answer if isinstance(answer, list) else [answer]:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.05)
            if isinstance(answer, list) or answer.endswith((b"{", b'{"a\r\n')):
                break
        writer.close()

    async def main() -> list[RawReply | str]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = LocalHttp(f"http://127.0.0.1:{port}/v1/", {"Authorization": "Bearer k"})
        got: list[RawReply | str] = []
        for _ in range(6):
            try:
                got.append(await http.post("/chat/completions", b'{"x": 1}'))
            except LocalHttpError as exc:
                got.append(f"broken, sent={exc.sent}")
        http.close()
        server.close()
        return got

    first, second, interim, third, fourth, fifth = asyncio.run(asyncio.wait_for(main(), 20))  # fail, not hang
    assert isinstance(first, RawReply) and first.json_body() and json.loads(first.body) == {"a": 1}
    assert isinstance(second, RawReply) and json.loads(second.body) == {"a": 2} and not second.json_body()
    assert isinstance(interim, RawReply) and interim.status == 200 and json.loads(interim.body) == {"a": 3}
    assert isinstance(third, RawReply) and third.status == 503 and third.header("retry-after") == "1"
    assert third.body == b"busy"  # an HTTP/1.0 answer without a length runs to the end of the connection
    assert fourth == "broken, sent=True"
    assert fifth == "broken, sent=True"  # a chunked answer cut between chunks is not a whole answer
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer k" in seen[0] and seen[0].endswith(b'{"x": 1}')


@pytest.mark.parametrize(
    ("base_url", "environ", "usable"),
    [
        ("http://127.0.0.1:8080/v1", {}, True),
        ("http://localhost/v1", {}, True),
        ("https://api.openai.com/v1", {}, False),  # TLS stays the SDK's
        (None, {}, False),  # OpenAI's own API
        ("http://127.0.0.1:8080/v1", {"HTTP_PROXY": "http://proxy:3128"}, False),
        ("http://user:secret@127.0.0.1/v1", {}, False),
    ],
)
def test_only_plain_local_endpoints_without_a_proxy_get_plain_first_requests(
    base_url: str | None, environ: dict[str, str], usable: bool
) -> None:
    assert local_http_usable(base_url, environ) is usable


def _count_connections(fake: FakeOpenAI) -> list[int]:
    opened = [0]
    handler = fake.httpd.RequestHandlerClass
    setup = handler.setup

    def counting(self: Any) -> None:
        opened[0] += 1
        setup(self)

    handler.setup = counting  # type: ignore[method-assign]
    return opened


def test_the_sdk_reaches_a_local_server_over_connections_kept_alive(fake: FakeOpenAI, tmp_path: Path) -> None:
    opened = _count_connections(fake)
    out = tmp_path / "results.jsonl"
    report = run_batch(_seed_folder(tmp_path), out, fast_settings(use_cache=False, concurrency=2), quiet=True)
    assert report.done == 5
    for article_id, summary in load_predictions(out).items():
        assert_matches_gold(summary, next(p for p in SEEDS if p.stem == article_id))
    assert fake.count > 5 and opened[0] <= 2  # as many connections as requests in flight, not one a request


def test_with_a_proxy_configured_requests_go_through_the_sdks_own_transport(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there ...
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # ... and the fake is reached directly, by the SDK's transport
    fake.script.append(error(429, "slow down", headers={"retry-after": "0"}))
    summary = summarise_article(SEEDS[0], fast_settings(use_cache=False))
    assert_matches_gold(summary, SEEDS[0])
    assert summary.meta is not None and summary.meta.usage.transport_retries == 1


def _through_the_sdk(settings: Settings) -> OpenAIBackend:
    """A backend that sends every request through the SDK's client, as runs did before plain requests."""
    backend = OpenAIBackend(settings)
    backend._plain = False
    return backend


def test_every_request_to_a_local_server_goes_out_plain_and_gives_what_the_sdk_gave(fake: FakeOpenAI) -> None:
    settings = fast_settings(use_cache=False)
    through_sdk = summarise_article(SEEDS[0], settings, backend=_through_the_sdk(settings))
    asked = list(fake.requests)
    plain = summarise_article(SEEDS[0], settings)  # the SDK is loaded: requests still go out plain
    sent = fake.requests[len(asked) :]
    assert plain.bodies == through_sdk.bodies and plain.meta is not None and through_sdk.meta is not None
    assert plain.meta.usage == through_sdk.meta.usage and plain.meta.json_mode == through_sdk.meta.json_mode
    assert sorted(json.dumps(s.body, sort_keys=True) for s in sent) == sorted(
        json.dumps(s.body, sort_keys=True) for s in asked
    )
    assert all("x-stainless-lang" in s.headers for s in asked)  # the SDK's own requests ...
    assert not any("x-stainless-lang" in s.headers for s in sent)  # ... and none of the plain ones


@pytest.mark.parametrize("mode", ["schema", "object", "plain"])
def test_a_plain_request_body_is_what_the_sdk_sends_for_the_same_messages(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The pre-encoded body (the run's template with the chunk's text filled in) against the body
    the SDK's own `chat.completions.create` builds from `request_body`, for every chunk of an article."""
    import openai

    encoded: list[tuple[list[dict[str, str]], bytes]] = []
    encode = RequestTemplate.encode

    def recording(self: RequestTemplate, messages: list[dict[str, str]]) -> bytes:
        body = encode(self, messages)
        encoded.append((messages, body))
        return body

    monkeypatch.setattr(RequestTemplate, "encode", recording)
    settings = fast_settings(use_cache=False, json_mode=mode)
    summary = summarise_article(SEEDS[0], settings)
    assert summary.meta is not None and summary.meta.json_mode == mode and len(encoded) > 1
    # As the server read them (chunks go out concurrently, in any order).
    as_read = sorted(json.dumps(s.body, sort_keys=True) for s in fake.requests)
    assert sorted(json.dumps(json.loads(body), sort_keys=True) for _, body in encoded) == as_read
    plain_count = len(fake.requests)

    async def ask_through_the_sdk() -> None:
        client = openai.AsyncOpenAI(base_url=fake.base_url, max_retries=0)
        try:
            for messages, _ in encoded:
                await client.chat.completions.create(**request_body(settings, messages, mode, official=False))
        finally:
            await client.close()

    asyncio.run(ask_through_the_sdk())
    by_sdk = [s.body for s in fake.requests[plain_count:]]
    assert by_sdk == [json.loads(body) for _, body in encoded]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-8", "application/vnd.x+json"])
def test_a_200_chat_completion_under_any_content_type_is_read_as_the_sdk_reads_it(
    fake: FakeOpenAI, content_type: str
) -> None:
    """JSON labels are read on the plain path; a body labelled otherwise goes to the SDK, which returns
    its text, read as JSON anyway: either way the same summary, and nothing is sent twice."""

    def labelled(seen: Seen) -> Response:
        response = fake.gold(seen)
        return Response(body=json.dumps(response.body, ensure_ascii=False), content_type=content_type)

    fake.default = labelled
    summary = summarise_article(SEEDS[0], fast_settings(use_cache=False))
    assert_matches_gold(summary, SEEDS[0])
    assert summary.meta is not None and summary.meta.usage.transport_retries == 0
