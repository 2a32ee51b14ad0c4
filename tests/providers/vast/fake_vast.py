"""A small Vast.ai on loopback: the endpoints runctl uses, with state, on FakeHttpServer.

Shapes follow ``tests/support/specs/vastai-openapi.yaml`` (the responses are
trimmed to the fields the spec documents; the offer is the spec's own example).
Every request the fake receives can be checked against the spec with
:meth:`FakeVast.assert_requests_match_spec`.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.support.fake_http import FakeApi, Reply, Request
from tests.support.openapi import SPECS, assert_server_requests_match

SPEC = SPECS / "vastai-openapi.yaml"

OFFER: dict[str, Any] = {
    "id": 12345678, "ask_contract_id": 12345678, "num_gpus": 4, "gpu_name": "RTX 4090",
    "gpu_ram": 24576, "cpu_cores_effective": 32, "cpu_ram": 65536, "dph_base": 0.123456,
    "dph_total": 0.234567, "min_bid": 0.111111, "storage_cost": 0.15, "inet_up_cost": 0.00456,
    "inet_down_cost": 0.00123, "geolocation": "California, US", "rentable": True,
    "verification": "verified", "is_bid": False, "reliability": 0.9999, "extra_unknown_key": [1],
}


class FakeVast(FakeApi):
    """Holds instances; ``server`` answers like Vast. ``status`` is what new instances report."""

    def __init__(self) -> None:
        super().__init__()
        self.instances: dict[int, dict[str, Any]] = {}
        self.creates = 0
        self.new_status: str | None = "running"
        #: Offers that still show in search but are rented by someone else when asked for.
        self.taken: set[int] = set()
        #: When set, GET /api/v0/instances/{id} answers exactly these bytes.
        self.raw_show: bytes | None = None
        #: What an instance's container printed, line by line (default: two epoch lines).
        self.logs: dict[int, list[str]] = {}
        self._ids = itertools.count(1234568)
        self.route("POST", "/api/v0/bundles", self._search)
        self.route("PUT", "/api/v0/asks/{id}", self._create)
        self.route("GET", "/api/v0/instances/{id}", self._show)
        self.route("PUT", "/api/v0/instances/{id}", self._manage)
        self.route("DELETE", "/api/v0/instances/{id}", self._destroy)
        self.route("POST", "/api/v0/instances/{id}/ssh", self._attach_ssh)
        self.route("PUT", "/api/v0/instances/request_logs/{id}", self._request_logs)
        self.route("GET", "/logs/{id}", self._log_file)
        self.route("GET", "/api/v1/instances", self._list)

    def add_instance(self, **fields: Any) -> dict[str, Any]:
        iid = next(self._ids)
        inst = {
            "id": iid, "actual_status": self.new_status, "intended_status": "running",
            "cur_state": "running", "label": None, "num_gpus": 4, "gpu_name": "RTX 4090",
            "gpu_ram": 24576, "dph_base": 0.123456, "dph_total": 0.2, "storage_cost": 0.15,
            "inet_up_cost": 0.00456, "is_bid": False, "start_date": 1668804745.1223178,
            "geolocation": "California, US", "public_ipaddr": "192.0.2.45",
            "ssh_host": "ssh5.vast.ai", "machine_id": 12, "status_msg": None,
            "extra_env": [["DOG", "CAT"]],
        }
        inst.update(fields)
        self.instances[iid] = inst
        return inst

    def assert_requests_match_spec(self) -> int:
        # The log file lives on S3, outside the API.
        api = [r for r in self.server.requests if not r.path.startswith("/logs/")]
        return assert_server_requests_match(SPEC, api)

    # --- handlers ---------------------------------------------------------------------------
    def _search(self, req: Request) -> Reply:
        body = req.json()
        wanted = body.get("id", {}).get("eq")
        if wanted is not None and wanted != OFFER["id"]:
            return Reply.json({"offers": []})
        offer = dict(OFFER)
        if body.get("type") == "bid":
            offer["is_bid"] = True
        return Reply.json({"offers": [offer]})

    def _create(self, req: Request) -> Reply:
        body = req.json()
        if int(req.path_params["id"]) != OFFER["id"] or OFFER["id"] in self.taken:
            return Reply.json({"success": False, "error": "no_such_ask",
                               "msg": "error 404/3603: no_such_ask Instance type by id is not available."},
                              404)
        self.creates += 1
        inst = self.add_instance(label=body.get("label"), is_bid="price" in body,
                                 image_uuid=body["image"], image_args=body.get("args", []))
        return Reply.json({"success": True, "new_contract": inst["id"]})

    def _get(self, req: Request) -> dict[str, Any] | None:
        return self.instances.get(int(req.path_params["id"]))

    def _show(self, req: Request) -> Reply:
        if self.raw_show is not None:
            return Reply(200, self.raw_show, {"Content-Type": "application/json"})
        inst = self._get(req)
        return Reply.json({"instances": inst})

    def _manage(self, req: Request) -> Reply:
        inst = self._get(req)
        if inst is None:
            return Reply.json({"success": False, "error": "not_found", "msg": "Instance not found"}, 404)
        state = req.json().get("state")
        if state:
            inst["intended_status"] = state
            inst["actual_status"] = state
        return Reply.json({"success": True})

    def _destroy(self, req: Request) -> Reply:
        if self.instances.pop(int(req.path_params["id"]), None) is None:
            return Reply.json({"success": False, "error": "not_found", "msg": "Instance not found"}, 404)
        return Reply.json({"success": True, "msg": "Instance destroyed successfully"})

    def _attach_ssh(self, req: Request) -> Reply:
        inst = self._get(req)
        if inst is None:
            return Reply.json({"success": False, "error": "not_found", "msg": "Instance not found"}, 404)
        inst.setdefault("ssh_keys", []).append(req.json()["ssh_key"])
        return Reply.json({"success": True, "msg": "SSH key attached successfully"})

    def _request_logs(self, req: Request) -> Reply:
        iid = req.path_params["id"]
        return Reply.json({"success": True, "result_url": f"{self.url}/logs/{iid}", "msg": "ok"})

    def _log_file(self, req: Request) -> Reply:
        lines = self.logs.get(int(req.path_params["id"]))
        if lines is None:
            return Reply.text("epoch 1 loss 0.5\nepoch 2 loss 0.25\n")
        return Reply.text("".join(f"{line}\n" for line in lines))

    def log_requests(self) -> int:
        """How many times a log upload was asked for."""
        return sum(1 for r in self.server.requests if "/request_logs/" in r.path)

    def _list(self, req: Request) -> Reply:
        limit = min(int(req.query.get("limit", ["25"])[0]), 25)
        after = int(req.query.get("after_token", ["0"])[0])
        rows = sorted(self.instances.values(), key=lambda i: i["id"])
        rows = [r for r in rows if r["id"] > after]
        page, rest = rows[:limit], rows[limit:]
        token = str(page[-1]["id"]) if rest else None
        return Reply.json({"success": True, "instances_found": len(page),
                           "total_instances": len(self.instances), "next_token": token,
                           "instances": page})


def dump(data: Any) -> str:
    return json.dumps(data)
