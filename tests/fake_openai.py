"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: it records every request and answers
from a script of canned responses, then from a default responder.

The default `GoldResponder` plays a perfect model: it reads the chunk between <片段> and </片段>
and answers with every gold item (eval/gold/*.json) whose evidence occurs in that chunk.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = re.compile(r"<片段>\n?(.*?)\n?</片段>", re.DOTALL)
TITLE = re.compile(r"^文章标题:(.*)$", re.MULTILINE)
PUBLISHED = re.compile(r"^发稿日期:(.*)$", re.MULTILINE)
HINT = re.compile(r"^本节政协:(.*)$", re.MULTILINE)


@dataclass
class Response:
    """What the fake sends back for one request."""

    status: int = 200
    body: Any = None  # dict -> JSON, str/bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (a hung server)
    content_type: str = "application/json"
    drip: float = 0.0  # seconds to spread the body over, a few bytes at a time (a slow stream)


def chat(content: str, finish_reason: str = "stop", prompt_tokens: int = 100, completion_tokens: int = 50) -> Response:
    return Response(
        body={
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [
                {"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def error(
    status: int, message: str = "error", headers: dict[str, str] | None = None, code: str | None = None
) -> Response:
    return Response(
        status=status, body={"error": {"message": message, "type": "fake_error", "code": code}}, headers=headers or {}
    )


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages", []))

    @property
    def prompt(self) -> str:
        """The first user message: the rendered prompt with the chunk."""
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def chunk_text(self) -> str:
        match = CHUNK.search(self.prompt)
        return match.group(1) if match else ""


Responder = Callable[[Seen], Response]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


class GoldResponder:
    """A perfect model: every gold item whose evidence lies inside the chunk, under its gold body."""

    def __init__(self, gold_dir: Path) -> None:
        self.gold = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(gold_dir.glob("*.json"))]
        articles = gold_dir.parent / "articles"
        self.texts = {
            g["article_id"]: _squash((articles / f"{g['article_id']}.txt").read_text(encoding="utf-8-sig"))
            for g in self.gold
            if (articles / f"{g['article_id']}.txt").is_file()
        }

    def reply(self, seen: Seen) -> dict[str, Any]:
        chunk = _squash(seen.chunk_text)
        # Answer from the label of the article the chunk comes from (short quotes recur across articles).
        title_match = TITLE.search(seen.prompt)
        title = title_match.group(1).strip() if title_match else ""
        published = PUBLISHED.search(seen.prompt)
        date = published.group(1).strip() if published else ""
        # The chunk is the article's kept lines (page furniture left out): find the article that holds
        # most of its pieces; a short chunk (a page's footer) may fit several, so title and date decide.
        pieces = [chunk[i : i + 10] for i in range(0, max(1, len(chunk) - 9), 10)]

        def fit(label: dict[str, Any]) -> tuple[float, bool, bool]:
            text = self.texts.get(label["article_id"], "")
            share = sum(piece in text for piece in pieces) / len(pieces)
            return share, label.get("title") == title, label.get("published") == date

        labels = [max(self.gold, key=fit)]
        bodies = []
        for label in labels:
            for body in label["bodies"]:
                initiatives = [
                    {"name": i["name"], "evidence": i["evidence"]}
                    for i in body["key_initiatives"]
                    if _squash(i["evidence"]) in chunk
                ]
                metrics = [
                    {k: m[k] for k in ("name", "value", "unit", "approx", "evidence")}
                    for m in body["metrics"]
                    if _squash(m["evidence"]) in chunk
                ]
                if initiatives or metrics:
                    bodies.append(
                        {
                            "body": body["body"],
                            "level": body["level"],
                            "year": body["year"],
                            "summary": body["summary"],
                            "key_initiatives": initiatives,
                            "metrics": metrics,
                        }
                    )
        return {"bodies": bodies}

    def __call__(self, seen: Seen) -> Response:
        return chat(json.dumps(self.reply(seen), ensure_ascii=False))


class FakeOpenAI:
    """The server plus its script. `script` is consumed first (one entry per request; an entry may be
    a Response or a function of the request); then `default` answers."""

    def __init__(self, gold: GoldResponder) -> None:
        self.gold = gold
        self.default: Responder = gold
        self.script: list[Response | Responder] = []
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.serial_delay = 0.0  # > 0: a one-slot server, answering one request at a time after this long
        self.slot = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                seen = Seen(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                with fake.lock:
                    fake.requests.append(seen)
                    step = fake.script.pop(0) if fake.script else fake.default
                response = step if isinstance(step, Response) else step(seen)
                if fake.serial_delay:
                    with fake.slot:  # the others queue, as on a llama-server started with -np 1
                        fake.stop.wait(fake.serial_delay)
                if response.delay:
                    fake.stop.wait(response.delay)
                if isinstance(response.body, dict | list):
                    payload = json.dumps(response.body, ensure_ascii=False).encode()
                elif isinstance(response.body, str):
                    payload = response.body.encode()
                else:
                    payload = response.body or b""
                try:
                    self.send_response(response.status)
                    self.send_header("content-type", response.content_type)
                    self.send_header("content-length", str(len(payload)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if response.drip:
                        step_size = max(1, len(payload) // 20)
                        for at in range(0, len(payload), step_size):
                            self.wfile.write(payload[at : at + step_size])
                            self.wfile.flush()
                            if fake.stop.wait(response.drip / 20):
                                break
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
