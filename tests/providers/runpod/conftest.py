"""Fixtures for the RunPod tests: a provider wired to cassettes, and a fake RunPod on loopback."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runctl.config import ProviderConfig
from runctl.http import RetryPolicy
from runctl.providers.runpod import RunPodProvider
from tests.support.fake_http import FakeApi, Reply, Request
from tests.support.openapi import SPECS, RecordingTransport, assert_server_requests_match

SPEC = SPECS / "runpod-rest-v2-openapi.json"
CASSETTES = Path(__file__).parent / "cassettes"
#: A made-up key: tests assert it never shows up in errors, reprs or cassettes.
FAKE_KEY = "rpa_TESTKEY_0123456789abcdefghijklmnop"


def config(environ: dict[str, str], tmp_path: Path) -> ProviderConfig:
    return ProviderConfig(name="runpod", home=tmp_path, environ=environ)


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport(httpx.AsyncHTTPTransport())


@pytest.fixture
async def provider(tmp_path: Path, recorder: RecordingTransport) -> AsyncIterator[RunPodProvider]:
    p = RunPodProvider(
        config({"RUNPOD_API_KEY": FAKE_KEY}, tmp_path),
        transport=recorder,
        retry=RetryPolicy(attempts=3, base=0.001),
    )
    yield p
    await p.aclose()


# --- a fake RunPod ------------------------------------------------------------------------------

_POD_TEMPLATE: dict[str, Any] = {
    "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
    "args": "",
    "disk": 50,
    "ports": [],
    "env": {},
    "registry": None,
    "mounts": {},
    "cloud": "SECURE",
    "dataCenterId": "US-KS-2",
    "cudaVersion": "12.8",
    "ssh": {"proxy": None, "direct": None},
    "template": None,
    "cost": 0.44,
    "locked": False,
    "globalNetworking": {"enabled": False},
    "runtime": None,
    "createdAt": "2026-06-01T12:00:00Z",
    "startedAt": None,
}


class FakeRunPod(FakeApi):
    """Just enough of RunPod REST v2 to launch, read, stop, start and delete pods."""

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[str, dict[str, Any]] = {}
        self.status_on_create = "PROVISIONING"
        self.create_then_fail: int | None = None  # status to answer after creating
        self._ids = (f"pod{n:07d}" for n in itertools.count(1))
        self.route("GET", "/v2/pods", lambda r: Reply.json({"pods": list(self.pods.values())}))
        self.route("POST", "/v2/pods", self._create)
        self.route("GET", "/v2/pods/{id}", self._get)
        self.route("DELETE", "/v2/pods/{id}", self._delete)
        self.route("POST", "/v2/pods/{id}/action", self._action)
        #: What each pod's container printed, line by line (served as Server-Sent Events).
        self.logs: dict[str, list[str]] = {}
        self.route("GET", "/v2/pods/{id}/logs", self._logs)
        self.route("GET", "/v2/catalog/gpus", self._catalog)

    def _problem(self, status: int, detail: str) -> Reply:
        title = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}.get(status, "Error")
        body = {"title": title, "status": status, "detail": detail}
        return Reply(
            status, json.dumps(body).encode(), {"Content-Type": "application/problem+json"}
        )

    def _create(self, request: Request) -> Reply:
        body = request.json()
        pod = copy.deepcopy(_POD_TEMPLATE)
        pod.update(
            id=next(self._ids),
            name=body["name"],
            env=body.get("env", {}),
            args=body.get("args", ""),
            image=body.get("image", pod["image"]),
            gpu=body["gpu"],
            cloud=body.get("cloud", "SECURE"),
            status=self.status_on_create,
            actions=["stop", "terminate"],
        )
        self.pods[pod["id"]] = pod
        if self.create_then_fail is not None:
            return self._problem(self.create_then_fail, "upstream timed out")
        return Reply.json(pod, 201)

    def _get(self, request: Request) -> Reply:
        pod = self.pods.get(request.path_params["id"])
        return Reply.json(pod) if pod else self._problem(404, "pod not found")

    def _delete(self, request: Request) -> Reply:
        if self.pods.pop(request.path_params["id"], None) is None:
            return self._problem(404, "pod not found")
        return Reply(204)

    def _action(self, request: Request) -> Reply:
        pod = self.pods.get(request.path_params["id"])
        if pod is None:
            return self._problem(404, "pod not found")
        action = request.json()["action"]
        if action not in pod["actions"]:
            return self._problem(409, f"cannot {action} a pod that is {pod['status']}")
        pod["status"] = {"stop": "EXITED", "start": "RUNNING", "restart": "RUNNING"}[action]
        pod["actions"] = ["start", "terminate"] if action == "stop" else ["stop", "terminate"]
        return Reply.json(pod)

    def _logs(self, request: Request) -> Reply:
        """The backlog (``tail`` lines, default 100), then the stream ends (the client reconnects)."""
        lines = self.logs.get(request.path_params["id"], [])
        tail = int(request.query.get("tail", ["100"])[0])
        numbered = list(enumerate(lines, start=1))[-tail:] if tail else []
        body = ""
        for n, line in numbered:
            ts = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
            data = json.dumps({"ts": ts, "source": "container", "line": line})
            body += f"id: {ts}/{n}\ndata: {data}\n\n"
        return Reply(200, body.encode(), {"Content-Type": "text/event-stream"})

    def log_requests(self) -> int:
        return sum(1 for r in self.server.requests if r.path.endswith("/logs"))

    def _catalog(self, request: Request) -> Reply:
        return Reply.json(
            {
                "gpus": [
                    {
                        "id": "NVIDIA H100 80GB HBM3",
                        "name": "H100 SXM",
                        "manufacturer": "NVIDIA",
                        "memory": 80,
                        "secure": True,
                        "community": False,
                        "price": {"secure": 2.99, "community": 0},
                        "maxCount": {"secure": 8, "community": 0},
                        "availability": "MEDIUM",
                    }
                ]
            }
        )

    def check_requests_against_spec(self) -> int:
        """Every request the fake received must be one RunPod documents."""
        return assert_server_requests_match(SPEC, self.server.requests)


@pytest.fixture
def fake() -> Iterator[FakeRunPod]:
    with FakeRunPod() as fake:
        yield fake


@pytest.fixture
async def fake_provider(fake: FakeRunPod, tmp_path: Path) -> AsyncIterator[RunPodProvider]:
    environ = {"RUNPOD_API_KEY": FAKE_KEY, "RUNCTL_RUNPOD_BASE_URL": fake.url}
    p = RunPodProvider(
        config(environ, tmp_path),
        retry=RetryPolicy(attempts=4, base=0.001, cap=1.0),
        timeout=httpx.Timeout(1.0),
        log_idle_timeout=0.5,
    )
    yield p
    await p.aclose()
