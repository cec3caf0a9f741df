"""Shared fixtures: every test gets its own cache folder, no OPENAI_*/SUMMARIZER_* variables, and no
network beyond loopback, so nothing touches the network, the user's home or the real cache folder.
Tests marked `live` are exempt: they talk to a real endpoint on purpose."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAI, GoldResponder
from helpers import ARTICLES, DUMMY_KEY, GOLD_DIR, ROOT

EVAL_ARTICLES = ARTICLES
__all__ = ["EVAL_ARTICLES", "ROOT"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _host(address: Any) -> str:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address)  # AF_UNIX paths are local


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _isolate(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUMMARIZER_CACHE_DIR", str(tmp_path / "cache"))
    if request.node.get_closest_marker("live"):
        return
    for name in list(os.environ):
        if name.startswith("OPENAI_") or (name.startswith("SUMMARIZER_") and name != "SUMMARIZER_CACHE_DIR"):
            monkeypatch.delenv(name)

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def guard(address: Any) -> None:
        if isinstance(address, tuple) and _host(address) not in LOOPBACK:
            raise NetworkBlocked(f"test tried to reach {_host(address)}: only loopback is allowed")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        guard(address)
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            raise NetworkBlocked(f"test tried to resolve {host}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A running fake endpoint answering like a perfect model; OPENAI_* point at it with a dummy key."""
    server = FakeOpenAI(GoldResponder(GOLD_DIR)).start()
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    try:
        yield server
    finally:
        server.close()


# --- The test-only fake backend (tests/fake_backend.py), for batch and export tests ----------------

from fake_backend import CpuFakeBackend, FakeBackend  # noqa: E402
from summarizer.backends import register_backend  # noqa: E402

register_backend("fake", FakeBackend)
register_backend("cpufake", CpuFakeBackend)
# CLI subprocesses find it through the plugin hook (with tests/ on PYTHONPATH).
FAKE_PLUGINS = "fake=fake_backend:FakeBackend,cpufake=fake_backend:CpuFakeBackend"


@pytest.fixture(autouse=True)
def _fake_backends(_isolate: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAKE_DELAY", "FAKE_FAIL_MARK", "FAKE_AUTH_MARK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUMMARIZER_BACKEND_PLUGIN", FAKE_PLUGINS)
    FakeBackend.in_flight = FakeBackend.peak = FakeBackend.calls = 0
