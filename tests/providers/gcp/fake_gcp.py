"""A fake Compute Engine and Cloud TPU API on loopback, from Google's published REST shapes.

The real SDKs (google-cloud-compute, google-cloud-tpu, REST transport) talk to it
over HTTP. What it keeps is what the APIs document:

- Compute Engine v1 (``/compute/v1/projects/P/...``): ``instances`` insert (with
  ``requestId`` deduplication: a repeated id answers with the first operation),
  get, list, ``aggregated/instances`` (labels filter, pages), delete, stop,
  start, ``serialPort`` (paged by ``start``/``next``); zone operations get, wait
  and list; ``compute#operation`` objects that are RUNNING until polled, then
  DONE, with ``error.errors[]`` codes for faults.
- Cloud TPU v2 (``/v2/projects/P/locations/Z/...``): nodes create/get/list
  (``locations/-`` for every zone)/delete/stop/start/getGuestAttributes, queued
  resources create/get/delete, and long-running operations (``done`` on the
  first poll, ``response`` or ``error`` a ``google.rpc.Status``).

Simulated, not Google's: a VM "runs" its ``startup-script`` when its insert
finishes, with /bin/sh on this machine (``run_workloads=True``), and its output
is put on serial port 1 the way the guest agent writes it
(``... google_metadata_script_runner[...]: startup-script: <line>``), so the
wrapper's marker reaches runctl as it would from a real VM.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
from typing import Any

from tests.support.fake_http import FakeApi, Reply, Request

PROJECT = "runctl-test-project"
COMPUTE = f"/compute/v1/projects/{PROJECT}"
TPU = f"/v2/projects/{PROJECT}/locations"
BASE = "https://www.googleapis.com/compute/v1"
_NOW = "2026-12-01T00:00:00.000-08:00"


def compute_error(code: int, reason: str, message: str) -> Reply:
    return Reply.json(
        {"error": {"code": code, "message": message,
                   "errors": [{"message": message, "domain": "global", "reason": reason}]}},
        code,
    )


def rpc_error(code: int, status: str, message: str) -> Reply:
    return Reply.json({"error": {"code": code, "message": message, "status": status}}, code)


class FakeGcp(FakeApi):
    """Compute Engine and Cloud TPU, in memory. Zones named in ``stockout`` have no capacity."""

    def __init__(self, *, run_workloads: bool = False) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.operations: dict[tuple[str, str], dict[str, Any]] = {}
        self.request_ids: dict[str, dict[str, Any]] = {}
        self.serial: dict[tuple[str, str], str] = {}
        self.nodes: dict[tuple[str, str], dict[str, Any]] = {}
        self.queued: dict[tuple[str, str], dict[str, Any]] = {}
        self.lros: dict[str, dict[str, Any]] = {}
        self.guest_attributes: dict[tuple[str, str], list[dict[str, str]]] = {}
        #: zones out of capacity: the insert is accepted, its operation fails
        self.stockout: set[str] = set()
        #: zones where the quota is reached
        self.no_quota: set[str] = set()
        #: an operation error to give the next insert (code, message), after acceptance
        self.late_failure: tuple[str, str] | None = None
        self.page_size = 500
        self.serial_page = 1 << 20
        self.run_workloads = run_workloads
        self._ids = itertools.count(1000)
        self.server.poll_interval = 0.05  # stop within 50 ms, not serve_forever's 0.5 s
        self._routes()

    # --- helpers --------------------------------------------------------------------------------

    def _op(self, zone: str, kind: str, target: str, *, effect: Any = None,
            error: tuple[str, str] | None = None) -> dict[str, Any]:
        n = next(self._ids)
        op = {
            "kind": "compute#operation", "id": str(n), "name": f"operation-{n}",
            "zone": f"{BASE}/projects/{PROJECT}/zones/{zone}", "operationType": kind,
            "targetLink": f"{BASE}/projects/{PROJECT}/zones/{zone}/instances/{target}",
            "status": "RUNNING", "progress": 0, "insertTime": _NOW,
            "selfLink": f"{BASE}/projects/{PROJECT}/zones/{zone}/operations/operation-{n}",
        }
        self.operations[zone, op["name"]] = {"op": op, "effect": effect, "error": error}
        return op

    def _finish(self, zone: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            entry = self.operations.get((zone, name))
            if entry is None:
                return None
            op = entry["op"]
            if op["status"] != "DONE":
                op["status"], op["progress"], op["endTime"] = "DONE", 100, _NOW
                if entry["error"] is not None:
                    code, message = entry["error"]
                    op["error"] = {"errors": [{"code": code, "message": message}]}
                    op["httpErrorStatusCode"] = 403 if code == "QUOTA_EXCEEDED" else 503
                    op["httpErrorMessage"] = "FORBIDDEN" if code == "QUOTA_EXCEEDED" else "SERVICE UNAVAILABLE"
                elif entry["effect"] is not None:
                    entry["effect"]()
            return op

    def instance(self, zone: str, name: str) -> dict[str, Any]:
        return self.instances[zone, name]

    def preempt(self, zone: str, name: str) -> None:
        """Google preempts a spot VM: it is deleted (DELETE action), an operation says why."""
        with self.lock:
            inst = self.instances[zone, name]
            action = inst.get("scheduling", {}).get("instanceTerminationAction", "DELETE")
            op = self._op(zone, "compute.instances.preempted", name)
            op.update(status="DONE", progress=100)
            if action == "DELETE":
                del self.instances[zone, name]
            else:
                inst["status"] = "TERMINATED"

    # --- compute --------------------------------------------------------------------------------

    def _routes(self) -> None:
        r = self.route
        r("POST", COMPUTE + "/zones/{zone}/instances", self._insert)
        r("GET", COMPUTE + "/zones/{zone}/instances", self._list_zone)
        r("GET", COMPUTE + "/zones/{zone}/instances/{name}", self._get)
        r("DELETE", COMPUTE + "/zones/{zone}/instances/{name}", self._delete)
        r("POST", COMPUTE + "/zones/{zone}/instances/{name}/stop", self._stop)
        r("POST", COMPUTE + "/zones/{zone}/instances/{name}/start", self._start)
        r("GET", COMPUTE + "/zones/{zone}/instances/{name}/serialPort", self._serial)
        r("GET", COMPUTE + "/aggregated/instances", self._aggregated)
        r("GET", COMPUTE + "/zones/{zone}/operations", self._list_ops)
        r("GET", COMPUTE + "/zones/{zone}/operations/{op}", self._get_op)
        r("POST", COMPUTE + "/zones/{zone}/operations/{op}/wait", self._wait_op)
        r("POST", TPU + "/{zone}/nodes", self._create_node)
        r("GET", TPU + "/{zone}/nodes", self._list_nodes)
        r("GET", TPU + "/{zone}/nodes/{node}", self._get_node)
        r("DELETE", TPU + "/{zone}/nodes/{node}", self._delete_node)
        r("POST", TPU + "/{zone}/nodes/{action}", self._node_action)
        r("POST", TPU + "/{zone}/queuedResources", self._create_queued)
        r("GET", TPU + "/{zone}/queuedResources/{qr}", self._get_queued)
        r("DELETE", TPU + "/{zone}/queuedResources/{qr}", self._delete_queued)
        r("GET", TPU + "/{zone}/queuedResources", self._list_queued)
        r("GET", TPU + "/{zone}/operations/{op}", self._get_lro)

    def _insert(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        rid = (req.query.get("requestId") or [""])[0]
        with self.lock:
            if rid and rid in self.request_ids:
                return Reply.json(self.request_ids[rid])  # Google deduplicates by requestId
            body = req.json()
            name = body["name"]
            if (zone, name) in self.instances:
                return compute_error(
                    409, "alreadyExists",
                    f"The resource 'projects/{PROJECT}/zones/{zone}/instances/{name}' already exists",
                )
            if zone in self.no_quota:
                return compute_error(
                    403, "quotaExceeded",
                    "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region " + zone[:-2] + ".",
                )
            error = None
            if zone in self.stockout:
                error = ("ZONE_RESOURCE_POOL_EXHAUSTED",
                         f"The zone 'projects/{PROJECT}/zones/{zone}' does not have enough "
                         "resources available to fulfill the request.  Try a different zone, "
                         "or try again later.")
            elif self.late_failure is not None:
                error, self.late_failure = self.late_failure, None

            def create() -> None:
                self._create_instance(zone, body)

            op = self._op(zone, "insert", name, effect=create, error=error)
            if rid:
                self.request_ids[rid] = op
            return Reply.json(op)

    def _create_instance(self, zone: str, body: dict[str, Any]) -> None:
        name = body["name"]
        n = next(self._ids)
        inst = {
            **body, "kind": "compute#instance", "id": str(n), "status": "RUNNING",
            "zone": f"{BASE}/projects/{PROJECT}/zones/{zone}",
            "machineType": f"{BASE}/projects/{PROJECT}/{body['machineType']}",
            "selfLink": f"{BASE}/projects/{PROJECT}/zones/{zone}/instances/{name}",
            "creationTimestamp": _NOW, "lastStartTimestamp": _NOW,
        }
        for i, nic in enumerate(inst.get("networkInterfaces", [])):
            nic["networkIP"] = f"10.128.0.{n % 200 + i}"
            for ac in nic.get("accessConfigs", []):
                ac["natIP"] = f"34.1.{n % 250}.{i + 7}"
        self.instances[zone, name] = inst
        self.serial[zone, name] = self._boot_log(name)
        if self.run_workloads:
            self._run_startup_script(zone, name)

    @staticmethod
    def _boot_log(name: str) -> str:
        return (
            "SeaBIOS (version 1.8.2-google)\r\n"
            "Booting from Hard Disk 0...\n"
            f"[    0.000000] Linux version 6.1.0-28-cloud-amd64\n"
            f"Dec  1 00:00:05 {name} systemd[1]: Starting google-startup-scripts.service\n"
        )

    def _run_startup_script(self, zone: str, name: str) -> None:
        items = self.instances[zone, name].get("metadata", {}).get("items", [])
        script = next((i["value"] for i in items if i["key"] == "startup-script"), None)
        if script is None:
            return
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                              timeout=60, start_new_session=True)
        prefix = f"Dec  1 00:00:06 {name} google_metadata_script_runner[812]: startup-script: "
        out = "".join(prefix + line + "\n" for line in (done.stdout + done.stderr).splitlines())
        self.serial[zone, name] += out + (
            f"Dec  1 00:00:09 {name} google_metadata_script_runner[812]: "
            f"startup-script exit status {done.returncode}\n"
            f"Dec  1 00:00:09 {name} google_metadata_script_runner[812]: "
            "Finished running startup scripts.\n"
        )

    def _settle(self, zone: str, name: str) -> None:
        """Time passes between two requests: operations nobody waits for finish."""
        target = f"/zones/{zone}/instances/{name}"
        for (z, op_name), entry in list(self.operations.items()):
            if z == zone and entry["op"]["targetLink"].endswith(target):
                self._finish(zone, op_name)

    def _get(self, req: Request) -> Reply:
        key = (req.path_params["zone"], req.path_params["name"])
        with self.lock:
            self._settle(*key)
            inst = self.instances.get(key)
            if inst is None:
                return compute_error(
                    404, "notFound",
                    f"The resource 'projects/{PROJECT}/zones/{key[0]}/instances/{key[1]}' was not found",
                )
            return Reply.json(inst)

    def _list_zone(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        with self.lock:
            items = [i for (z, _), i in self.instances.items() if z == zone]
        return Reply.json({"kind": "compute#instanceList", "items": items})

    _LABEL = re.compile(r'labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?')

    def _aggregated(self, req: Request) -> Reply:
        flt = (req.query.get("filter") or [""])[0]
        wanted = dict(self._LABEL.findall(flt))
        with self.lock:
            rows = [
                (z, i) for (z, _), i in sorted(self.instances.items())
                if all(i.get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
        start = int((req.query.get("pageToken") or ["0"])[0])
        page = rows[start : start + self.page_size]
        items: dict[str, Any] = {
            "zones/us-west1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}}
        }
        for zone, inst in page:
            items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(inst)
        answer: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "items": items}
        if start + self.page_size < len(rows):
            answer["nextPageToken"] = str(start + self.page_size)
        return Reply.json(answer)

    def _delete(self, req: Request) -> Reply:
        zone, name = req.path_params["zone"], req.path_params["name"]
        rid = (req.query.get("requestId") or [""])[0]
        with self.lock:
            if rid and rid in self.request_ids:
                return Reply.json(self.request_ids[rid])
            if (zone, name) not in self.instances:
                return self._get(req)
            self.instances[zone, name]["status"] = "STOPPING"

            def gone() -> None:
                self.instances.pop((zone, name), None)

            op = self._op(zone, "delete", name, effect=gone)
            if rid:
                self.request_ids[rid] = op
            return Reply.json(op)

    def _power(self, req: Request, action: str) -> Reply:
        zone, name = req.path_params["zone"], req.path_params["name"]
        with self.lock:
            inst = self.instances.get((zone, name))
            if inst is None:
                return self._get(req)
            final = "TERMINATED" if action == "stop" else "RUNNING"

            def effect() -> None:
                inst["status"] = final
                if action == "start" and self.run_workloads:
                    self._run_startup_script(zone, name)

            inst["status"] = "STOPPING" if action == "stop" else "STAGING"
            return Reply.json(self._op(zone, action, name, effect=effect))

    def _stop(self, req: Request) -> Reply:
        return self._power(req, "stop")

    def _start(self, req: Request) -> Reply:
        return self._power(req, "start")

    def _serial(self, req: Request) -> Reply:
        key = (req.path_params["zone"], req.path_params["name"])
        with self.lock:
            if key not in self.instances:
                return self._get(req)
            data = self.serial.get(key, "").encode()
        start = int((req.query.get("start") or ["0"])[0])
        chunk = data[start : start + self.serial_page]
        return Reply.json({
            "kind": "compute#serialPortOutput", "contents": chunk.decode(errors="replace"),
            "start": str(start), "next": str(start + len(chunk)),
            "selfLink": f"{BASE}/projects/{PROJECT}/zones/{key[0]}/instances/{key[1]}/serialPort",
        })

    def _list_ops(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        with self.lock:
            items = [e["op"] for (z, _), e in self.operations.items() if z == zone]
        return Reply.json({"kind": "compute#operationList", "items": items})

    def _get_op(self, req: Request) -> Reply:
        zone, name = req.path_params["zone"], req.path_params["op"]
        with self.lock:
            entry = self.operations.get((zone, name))
            if entry is None:
                return compute_error(404, "notFound", f"operation {name} was not found")
            # Polled once: it is done at the next look.
            op = entry["op"]
            if op["status"] == "RUNNING" and entry.get("seen"):
                op = self._finish(zone, name) or op
            entry["seen"] = True
            return Reply.json(op)

    def _wait_op(self, req: Request) -> Reply:
        op = self._finish(req.path_params["zone"], req.path_params["op"])
        if op is None:
            return compute_error(404, "notFound", "operation was not found")
        return Reply.json(op)

    # --- TPU ------------------------------------------------------------------------------------

    def _lro(self, zone: str, *, response: Any = None, error: tuple[int, str] | None = None,
             effect: Any = None) -> dict[str, Any]:
        n = next(self._ids)
        name = f"projects/{PROJECT}/locations/{zone}/operations/operation-{n}"
        self.lros[name] = {"response": response, "error": error, "effect": effect}
        return {
            "name": name, "done": False,
            "metadata": {"@type": "type.googleapis.com/google.cloud.tpu.v2.OperationMetadata",
                         "createTime": "2026-12-01T08:00:00Z", "verb": "create"},
        }

    def _get_lro(self, req: Request) -> Reply:
        name = f"projects/{PROJECT}/locations/{req.path_params['zone']}/operations/{req.path_params['op']}"
        with self.lock:
            entry = self.lros.get(name)
            if entry is None:
                return rpc_error(404, "NOT_FOUND", f"operation {name} not found")
            if entry.get("effect") is not None:
                entry["effect"]()
                entry["effect"] = None
            answer: dict[str, Any] = {"name": name, "done": True}
            if entry["error"] is not None:
                answer["error"] = {"code": entry["error"][0], "message": entry["error"][1]}
            else:
                response = entry["response"]() if callable(entry["response"]) else entry["response"]
                answer["response"] = response or {"@type": "type.googleapis.com/google.protobuf.Empty"}
            return Reply.json(answer)

    @staticmethod
    def _hosts(accelerator_type: str) -> int:
        gen, size = re.fullmatch(r"(v\w+?)-(\d+)", accelerator_type).groups()  # type: ignore[union-attr]
        chips = int(size) if gen in ("v5litepod", "v6e") else int(size) // 2
        return 1 if gen in ("v5litepod", "v6e") and chips <= 8 else max(1, chips // 4)

    def _new_node(self, zone: str, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        hosts = self._hosts(body["acceleratorType"])
        node = {
            **body, "name": f"projects/{PROJECT}/locations/{zone}/nodes/{node_id}",
            "state": "READY", "id": str(n), "createTime": "2026-12-01T08:00:00Z",
            "health": "HEALTHY", "apiVersion": "V2",
            "networkEndpoints": [
                {"ipAddress": f"10.130.0.{10 + h}", "port": 8470,
                 "accessConfig": {"externalIp": f"35.2.{n % 250}.{10 + h}"}}
                for h in range(hosts)
            ],
        }
        self.nodes[zone, node_id] = node
        return node

    def _create_node(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        node_id = req.query["nodeId"][0]
        with self.lock:
            if (zone, node_id) in self.nodes:
                return rpc_error(409, "ALREADY_EXISTS", f"node {node_id} already exists")
            body = req.json()
            if zone in self.stockout:
                return Reply.json(self._lro(zone, error=(
                    8, f"There is no more capacity in the zone \"{zone}\"; you can try in "
                    "another zone where Cloud TPU Nodes are offered")))
            created: dict[str, Any] = {}

            def effect() -> None:
                created.update(self._new_node(zone, node_id, body))

            def response() -> dict[str, Any]:
                return {"@type": "type.googleapis.com/google.cloud.tpu.v2.Node", **created}

            return Reply.json(self._lro(zone, response=response, effect=effect))

    def _settle_lros(self) -> None:
        """Time passes between two requests: operations nobody polls finish too."""
        for entry in self.lros.values():
            if entry.get("effect") is not None:
                entry["effect"]()
                entry["effect"] = None

    def _get_node(self, req: Request) -> Reply:
        zone, node_id = req.path_params["zone"], req.path_params["node"]
        with self.lock:
            self._settle_lros()
            node = self.nodes.get((zone, node_id))
        if node is None:
            return rpc_error(404, "NOT_FOUND", f"node {node_id} not found")
        return Reply.json(node)

    def _list_nodes(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        with self.lock:
            nodes = [n for (z, _), n in self.nodes.items() if zone in ("-", z)]
        return Reply.json({"nodes": nodes})

    def _delete_node(self, req: Request) -> Reply:
        zone, node_id = req.path_params["zone"], req.path_params["node"]
        with self.lock:
            node = self.nodes.get((zone, node_id))
            if node is None:
                return rpc_error(404, "NOT_FOUND", f"node {node_id} not found")
            node["state"] = "DELETING"
            return Reply.json(self._lro(zone, effect=lambda: self.nodes.pop((zone, node_id), None)))

    def _node_action(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        node_id, _, action = req.path_params["action"].partition(":")
        with self.lock:
            node = self.nodes.get((zone, node_id))
            if node is None:
                return rpc_error(404, "NOT_FOUND", f"node {node_id} not found")
            if action == "getGuestAttributes":
                query = req.json().get("queryPath", "")
                found = [
                    {"queryPath": query, "queryValue": {"items": items}}
                    for items in self.guest_attributes.get((zone, node_id), [])
                ]
                return Reply.json({"queryValue": {}, "guestAttributes": found})
            if action not in ("stop", "start"):
                return rpc_error(400, "INVALID_ARGUMENT", f"unknown action {action}")
            final = "STOPPED" if action == "stop" else "READY"
            node["state"] = "STOPPING" if action == "stop" else "STARTING"

            def effect() -> None:
                node["state"] = final

            return Reply.json(self._lro(
                zone, effect=effect,
                response=lambda: {"@type": "type.googleapis.com/google.cloud.tpu.v2.Node", **node},
            ))

    def write_guest_attribute(self, zone: str, node_id: str, key: str, values: list[str]) -> None:
        """What each host of a slice's startup script writes (one value per host)."""
        self.guest_attributes[zone, node_id] = [
            [{"namespace": "runctl", "key": key, "value": v}] for v in values
        ]

    def _create_queued(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        qr_id = req.query["queuedResourceId"][0]
        with self.lock:
            if (zone, qr_id) in self.queued:
                return rpc_error(409, "ALREADY_EXISTS", f"queued resource {qr_id} already exists")
            body = req.json()
            qr = {**body, "name": f"projects/{PROJECT}/locations/{zone}/queuedResources/{qr_id}",
                  "createTime": "2026-12-01T08:00:00Z", "state": {"state": "ACCEPTED"}}
            self.queued[zone, qr_id] = qr
            return Reply.json(self._lro(
                zone, response=lambda: {"@type": "type.googleapis.com/google.cloud.tpu.v2.QueuedResource", **qr},
            ))

    def provision_queued(self, zone: str, qr_id: str) -> None:
        """Google finds the capacity: the queued resource becomes ACTIVE with its node."""
        with self.lock:
            qr = self.queued[zone, qr_id]
            spec = qr["tpu"]["nodeSpec"][0]
            node = self._new_node(zone, spec["nodeId"], dict(spec["node"]))
            if "spot" in qr:
                node["schedulingConfig"] = {"spot": True}
            qr["state"] = {"state": "ACTIVE", "activeData": {}}

    def _get_queued(self, req: Request) -> Reply:
        zone, qr_id = req.path_params["zone"], req.path_params["qr"]
        with self.lock:
            self._settle_lros()
            qr = self.queued.get((zone, qr_id))
        if qr is None:
            return rpc_error(404, "NOT_FOUND", f"queued resource {qr_id} not found")
        return Reply.json(qr)

    def _list_queued(self, req: Request) -> Reply:
        zone = req.path_params["zone"]
        with self.lock:
            self._settle_lros()
            found = [q for (z, _), q in self.queued.items() if zone in ("-", z)]
        return Reply.json({"queuedResources": found})

    def _delete_queued(self, req: Request) -> Reply:
        zone, qr_id = req.path_params["zone"], req.path_params["qr"]
        with self.lock:
            qr = self.queued.get((zone, qr_id))
            if qr is None:
                return rpc_error(404, "NOT_FOUND", f"queued resource {qr_id} not found")
            force = (req.query.get("force") or ["false"])[0] == "true"
            node_id = qr["tpu"]["nodeSpec"][0]["nodeId"]
            if (zone, node_id) in self.nodes and not force:
                return rpc_error(400, "FAILED_PRECONDITION", "delete its nodes first, or force")
            qr["state"] = {"state": "DELETING"}

            def effect() -> None:
                self.queued.pop((zone, qr_id), None)
                self.nodes.pop((zone, node_id), None)

            return Reply.json(self._lro(zone, effect=effect))

    # --- what was asked -------------------------------------------------------------------------

    def inserts(self) -> list[Request]:
        return [r for r in self.server.requests
                if r.method == "POST" and re.fullmatch(COMPUTE + r"/zones/[^/]+/instances", r.path)]

    def body_of(self, request: Request) -> dict[str, Any]:
        return json.loads(request.body)
