"""A Kubernetes API for the tests: kmock's in-memory emulator, served over real HTTP.

kmock runs in its own thread with its own event loop (``KMockLoop``, one per test
session); each test gets a fresh emulator and server on it (``FakeCluster``), so
no state leaks between tests. The official client talks to it like to any API
server: through a kubeconfig file the tests write.

What kmock does not do, and how the tests deal with it (see the recipes):

- label and field selectors are ignored: the tests assert the selector runctl
  sends (``requests``), and runctl filters what it gets back itself;
- there is no scheduler, kubelet or Job controller: ``run_pods`` plays the Job
  controller (pods with the template's labels, the completion index) and the
  tests drive pod phases by writing their status;
- foreground deletion removes the Job at once and leaves its pods (no GC);
- no uid, resourceVersion or timestamps are filled in; pod logs are served by a
  ``text/plain`` reaction (``set_log``).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

T = TypeVar("T")

PODS = kmock.resource("v1/pods")
JOBS = kmock.resource("batch/v1/jobs")
NODES = kmock.resource("v1/nodes")
SERVICES = kmock.resource("v1/services")
#: The token in the tests' kubeconfig: never to appear in anything runctl shows.
TOKEN = "kmock-test-token-0123456789"


class KMockLoop:
    """An event loop in a daemon thread, where the kmock servers live."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> KMockLoop:
        self._thread.start()
        assert self._ready.wait(20), "the kmock loop did not start"
        return self

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the loop (kmock's state is only touched there)."""

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def run_async(self, fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class FakeCluster:
    """One fresh emulated API server, and what a test needs to play the cluster."""

    def __init__(self, loop: KMockLoop) -> None:
        self._loop = loop

        async def up() -> tuple[Any, Any]:
            km = kmock.KubernetesEmulator()
            await km.__aenter__()
            server = kmock.Server(km)
            await server.__aenter__()
            km.resources.load_bundled()
            return km, server

        self.km, self._server = loop.run_async(up)
        self.url = str(self._server.url).rstrip("/")
        self._logs: dict[tuple[str, str], tuple[str, bool]] = {}

    def close(self) -> None:
        async def down() -> None:
            await self._server.__aexit__(None, None, None)
            await self.km.__aexit__(None, None, None)

        self._loop.run_async(down)

    # --- access ---------------------------------------------------------------------------------

    def kubeconfig(self, path: Path, *, namespace: str | None = "team") -> Path:
        """A kubeconfig pointing at this server, with a bearer token, as kubectl writes them."""
        context: dict[str, Any] = {"cluster": "kmock", "user": "tester"}
        if namespace:
            context["namespace"] = namespace
        data = {
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [
                {"name": "kmock", "context": context},
                {"name": "other", "context": {"cluster": "kmock", "user": "tester",
                                              "namespace": "elsewhere"}},
            ],
        }
        path.write_text(yaml.safe_dump(data))
        return path

    # --- state ----------------------------------------------------------------------------------

    def _objects(self, resource: Any, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            found = {}
            for (res, ns, name), obj in list(self.km.objects.items()):
                if res == resource and (namespace is None or ns == namespace) and not obj.deleted:
                    found[name] = copy.deepcopy(obj.raw)
            return found

        return self._loop.run(read)

    def jobs(self, namespace: str = "team") -> dict[str, dict[str, Any]]:
        return self._objects(JOBS, namespace)

    def pods(self, namespace: str = "team") -> dict[str, dict[str, Any]]:
        return self._objects(PODS, namespace)

    def services(self, namespace: str = "team") -> dict[str, dict[str, Any]]:
        return self._objects(SERVICES, namespace)

    def _put(self, resource: Any, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        def write() -> None:
            self.km.objects[(resource, namespace, name)] = body

        self._loop.run(write)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Any]:
        """Requests the server got (``method`` like ``"POST"``; ``path`` a part of the URL path)."""

        def read() -> list[Any]:
            found = []
            for r in self.km:
                if method and str(r.method.value if hasattr(r.method, "value") else r.method) != method:
                    continue
                if path and path not in str(r.url).split("?")[0]:
                    continue
                found.append(r)
            return found

        return self._loop.run(read)

    def posted(self, kind: str) -> list[dict[str, Any]]:
        """The bodies of every create request for ``kind`` (``"jobs"``, ``"services"``)."""
        return [r.data for r in self.requests("POST", f"/{kind}")]

    # --- playing the cluster --------------------------------------------------------------------

    def add_node(
        self, name: str, labels: Mapping[str, str], *, gpus: int = 8, cpu: str = "128",
        memory: str = "2113248084Ki", unschedulable: bool = False,
    ) -> None:
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable)},
        }
        self._put(NODES, None, name, body)

    def run_pods(
        self, job: str, *, namespace: str = "team", phase: str = "Pending",
        ranks: Iterable[int] | None = None, node: str | None = "node-1", suffix: str = "abcde",
    ) -> list[str]:
        """Do what the Job controller does: create the Job's pods from its template.

        Returns the pods' names (``<job>-<rank>-<suffix>`` as the controller names them).
        """
        spec = self.jobs(namespace)[job]["spec"]
        template = spec["template"]
        count = spec.get("completions") or 1
        indexed = spec.get("completionMode") == "Indexed"
        names = []
        for rank in (range(count) if ranks is None else ranks):
            name = f"{job}-{rank}-{suffix}" if indexed else f"{job}-{suffix}"
            labels = {**template["metadata"].get("labels", {}), "job-name": job,
                      "batch.kubernetes.io/job-name": job}
            annotations = dict(template["metadata"].get("annotations", {}))
            pod_spec = copy.deepcopy(template["spec"])
            if indexed:
                labels["batch.kubernetes.io/job-completion-index"] = str(rank)
                annotations["batch.kubernetes.io/job-completion-index"] = str(rank)
                pod_spec["hostname"] = f"{job}-{rank}"
            if node and phase != "Pending":
                pod_spec["nodeName"] = node
            body = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels,
                             "annotations": annotations},
                "spec": pod_spec,
                "status": {"phase": phase},
            }
            self._put(PODS, namespace, name, body)
            names.append(name)
        return names

    def set_pod_status(self, name: str, status: dict[str, Any], namespace: str = "team") -> None:
        pod = self.pods(namespace)[name]
        pod["status"] = status
        if status.get("phase") in ("Running", "Succeeded", "Failed"):
            pod["spec"].setdefault("nodeName", "node-1")
        self._put(PODS, namespace, name, pod)

    def set_job_status(self, name: str, status: dict[str, Any], namespace: str = "team") -> None:
        job = self.jobs(namespace)[name]
        job["status"] = status
        self._put(JOBS, namespace, name, job)

    def set_log(self, pod: str, text: str, namespace: str = "team", *, stamp: bool = False) -> None:
        """Serve ``text`` as the pod's log.

        With ``stamp``, lines get an RFC 3339 timestamp when the request asks for
        ``timestamps=true``, as the API server does; otherwise ``text`` is served as is.
        """
        url = f"get /api/v1/namespaces/{namespace}/pods/{pod}/log"
        key = (namespace, pod)
        first = key not in self._logs
        self._logs[key] = (text, stamp)

        def render(request: Any) -> bytes:
            body, stamped = self._logs[key]
            if stamped and request.params.get("timestamps") == "true":
                body = "".join(
                    f"2026-12-01T10:00:{i // 1000:02d}.{i % 1000:03d}Z {line}\n"
                    for i, line in enumerate(body.splitlines())
                )
            return body.encode()

        def react() -> None:
            # One reaction per pod, reading the current text: a later set_log replaces it.
            self.km[url] << {"Content-Type": "text/plain"} << render

        if first:
            self._loop.run(react)


# --- pod status shapes --------------------------------------------------------------------------


def running(started: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {
        "phase": "Running", "podIP": "10.0.0.7",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0,
                               "state": {"running": {"startedAt": started}}}],
    }


def terminated(code: int, *, reason: str | None = None) -> dict[str, Any]:
    state = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
             "startedAt": "2026-12-01T10:00:00Z", "finishedAt": "2026-12-01T10:05:00Z"}
    return {
        "phase": "Succeeded" if code == 0 else "Failed",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0,
                               "state": {"terminated": state}}],
    }


def unschedulable(message: str) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message}],
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0,
                               "state": {"waiting": {"reason": reason, "message": message}}}],
    }


def job_condition(kind: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    condition = {"type": kind, "status": "True", "lastTransitionTime": "2026-12-01T10:05:00Z"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return {"conditions": [condition], "startTime": "2026-12-01T10:00:00Z"}


class FakeKubelet:
    """The Job controller and kubelet together, for end-to-end runs: runs pods' commands here.

    Every ``interval`` seconds it looks for Jobs without pods, creates their pods,
    runs each pod's container command as a local process (its environment resolved
    as the kubelet would, ``fieldRef`` annotations included), serves the output as
    the pod's log and writes the pods' and the Job's final status.
    """

    def __init__(self, cluster: FakeCluster, namespace: str = "team", interval: float = 0.02):
        self.cluster = cluster
        self.namespace = namespace
        self.interval = interval
        self.envs: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        done: set[str] = set()
        while not self._stop.wait(self.interval):
            for name, job in self.cluster.jobs(self.namespace).items():
                if name in done:
                    continue
                done.add(name)
                self._run_job(name, job)

    def _run_job(self, name: str, job: dict[str, Any]) -> None:
        import os
        import subprocess

        pods = self.cluster.run_pods(name, namespace=self.namespace, phase="Running")
        codes = []
        for pod_name in pods:
            pod = self.cluster.pods(self.namespace)[pod_name]
            # A running container has a log (empty so far) before it has a line.
            self.cluster.set_log(pod_name, "", namespace=self.namespace, stamp=True)
            self.cluster.set_pod_status(pod_name, running(), namespace=self.namespace)
            (container,) = pod["spec"]["containers"]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = item["value"]
                else:
                    path = item["valueFrom"]["fieldRef"]["fieldPath"]
                    key = path.split("['", 1)[1].rstrip("']")
                    env[item["name"]] = pod["metadata"]["annotations"][key]
            self.envs[pod_name] = env
            done = subprocess.run(
                container["command"], env=env, capture_output=True, text=True, timeout=30,
                cwd=container.get("workingDir"),
            )
            self.cluster.set_log(pod_name, done.stdout + done.stderr, namespace=self.namespace,
                                 stamp=True)
            self.cluster.set_pod_status(pod_name, terminated(done.returncode),
                                        namespace=self.namespace)
            codes.append(done.returncode)
        if all(code == 0 for code in codes):
            status = job_condition("Complete")
        else:
            status = job_condition("Failed", "BackoffLimitExceeded")
        status["completionTime"] = "2026-12-01T10:05:00Z"
        self.cluster.set_job_status(name, status, namespace=self.namespace)
