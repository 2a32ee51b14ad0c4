"""A RunPod-shaped REST v2 server on loopback that misbehaves on purpose.

It serves the pod endpoints runctl uses (``GET/POST /v2/pods``,
``GET/DELETE /v2/pods/{id}``) with the shapes of RunPod's published OpenAPI
spec, and keeps the whole truth: every pod ever created, by launch id, so a
test can count duplicates and leaks exactly.

Faults are drawn at random for a fraction ``fault_rate`` of requests (seeded,
so a failing run can be replayed):

==============  =====================================================================
fault           what the client sees
==============  =====================================================================
``429``         rate limited, ``Retry-After: 0`` (nothing happened)
``500/502/503`` a server error (nothing happened)
``504``         gateway timeout (nothing happened)
``timeout``     the answer comes after the client's read timeout (it happened)
``reset``       the connection closes before the request is handled (nothing happened)
``lose``        the request is carried out, the connection closes unanswered
``truncate``    the request is carried out, half the body arrives
``stale``       reads report a deleted pod as still ``RUNNING``
==============  =====================================================================
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from tests.support.fake_http import FakeHttpServer, Fault, Reply, Request

FAULT_KINDS = ("429", "500", "502", "503", "504", "timeout", "reset", "lose", "truncate", "stale")
GPU_ID = "NVIDIA H100 80GB HBM3"
PER_GPU_HOUR = 2.69


def _problem(status: int, title: str, detail: str) -> Reply:
    return Reply(
        status,
        json.dumps({"title": title, "status": status, "detail": detail}).encode(),
        {"Content-Type": "application/problem+json"},
    )


class FakeRunPod(FakeHttpServer):
    """The server. Use as a context manager; ``url`` is the API root.

    Args:
        fault_rate: fraction of requests that get a fault.
        seed: random seed for the faults.
        timeout_delay: how long a ``timeout`` fault holds the answer (longer than
            the client's read timeout).
        kinds: the faults to draw from.
    """

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        seed: int = 0,
        timeout_delay: float = 0.3,
        kinds: tuple[str, ...] = FAULT_KINDS,
    ) -> None:
        super().__init__()
        self.fault_rate = fault_rate
        self.timeout_delay = timeout_delay
        self.kinds = kinds
        self.rng = random.Random(seed)
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.created_per_launch: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.requests_seen = 0
        self._state = threading.Lock()
        self._ids = 0
        self._stale_once: set[str] = set()
        self.route("GET", "/v2/pods", self._list)
        self.route("POST", "/v2/pods", self._create)
        self.route("GET", "/v2/pods/{id}", self._get)
        self.route("DELETE", "/v2/pods/{id}", self._delete)

    def start(self) -> FakeRunPod:
        super().start()
        server = self._server
        assert server is not None
        accept = server.get_request

        def get_request() -> Any:
            # Headers and body go out in two writes; without TCP_NODELAY every answer
            # waits ~40 ms for a delayed ACK, and the suite measures that instead of runctl.
            sock, address = accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, address

        server.get_request = get_request  # type: ignore[method-assign]
        # Connections the faults cut are expected; no tracebacks on stderr for them.
        server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        return self

    # --- fault injection (hooks of FakeHttpServer) ----------------------------------------------

    def _template_of(self, method: str, path: str) -> str | None:
        # Every routed request is a candidate for a fault (the base class: only queued ones).
        return path if self._match(method, path) is not None else None

    def _next_fault(self, method: str, template: str) -> Fault | None:
        with self._state:
            self.requests_seen += 1
            if self.rng.random() >= self.fault_rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.faults_injected[kind] += 1
        if kind in ("429", "500", "502", "503", "504"):
            status = int(kind)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return Fault.http(status, {"title": "fault", "status": status, "detail": "injected"},
                              headers)
        if kind == "timeout":
            return Fault.sleep(self.timeout_delay)
        if kind == "reset":
            return Fault.reset()
        if kind == "lose":
            return Fault.lose_response()
        if kind == "truncate":
            return Fault.truncate()
        # stale: the next read of any recently deleted pod reports it still running
        with self._state:
            self._stale_once.update(list(self.deleted)[-3:])
        return None

    # --- the API ---------------------------------------------------------------------------------

    def _pod(self, body: dict[str, Any], pod_id: str) -> dict[str, Any]:
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        gpu = body.get("gpu") or {"id": GPU_ID, "count": 1}
        return {
            "id": pod_id,
            "name": body.get("name", ""),
            "image": body.get("image", ""),
            "args": body.get("args", ""),
            "disk": body.get("disk", 50),
            "ports": body.get("ports", []),
            "env": body.get("env", {}),
            "registry": None,
            "status": "PROVISIONING",
            "actions": ["stop", "restart", "terminate"],
            "mounts": {},
            "gpu": gpu,
            "cloud": body.get("cloud", "SECURE"),
            "dataCenterId": "US-KS-2",
            "cudaVersion": "12.8",
            "ssh": {},
            "template": None,
            "cost": round(PER_GPU_HOUR * int(gpu.get("count", 1)), 2),
            "locked": False,
            "globalNetworking": {"enabled": False},
            "runtime": None,
            "createdAt": now,
            "startedAt": None,
        }

    @staticmethod
    def launch_id_of(pod: dict[str, Any]) -> str | None:
        try:
            tags = json.loads(pod.get("env", {}).get("RUNCTL_TAGS", "{}"))
        except json.JSONDecodeError:
            return None
        value = tags.get("runctl-launch-id")
        return value if isinstance(value, str) else None

    def _advance(self, pod: dict[str, Any]) -> dict[str, Any]:
        if pod["status"] == "PROVISIONING":
            pod["status"] = "RUNNING"
            pod["startedAt"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return pod

    def _shown(self, pod_id: str) -> dict[str, Any] | None:
        """The pod as a read shows it, stale or not (call with the state lock held)."""
        if pod_id in self.pods:
            return self._advance(self.pods[pod_id])
        if pod_id in self._stale_once:
            self._stale_once.discard(pod_id)
            return {**self.deleted[pod_id], "status": "RUNNING"}
        return None

    def _list(self, request: Request) -> Reply:
        with self._state:
            ids = list(self.pods)
            ids += [i for i in self._stale_once if i in self.deleted]
            pods = [p for p in (self._shown(i) for i in ids) if p is not None]
            return Reply.json({"pods": json.loads(json.dumps(pods))})

    def _create(self, request: Request) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or not body.get("name"):
            return _problem(422, "Unprocessable Entity", "name is required")
        with self._state:
            self._ids += 1
            pod_id = f"pod{self._ids:06d}"
            pod = self._pod(body, pod_id)
            self.pods[pod_id] = pod
            launch_id = self.launch_id_of(pod)
            if launch_id:
                self.created_per_launch[launch_id] += 1
            return Reply.json(json.loads(json.dumps(pod)), status=201)

    def _get(self, request: Request) -> Reply:
        with self._state:
            pod = self._shown(request.path_params["id"])
            if pod is None:
                return _problem(404, "Not Found", "pod not found")
            return Reply.json(json.loads(json.dumps(pod)))

    def _delete(self, request: Request) -> Reply:
        with self._state:
            pod = self.pods.pop(request.path_params["id"], None)
            if pod is None:
                return _problem(404, "Not Found", "pod not found")
            self.deleted[pod["id"]] = pod
            return Reply(204)

    # --- the truth, for assertions ----------------------------------------------------------------

    def live(self) -> list[dict[str, Any]]:
        """Pods that exist (not deleted)."""
        with self._state:
            return [dict(p) for p in self.pods.values()]

    def duplicates(self) -> dict[str, int]:
        """Launch ids with more than one pod ever created."""
        with self._state:
            return {k: v for k, v in self.created_per_launch.items() if v > 1}

    def pods_of(self, launch_id: str) -> list[str]:
        """Ids of every pod ever created for ``launch_id``."""
        with self._state:
            everything = {**self.deleted, **self.pods}
            return sorted(i for i, p in everything.items() if self.launch_id_of(p) == launch_id)

    def is_live(self, pod_id: str) -> bool:
        with self._state:
            return pod_id in self.pods
