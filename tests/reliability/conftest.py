"""Fixtures for the reliability suite: a misbehaving RunPod server, the real RunPod provider
pointed at it, and a scan that no credential leaks into logs, reprs or error messages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runctl.config import load_settings
from runctl.http import RetryPolicy
from runctl.ledger import Ledger

from .fake_runpod import FakeRunPod

#: The credentials the suite uses; none of them may ever be printed.
API_KEY = "rp_live_TESTKEY_7f3a9c2e51d84b06"
USER_SECRET = "hf_USERTOKEN_a8d1e4c29b7f"
SECRETS = (API_KEY, USER_SECRET)

#: Seconds: the client's read timeout, and how late a "timeout" fault answers (and acts).
CLIENT_TIMEOUT = 0.1
SERVER_DELAY = 0.15
#: A launch that failed without a clear answer looks this long for a late create: twice
#: the time a "timeout" create lands after the client gave up (SERVER_DELAY - CLIENT_TIMEOUT),
#: and more, so that a busy machine's scheduling does not decide the outcome.
SETTLE = 0.3


class TextSink:
    """Everything the test run printed or raised, to be scanned for secrets."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *items: object) -> None:
        for item in items:
            seen: set[int] = set()
            todo: list[object] = [item]
            while todo:  # an exception with its causes and contexts (which may loop)
                current = todo.pop()
                if id(current) in seen:
                    continue
                seen.add(id(current))
                self.texts.append(str(current))
                self.texts.append(repr(current))
                if isinstance(current, BaseException):
                    todo += [e for e in (current.__cause__, current.__context__) if e]

    def leaks(self) -> list[str]:
        return [t for t in self.texts if any(s in t for s in SECRETS)]


class _Capture(logging.Handler):
    def __init__(self, sink: TextSink) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.texts.append(self.format(record))  # includes the formatted traceback


@pytest.fixture
def sink() -> Iterator[TextSink]:
    """Collects every log line (DEBUG and up) of the test; fails it if a secret shows."""
    collected = TextSink()
    handler = _Capture(collected)
    root = logging.getLogger()
    runctl_logger = logging.getLogger("runctl")
    old_level = runctl_logger.level
    root.addHandler(handler)
    runctl_logger.setLevel(logging.DEBUG)
    try:
        yield collected
    finally:
        root.removeHandler(handler)
        runctl_logger.setLevel(old_level)
    assert collected.texts, "the secret scan saw nothing; it is not wired up"
    assert collected.leaks() == []


@pytest.fixture
def fake_runpod() -> Callable[..., FakeRunPod]:
    servers: list[FakeRunPod] = []

    def start(**kw: object) -> FakeRunPod:
        server = FakeRunPod(timeout_delay=SERVER_DELAY, **kw)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()


@pytest.fixture
def runpod_provider(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """The real RunPod provider, configured the way a user would, pointed at a fake server."""

    def build(server: FakeRunPod, transport: httpx.AsyncBaseTransport | None = None) -> object:
        from runctl.providers.runpod import RunPodProvider

        monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
        monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", server.url)
        config = load_settings().provider_config("runpod")
        return RunPodProvider(
            config,
            # Retry sleeps near zero: the suite measures behaviour, not patience.
            retry=RetryPolicy(attempts=5, base=0.0005, cap=0.005),
            timeout=httpx.Timeout(CLIENT_TIMEOUT, connect=2.0),
            transport=transport,
        )

    return build


@pytest.fixture
def ledger(runctl_home: Path) -> Ledger:
    return Ledger(runctl_home / "ledger.sqlite3")
