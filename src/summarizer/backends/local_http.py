"""Plain HTTP/1.1 keep-alive connections to a local `http://` endpoint. The OpenAI backend sends every
request to such an endpoint over them and reads a plain 200 JSON answer itself (the SDK's request
building and answer handling cost more CPU than the rest of a request); the SDK reads every other
answer, as it came.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
MAX_BODY_BYTES = 64 * 2**20  # a larger answer counts as a broken connection


class LocalHttpError(Exception):
    """A plain request failed. `sent` says whether the body may have reached the server."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass
class RawReply:
    """An HTTP answer as it came: status, headers (names in lower case) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def json_body(self) -> bool:
        """A 200 whose body is JSON, neither compressed nor chunked away: what the SDK would parse."""
        kind = (self.header("content-type") or "").split(";")[0].strip().lower()
        encoding = (self.header("content-encoding") or "identity").strip().lower()
        return self.status == 200 and encoding == "identity" and (kind == "application/json" or kind.endswith("+json"))


def local_http_usable(base_url: str | None, environ: dict[str, str] | None = None) -> bool:
    """May the first requests to this endpoint go out as plain HTTP? Only to an `http://` endpoint
    (a local server) with no proxy configured: TLS, proxies and OpenAI's own API are the SDK's."""
    if not base_url:
        return False
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.query or parts.fragment:
        return False
    env = os.environ if environ is None else environ
    return not any(env.get(name) or env.get(name.upper()) for name in _PROXY_VARIABLES)


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LocalHttp:
    """Keep-alive connections to one `http://` endpoint, each carrying one request at a time. Idle
    connections wait in a list: taking one and giving it back costs the same however many there are."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        authority = self.host if self.port == 80 else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 address
            authority = f"[{self.host}]" if self.port == 80 else f"[{self.host}]:{self.port}"
        self._headers = {"Host": authority, **headers}
        self._idle: list[_Connection] = []
        self._heads: dict[str, bytes] = {}  # by path: a request's head up to its Content-Length value
        self.closed = False

    async def post(self, path: str, body: bytes) -> RawReply:
        """POST `body` to the endpoint's `path` and read the whole answer.

        Raises:
            LocalHttpError: no connection, or it broke before a whole answer came back.
        """
        head = self._heads.get(path)
        if head is None:  # the same for every request to a path but its length: built once
            lines = [f"POST {self.prefix}{path} HTTP/1.1"]
            lines += [f"{name}: {value}" for name, value in self._headers.items()]
            lines.append("Content-Length: ")
            head = self._heads[path] = "\r\n".join(lines).encode("latin-1")
        return await self._send(head + b"%d\r\n\r\n" % len(body) + body)

    async def _send(self, request: bytes) -> RawReply:
        """Send one whole HTTP/1.1 request (head and body) and read the whole answer.

        Raises:
            LocalHttpError: no connection, or it broke before a whole answer came back.
        """
        connection = await self._connect()
        try:
            reply, keep = await self._exchange(connection, request)
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
            _close(connection)
            raise LocalHttpError(f"{type(exc).__name__}: {exc}", sent=True) from None
        except BaseException:
            _close(connection)
            raise
        if keep and not self.closed:
            self._idle.append(connection)
        else:
            _close(connection)
        return reply

    async def _connect(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection[0].at_eof() and not connection[1].is_closing():
                return connection
            _close(connection)
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise LocalHttpError(f"cannot connect: {exc}", sent=False) from None
        return reader, writer

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[RawReply, bool]:
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        while True:  # an interim answer (100 Continue, 103 Early Hints) precedes the real one
            version, status, headers = await _read_head(reader)
            if not 100 <= status < 200:
                break
        reply = RawReply(status, headers, b"")
        length = reply.header("content-length")
        if reply.status in (204, 304):
            pass  # no body, whatever the headers say
        elif "chunked" in (reply.header("transfer-encoding") or "").lower():
            reply.body = await _read_chunked(reader)
        elif length is not None:
            if int(length) > MAX_BODY_BYTES:
                raise ValueError(f"an answer of {length} bytes")
            reply.body = await reader.readexactly(int(length))
        else:  # the body runs to the end of the connection
            reply.body = await _read_to_end(reader)
            return reply, False
        keep = version == "HTTP/1.1" and (reply.header("connection") or "").lower() != "close"
        return reply, keep

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self.closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            _close(connection)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, int, list[tuple[str, str]]]:
    """An answer's status line and headers (names in lower case).

    Raises:
        ValueError: not an HTTP/1.x answer.
        asyncio.IncompleteReadError: the connection closed before the head was whole.
    """
    status_line = await reader.readline()
    if not status_line:
        raise asyncio.IncompleteReadError(b"", None)
    version, status, *_ = status_line.decode("latin-1").split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
    headers = []
    while (line := await reader.readline()) not in (b"\r\n", b"\n"):
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return version, int(status), headers


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while part := await reader.read(65536):
        total += len(part)
        if total > MAX_BODY_BYTES:
            raise ValueError(f"an answer of more than {MAX_BODY_BYTES} bytes")
        parts.append(part)
    return b"".join(parts)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        if not size_line:  # the connection closed between chunks: the answer is not whole
            raise asyncio.IncompleteReadError(b"".join(parts), None)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (trailer := await reader.readline()) not in (b"\r\n", b"\n"):
                if not trailer:
                    raise asyncio.IncompleteReadError(b"".join(parts), None)
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError(f"an answer of more than {MAX_BODY_BYTES} bytes")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after each chunk


def _close(connection: _Connection) -> None:
    connection[1].close()
