"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: it records every request and answers
from a script of canned responses, then from a default responder.

The default `GoldResponder` plays a perfect model: it reads the chunk between <片段> and </片段>
and answers with every gold item (eval/gold/*.json) whose evidence occurs in that chunk.

It also keeps a minimal Files and Batches API (/v1/files, /v1/batches): an uploaded requests file
becomes a batch that is answered at once, line by line, by the same script and default responder.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
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
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_status = "completed"  # what a new batch reports (e.g. "in_progress")
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._send(fake.batch_api("GET", self.path, b"", ""))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.path.endswith(("/files", "/batches")):
                    self._send(fake.batch_api("POST", self.path, raw, self.headers.get("content-type", "")))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                response = fake.answer(Seen(self.path, body, {k.lower(): v for k, v in self.headers.items()}))
                self._send(response)

            def _send(self, response: Response) -> None:
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

    def answer(self, seen: Seen) -> Response:
        """The next scripted response, or the default responder's, for one chat request."""
        with self.lock:
            self.requests.append(seen)
            step = self.script.pop(0) if self.script else self.default
        return step if isinstance(step, Response) else step(seen)

    # --- a minimal Files and Batches API ---

    def batch_api(self, method: str, path: str, raw: bytes, content_type: str) -> Response:
        parts = path.split("?")[0].rstrip("/").split("/")
        if method == "POST" and parts[-1] == "files":
            fields = _multipart(raw, content_type)
            file_id = f"file-{next(self._ids)}"
            with self.lock:
                self.files[file_id] = (fields["purpose"].decode(), fields["file"])
            return Response(body=_file_object(file_id, "batch", len(fields["file"])))
        if method == "POST" and parts[-1] == "batches":
            request = json.loads(raw)
            batch_id = f"batch_{next(self._ids)}"
            with self.lock:
                batch = {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": request["endpoint"],
                    "completion_window": request["completion_window"],
                    "input_file_id": request["input_file_id"],
                    "created_at": int(time.time()),
                    "status": self.batch_status,
                    "request_counts": {"total": 0, "completed": 0, "failed": 0},
                }
                self.batches[batch_id] = batch
            if self.batch_status == "completed":
                self._run_batch(batch)
            return Response(body=batch)
        if method == "GET" and len(parts) >= 2 and parts[-2] == "batches" and parts[-1] in self.batches:
            return Response(body=self.batches[parts[-1]])
        if method == "GET" and parts[-1] == "content" and parts[-2] in self.files:
            return Response(body=self.files[parts[-2]][1], content_type="application/octet-stream")
        return error(404, f"no such route: {method} {path}")

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every request of the input file now, as the provider would within its window."""
        lines = self.files[batch["input_file_id"]][1].decode().splitlines()
        out = []
        for number, raw in enumerate(filter(None, lines)):
            request = json.loads(raw)
            response = self.answer(Seen(request["url"], request["body"], {}))
            out.append(
                {
                    "id": f"batch_req_{number}",
                    "custom_id": request["custom_id"],
                    "response": {"status_code": response.status, "request_id": f"req_{number}", "body": response.body},
                    "error": None,
                }
            )
        output_id = f"file-{next(self._ids)}"
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in out).encode()
        with self.lock:
            self.files[output_id] = ("batch_output", content)
            batch.update(
                status="completed",
                output_file_id=output_id,
                request_counts={"total": len(out), "completed": len(out), "failed": 0},
            )

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


def _multipart(raw: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (an upload), by name."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


def _file_object(file_id: str, purpose: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": "requests.jsonl",
        "purpose": purpose,
        "status": "processed",
    }
