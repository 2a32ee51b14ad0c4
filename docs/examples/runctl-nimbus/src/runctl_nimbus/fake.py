"""A fake Nimbus API in memory, and the backend driver runctl's conformance kit moves it with.

The fake serves the endpoints :class:`runctl_nimbus.NimbusProvider` uses, with
the shapes of Nimbus's (made-up) API reference, through an
``httpx.MockTransport``: no socket, no thread, no real time. Jobs move as the
real service's do, one step per read (``queued -> booting -> running``, a stop
goes through ``stopping``, a delete through ``deleting``), until the driver
pins them to a state.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx

from runctl import Money, Offer

__all__ = ["DOCUMENTED_STATES", "FakeNimbus", "NimbusDriver"]

#: The job statuses Nimbus's API reference lists (independent of the provider's table,
#: so that a status the table forgot is caught).
DOCUMENTED_STATES = (
    "queued",
    "booting",
    "running",
    "stopping",
    "stopped",
    "deleting",
    "deleted",
    "exited",
    "preempted",
)

#: What Nimbus rents, priced per GPU-hour as its API lists them.
MACHINE_TYPES: list[dict[str, Any]] = [
    {"name": "a100x1", "gpu": "A100 80GB", "gpus": 1, "price_per_gpu_hour": "1.10"},
    {"name": "a100x8", "gpu": "A100 80GB", "gpus": 8, "price_per_gpu_hour": "1.05"},
    {"name": "h100x4", "gpu": "H100 SXM", "gpus": 4, "price_per_gpu_hour": "2.40"},
]

_NEXT = {"queued": "booting", "booting": "running", "stopping": "stopped", "deleting": "deleted"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class FakeNimbus:
    """The service: every job it ever made, and the faults queued for the next requests."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[str] = []
        self._ids = itertools.count(1)
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if request.headers.get("authorization") != "Bearer nimbus-test-key":
            return httpx.Response(401, json={"error": "bad key"})
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "reset":
                raise httpx.ReadError("connection reset by peer", request=request)
            return httpx.Response(int(fault), json={"error": "injected"})
        parts = request.url.path.strip("/").split("/")[1:]  # drop "v1"
        method = request.method
        if parts == ["machine-types"] and method == "GET":
            return httpx.Response(200, json=MACHINE_TYPES)
        if parts == ["jobs"] and method == "POST":
            return self._create(json.loads(request.content))
        if parts == ["jobs"] and method == "GET":
            selectors = [s.split("=", 1) for s in request.url.params.get_list("label")]
            found = [
                self._read(j)
                for j in self.jobs.values()
                if all(j["labels"].get(k) == v for k, v in selectors)
            ]
            return httpx.Response(200, json=found)
        if not parts or parts[0] != "jobs" or len(parts) < 2 or parts[1] not in self.jobs:
            return httpx.Response(404, json={"error": "no such job"})
        job = self.jobs[parts[1]]
        action = parts[2] if len(parts) > 2 else None
        if action is None and method == "GET":
            return httpx.Response(200, json=self._read(job))
        if action is None and method == "DELETE":
            if job["status"] not in ("deleted", "deleting"):
                job.update(status="deleting", pinned=False)
                job.setdefault("ended_at", _now())
            return httpx.Response(202, json=job)
        if action == "stop" and method == "POST":
            if job["status"] == "running":
                job["status"] = "stopping"
            elif job["status"] not in ("stopping", "stopped"):
                return httpx.Response(409, json={"error": f"job is {job['status']}"})
            return httpx.Response(200, json=job)
        if action == "start" and method == "POST":
            if job["status"] == "stopped":
                job["status"] = "booting"
            elif job["status"] not in ("booting", "running"):
                return httpx.Response(409, json={"error": f"job is {job['status']}"})
            return httpx.Response(200, json=job)
        if action == "logs" and method == "GET":
            return httpx.Response(200, text=job["log"])
        return httpx.Response(404, json={"error": "no such endpoint"})

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        for job in self.jobs.values():
            if job["client_token"] == body["client_token"]:
                return httpx.Response(200, json=job)  # Nimbus's own idempotency
        if body["machine_type"] not in {m["name"] for m in MACHINE_TYPES}:
            return httpx.Response(400, json={"error": "unknown machine type"})
        job_id = f"job-{next(self._ids):04d}"
        self.jobs[job_id] = {
            "id": job_id,
            "status": "queued",
            "client_token": body["client_token"],
            "machine_type": body["machine_type"],
            "labels": dict(body.get("labels") or {}),
            "created_at": _now(),
            "exit_code": None,
            "log": "",
            "pinned": False,
        }
        return httpx.Response(201, json=self.jobs[job_id])

    def _read(self, job: dict[str, Any]) -> dict[str, Any]:
        """A read sees the job one step further along, as polling the real service does."""
        if not job["pinned"] and job["status"] in _NEXT:
            job["status"] = _NEXT[job["status"]]
            if job["status"] == "running":
                job.setdefault("started_at", _now())
        return {k: v for k, v in job.items() if k not in ("log", "pinned")}

    def live(self) -> list[str]:
        """Jobs that still hold a machine."""
        return [i for i, j in self.jobs.items() if j["status"] not in ("deleted", "exited")]


class NimbusDriver:
    """Moves a :class:`FakeNimbus` the way only a test can: runctl's ``BackendDriver``."""

    documented_states: Sequence[str] = DOCUMENTED_STATES

    def __init__(self, fake: FakeNimbus) -> None:
        self.fake = fake
        self._failures = 0

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        job = self.fake.jobs[resource_id]
        job["status"] = raw
        job["pinned"] = True
        if raw == "exited" and job["exit_code"] is None:
            job["exit_code"] = 0

    async def finish(self, resource_id: str, exit_code: int) -> None:
        job = self.fake.jobs[resource_id]
        job.update(status="exited", exit_code=exit_code, ended_at=_now(), pinned=True)

    async def write_log(self, resource_id: str, lines: Sequence[str]) -> None:
        self.fake.jobs[resource_id]["log"] += "".join(f"{line}\n" for line in lines)

    async def hourly_price(self, offer: Offer) -> Money | None:
        for machine in MACHINE_TYPES:
            if machine["name"] == offer.instance_type:
                return Money(Decimal(machine["price_per_gpu_hour"]) * machine["gpus"], "USD")
        return None

    async def fail_next_request(self) -> None:
        self._failures += 1
        self.fake.faults.append("reset" if self._failures % 2 else "503")
