"""Every manifest runctl sends, checked against the Kubernetes schemas and API rules.

Two layers: the official client's models (generated from the Kubernetes OpenAPI
schema; unknown fields and wrong types are refused), then the rules the API
server applies that the schema does not carry: object and label names,
enumerations, quantities, environment variable names.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
QUANTITY = re.compile(r"(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def _strict(model: type, body: dict[str, Any]) -> None:
    """The client's model of ``body``, refusing unknown fields at every level."""
    parsed = model.from_dict(body)
    assert parsed is not None
    # from_dict drops nothing silently only if a round trip gives the body back.
    back = client.ApiClient().sanitize_for_serialization(parsed)
    assert _prune(back) == _prune(body), f"fields lost in the schema round trip: {body}"


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _labels(where: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        prefix, sep, name = key.rpartition("/")
        assert not sep or (len(prefix) <= 253 and DNS_SUBDOMAIN.fullmatch(prefix)), (where, key)
        assert LABEL_NAME.fullmatch(name), (where, key)
        assert value == "" or LABEL_NAME.fullmatch(value), (where, key, value)
        assert isinstance(value, str)


def _annotations(where: str, annotations: dict[str, str]) -> None:
    for key, value in annotations.items():
        prefix, sep, name = key.rpartition("/")
        assert not sep or DNS_SUBDOMAIN.fullmatch(prefix), (where, key)
        assert LABEL_NAME.fullmatch(name), (where, key)
        assert isinstance(value, str)
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 256 * 1024


def _meta(where: str, meta: dict[str, Any], *, name_is_label: bool = True) -> None:
    name = meta.get("name", "")
    pattern = DNS_LABEL if name_is_label else DNS_SUBDOMAIN
    assert pattern.fullmatch(name) and len(name) <= 63, (where, name)
    _labels(where, meta.get("labels", {}))
    _annotations(where, meta.get("annotations", {}))


def check_pod_spec(where: str, spec: dict[str, Any]) -> None:
    assert spec.get("restartPolicy") in ("Never", "OnFailure"), spec.get("restartPolicy")
    if "subdomain" in spec:
        assert DNS_LABEL.fullmatch(spec["subdomain"])
    for key, value in spec.get("nodeSelector", {}).items():
        _labels(f"{where}.nodeSelector", {key: value})
    for t in spec.get("tolerations", []):
        assert t.get("operator") in ("Exists", "Equal"), t
        assert t.get("effect") in (None, "NoSchedule", "PreferNoSchedule", "NoExecute"), t
        assert t.get("operator") != "Exists" or "value" not in t, t
    affinity = spec.get("affinity", {}).get("nodeAffinity", {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {})
    for term in required.get("nodeSelectorTerms", []):
        for expr in term.get("matchExpressions", []):
            assert expr["operator"] in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
            assert expr["values"], expr
            for value in expr["values"]:
                _labels("affinity", {expr["key"]: value})
    for container in spec["containers"]:
        assert DNS_LABEL.fullmatch(container["name"])
        assert container.get("image")
        assert container.get("command"), "the command must be the container's command"
        names = [e["name"] for e in container.get("env", [])]
        assert len(names) == len(set(names)), f"duplicate env names {names}"
        for env in container.get("env", []):
            assert ENV_NAME.fullmatch(env["name"]), env
            assert ("value" in env) != ("valueFrom" in env), env
        resources = container.get("resources", {})
        for part in ("limits", "requests"):
            for res, amount in resources.get(part, {}).items():
                assert isinstance(amount, str) and QUANTITY.fullmatch(amount), (res, amount)
        # Extended resources (GPUs, RDMA) cannot be overcommitted: requests equal limits.
        for res, amount in resources.get("requests", {}).items():
            if "/" in res:
                assert resources.get("limits", {}).get(res) == amount, res


def check_job(body: dict[str, Any]) -> client.V1Job:
    """Check one Job manifest; returns the client's model of it."""
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    _strict(client.V1Job, body)
    _meta("Job.metadata", body["metadata"])
    spec = body["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec.get("completionMode", "NonIndexed") in ("NonIndexed", "Indexed")
    if spec.get("completionMode") == "Indexed":
        assert spec["completions"] == spec["parallelism"] >= 1
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if key in spec:
            assert isinstance(spec[key], int) and spec[key] >= 0
    _labels("Job.spec.template.metadata", spec["template"]["metadata"].get("labels", {}))
    _annotations("Job.spec.template", spec["template"]["metadata"].get("annotations", {}))
    check_pod_spec("Job.spec.template.spec", spec["template"]["spec"])
    return client.V1Job.from_dict(body)


def check_service(body: dict[str, Any]) -> client.V1Service:
    """Check one Service manifest (the headless Service of a multi-node Job)."""
    assert body["apiVersion"] == "v1" and body["kind"] == "Service"
    _strict(client.V1Service, body)
    _meta("Service.metadata", body["metadata"])
    spec = body["spec"]
    assert spec["clusterIP"] == "None"
    _labels("Service.spec.selector", spec["selector"])
    for port in spec.get("ports", []):
        assert 1 <= port["port"] <= 65535
        assert DNS_LABEL.fullmatch(port["name"]) and len(port["name"]) <= 15
    return client.V1Service.from_dict(body)
