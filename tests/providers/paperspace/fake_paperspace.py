"""A small Paperspace v1 on loopback (FakeHttpServer), shaped as in ``api_shapes.py``."""

from __future__ import annotations

import itertools
from typing import Any

from tests.support.fake_http import FakeApi, Reply, Request

from .api_shapes import check_request

PREFIX = "/v1"


class FakePaperspace(FakeApi):
    prefix = PREFIX

    def __init__(self) -> None:
        super().__init__()
        self.machines: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.new_state = "ready"
        #: When set, list endpoints answer this many items a page (cursor: the next index).
        self.page_size: int | None = None
        self._ids = itertools.count(1)
        self.route("GET", "/machines", self._list)
        self.route("POST", "/machines", self._create)
        self.route("GET", "/machines/{id}", self._get)
        self.route("DELETE", "/machines/{id}", self._delete)
        self.route("PATCH", "/machines/{id}/start", lambda r: self._power(r, "ready"))
        self.route("PATCH", "/machines/{id}/stop", lambda r: self._power(r, "off"))
        self.route("GET", "/os-templates", self._templates)
        self.route("GET", "/startup-scripts", self._scripts)
        self.route("POST", "/startup-scripts", self._create_script)
        self.route("DELETE", "/startup-scripts/{id}", self._delete_script)

    def add_machine(self, **fields: Any) -> dict[str, Any]:
        mid = f"ps{next(self._ids):07d}"
        machine = {
            "id": mid, "name": "someone", "state": self.new_state, "machineType": "A4000",
            "region": "East Coast (NY2)", "publicIp": "203.0.113.7", "agentType": "LinuxMachine",
            "accelerators": [{"name": "A4000", "count": 1, "memory": 16}], "cpus": 8,
            "ram": 48000000000, "dtCreated": "2026-03-01T12:00:00.000Z", "dtDeleted": None,
            "os": "Ubuntu 22.04", "usageRate": 0.76, "storageRate": 5, "brandNew": {"x": 1},
        }
        machine.update(fields)
        self.machines[mid] = machine
        return machine

    def check_requests(self) -> list[str]:
        ops = []
        for r in self.server.requests:
            query = {k: v[0] for k, v in r.query.items()}
            ops.append(check_request(r.method, r.path[len(PREFIX):], query, r.body or None))
        return ops

    # --- handlers ---------------------------------------------------------------------------
    def _page(self, items: list[dict[str, Any]], req: Request | None = None) -> Reply:
        if req is None or self.page_size is None:
            return Reply.json({"items": items, "hasMore": False, "nextPage": None})
        start = int(req.query.get("after", ["0"])[0])
        end = start + self.page_size
        more = end < len(items)
        return Reply.json({"items": items[start:end], "hasMore": more,
                           "nextPage": str(end) if more else None})

    def _list(self, req: Request) -> Reply:
        return self._page(list(self.machines.values()), req)

    def _create(self, req: Request) -> Reply:
        body = req.json()
        self.creates += 1
        m = self.add_machine(name=body["name"], machineType=body["machineType"],
                             region=body["region"], state="provisioning",
                             startupScriptId=body.get("startupScriptId"))
        return Reply.json({"data": m, "event": {"id": "ev1", "name": "create", "state": "new"}})

    def _machine(self, req: Request) -> dict[str, Any] | None:
        return self.machines.get(req.path_params["id"])

    @staticmethod
    def _missing() -> Reply:
        return Reply.json({"code": "not_found", "message": "Machine not found"}, 404)

    def _get(self, req: Request) -> Reply:
        m = self._machine(req)
        return Reply.json(m) if m else self._missing()

    def _delete(self, req: Request) -> Reply:
        m = self.machines.pop(req.path_params["id"], None)
        if m is None:
            return self._missing()
        m = {**m, "state": "off", "dtDeleted": "2026-03-01T13:00:00.000Z"}
        return Reply.json({"data": m, "event": {"id": "ev2", "name": "deactivate", "state": "new"}})

    def _power(self, req: Request, state: str) -> Reply:
        m = self._machine(req)
        if m is None:
            return self._missing()
        m["state"] = "stopping" if state == "off" else "starting"
        return Reply.json({"data": m, "event": {"id": "ev3", "name": "stop", "state": "new"}})

    def _templates(self, req: Request) -> Reply:
        return self._page(req=req, items=[
            {"id": "tubuntu", "name": "Ubuntu 22.04", "agentType": "LinuxMachine",
             "availableMachineTypes": [{"machineTypeLabel": "A4000", "isAvailable": True}],
             "dtCreated": "2024-01-01T00:00:00Z", "defaultSizeGb": 50, "operatingSystemLabel": "Ubuntu"},
            {"id": "tmlbox1", "name": "ML-in-a-Box Ubuntu 20.04", "agentType": "LinuxMachine",
             "availableMachineTypes": [{"machineTypeLabel": "A4000", "isAvailable": True}],
             "dtCreated": "2023-01-01T00:00:00Z", "defaultSizeGb": 50, "operatingSystemLabel": "Ubuntu"},
            {"id": "tmlbox2", "name": "ML-in-a-Box Ubuntu 22.04", "agentType": "LinuxMachine",
             "availableMachineTypes": [{"machineTypeLabel": "A4000", "isAvailable": True}],
             "dtCreated": "2024-06-01T00:00:00Z", "defaultSizeGb": 50, "operatingSystemLabel": "Ubuntu"},
        ])

    def _scripts(self, req: Request) -> Reply:
        return self._page(list(self.scripts.values()), req)

    def _create_script(self, req: Request) -> Reply:
        body = req.json()
        sid = f"ss{next(self._ids):07d}"
        self.scripts[sid] = {"id": sid, "name": body["name"], "isRunOnce": body.get("isRunOnce", False),
                             "isEnabled": True, "assignedMachineIds": [], "description": None,
                             "dtCreated": "2026-03-01T12:00:00Z", "script": body["script"]}
        return Reply.json(self.scripts[sid])

    def _delete_script(self, req: Request) -> Reply:
        self.scripts.pop(req.path_params["id"], None)
        return Reply.json({})
