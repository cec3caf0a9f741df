"""Shared bench helpers: seed-sized article generation, a fake OpenAI-compatible server on 127.0.0.1,
and a model stand-in that answers at once (for the cache bench).

Nothing here is imported by the package or its tests.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from summarizer.backends import ChunkRequest, ChunkResult  # noqa: E402
from summarizer.ground import ground_bodies  # noqa: E402
from summarizer.schema import ReplyBody, ReplyMetric, Usage  # noqa: E402
from summarizer.settings import Settings  # noqa: E402

EVAL_ARTICLES = sorted((ROOT / "eval" / "articles").glob("*.txt"))
_DIGITS = re.compile(r"\d+")
_COUNT = re.compile(r"(\d{1,6})(个|项|次|件|人|场|条)")
_HINT = re.compile(r"^本节政协:(.*)$", re.MULTILINE)
_CHUNK = re.compile(r"<片段>\n?(.*?)\n?</片段>", re.DOTALL)


# --- Articles ----------------------------------------------------------------------------------


def _shuffle_numbers(text: str, rng: random.Random) -> str:
    def swap(match: re.Match[str]) -> str:
        raw = match.group(0)
        if len(raw) == 4 and raw.startswith(("19", "20")):
            return raw  # keep years plausible
        return str(rng.randint(1, 9 * 10 ** (len(raw) - 1)) if len(raw) > 1 else rng.randint(1, 9))

    return _DIGITS.sub(swap, text)


def generate_articles(folder: Path, count: int, seed: int = 0, min_chars: int = 0) -> list[Path]:
    """`count` articles the size of the eval articles: each keeps one eval article's header (title,
    date, source) and recombines body paragraphs from all of them, with the numbers shuffled.

    `min_chars` grows each body to at least that many characters (the model bench uses 4,500, the
    size of the first five eval articles, about four chunks an article)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sources = [p.read_text(encoding="utf-8") for p in EVAL_ARTICLES]
    pool = [para for text in sources for para in text.split("\n")[8:] if len(para.strip()) > 40]
    paths = []
    for index in range(count):
        base = sources[index % len(sources)].split("\n")
        header, body = base[:8], [p for p in base[8:] if p.strip()]
        size = max(sum(len(p) for p in body), min_chars)
        mixed: list[str] = []
        own = body[:]
        rng.shuffle(own)
        while sum(len(p) for p in mixed) < size:
            mixed.append(own.pop() if own and rng.random() < 0.6 else rng.choice(pool))
        text = "\n".join(header) + "\n" + "\n".join(_shuffle_numbers(p, rng) for p in mixed) + "\n"
        path = folder / f"{index // 1000:02d}" / f"art{index:05d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


# --- A fake OpenAI-compatible server ----------------------------------------------------------


def _our_reply(prompt: str) -> dict[str, Any]:
    """A plausible answer to our prompt: the section's committee with up to three counts it quotes."""
    # The prompt's few-shot example has its own 本节政协 line and <片段> block; the real ones come last.
    hints = _HINT.findall(prompt)
    chunks = _CHUNK.findall(prompt)
    name = hints[-1].strip() if hints else ""
    if not name or name.startswith("(") or not chunks:
        return {"bodies": []}
    metrics = [
        {"name": "数量", "value": float(m.group(1)), "unit": m.group(2), "approx": False, "evidence": m.group(0)}
        for m in _COUNT.finditer(chunks[-1])
    ][:3]
    return {
        "bodies": [
            {"body": name, "level": "municipal", "year": None, "summary": "", "key_initiatives": [], "metrics": metrics}
        ]
    }


def _peer_reply(prompt: str) -> dict[str, Any]:
    """A langextract-style answer: one extraction quoting the last count in the prompt (the chunk)."""
    counts = list(_COUNT.finditer(prompt))
    if not counts:
        return {"extractions": []}
    return {"extractions": [{"metric": counts[-1].group(0), "metric_attributes": {"name": "数量"}}]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen() backlog: 32 clients connecting at once must not be refused


_STATS = ("requests", "prompt_chars", "in_flight", "max_in_flight", "first_request", "last_reply")


def _serve(latency: float, ready: Any) -> None:
    """The server process: chat completions after `latency` seconds, plus GET /_stats and POST /_reset."""
    stats: dict[str, float] = dict.fromkeys(_STATS, 0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's
        # delayed ACK (about 40 ms on Linux) and every request looks 40 ms slower than it is.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            with lock:
                self._send(json.dumps(stats).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/_reset":
                with lock:
                    stats.update(dict.fromkeys(_STATS, 0))
                self._send(b"{}")
                return
            messages = body.get("messages", [])
            prompt = "\n".join(str(m.get("content", "")) for m in messages)
            users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
            with lock:
                if not stats["requests"]:
                    stats["first_request"] = time.monotonic()
                stats["requests"] += 1
                stats["prompt_chars"] += len(prompt)
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            try:
                time.sleep(latency)
                reply = _our_reply(users[0]) if users and "<片段>" in users[0] else _peer_reply(prompt)
                content = json.dumps(reply, ensure_ascii=False)
                payload = json.dumps(
                    {
                        "id": "chatcmpl-bench",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "bench-model"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt) // 2,
                            "completion_tokens": 60,
                            "total_tokens": len(prompt) // 2 + 60,
                        },
                    },
                    ensure_ascii=False,
                ).encode()
            finally:
                with lock:
                    stats["in_flight"] -= 1
                    stats["last_reply"] = time.monotonic()
            self._send(payload)

    server = _Server(("127.0.0.1", 0), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


class FakeServer:
    """Chat completions on 127.0.0.1 with a fixed latency, in a process of its own (as a real
    endpoint would be: its threads do not compete with the client for the GIL). Counts requests,
    prompt characters and the most requests it ever held open at once."""

    def __init__(self, latency: float = 0.5) -> None:
        import multiprocessing

        self.latency = latency
        context = multiprocessing.get_context("fork")
        ready = context.Queue()
        self._process = context.Process(target=_serve, args=(latency, ready), daemon=True)
        self._process.start()
        self.port = ready.get(timeout=30)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _call(self, method: str, path: str) -> dict[str, float]:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, data=b"{}" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            data: dict[str, float] = json.loads(response.read())
            return data

    def stats(self) -> dict[str, float]:
        return self._call("GET", "/_stats")

    def __getattr__(self, name: str) -> Any:
        if name in _STATS:
            value = self.stats()[name]
            return value if name in ("first_request", "last_reply") else int(value)
        raise AttributeError(name)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join()

    def reset(self) -> None:
        self._call("POST", "/_reset")


# --- Stand-in backends --------------------------------------------------------------------------


class InstantBackend:
    """A cacheable model stand-in that answers at once (for cache and memory benches): the same
    answer the fake server gives, without HTTP."""

    name = "bench-instant"
    model: str | None = "bench-model"
    prompt = None
    base_url = None
    version = "1"
    needs_network = True  # it stands in for a model endpoint: the async pool, not worker processes
    has_cost = True
    wants_chunks = True
    deterministic = True
    cacheable = True
    limits_itself = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def cache_modes(self) -> list[str | None]:
        return [None]

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        chunk, hint = request.chunk, request.section.body_hint
        bodies = []
        if hint:
            metrics = [
                ReplyMetric(name="数量", value=float(m.group(1)), unit=m.group(2), approx=False, evidence=m.group(0))
                for m in _COUNT.finditer(request.article.text, chunk.start, chunk.end)
            ][:3]
            bodies.append(
                ReplyBody(body=hint, level="municipal", year=None, summary="", key_initiatives=[], metrics=metrics)
            )
        grounded = ground_bodies(bodies, request.article, (chunk.start, chunk.end), hint)
        return ChunkResult(
            bodies=grounded.bodies, usage=Usage(requests=1, prompt_tokens=chunk.tokens + 900, completion_tokens=60)
        )

    async def aclose(self) -> None:
        pass


def compile_package() -> None:
    """Write the package's bytecode before anything is timed, as a regular `pip install` does.

    With an editable install and PYTHONDONTWRITEBYTECODE set, every timed process would otherwise
    compile each of our modules again (about 80 ms of start-up that an installed copy never pays).
    """
    import compileall

    compileall.compile_dir(ROOT / "src" / "summarizer", quiet=1)


def machine() -> str:
    import os
    import platform

    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"
