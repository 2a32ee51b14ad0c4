"""The Paperspace v1 requests runctl sends, as verified, and a checker for them.

No OpenAPI file for Paperspace is stored in this repository (see
``tests/support/specs/README.md``: the live spec is served at
https://api.paperspace.com/v1/openapi.json). The shapes below were verified
against:

* ``Paperspace/cli`` ``api/openapi.ts`` at commit
  c7bdd424d1eaa559778948ccea6391057f5982c1 (2026-02-08): TypeScript types generated
  from that OpenAPI document by ``.scripts/generate-api.ts``. Operation ids are
  given per shape; field names, required fields and enums come from there.
* ``Paperspace/cli`` ``api/client.ts`` (same commit): ``Authorization: Bearer <key>``,
  JSON bodies, and ``{}`` as the body of the RPC-style PATCH calls (start/stop).
* DigitalOcean's Paperspace docs, "pspace machine create" / "startup-script create"
  (docs.digitalocean.com/reference/paperspace/pspace/commands/...): the same fields.

Responses: machines-get answers with the machine object; machines-create / -start /
-stop / -delete answer ``{"data": machine, "event": {...}}``; list calls answer
``{"items": [...], "hasMore": bool, "nextPage": str | null}``; errors answer
``{"code": str, "message": str, "details"?: {}}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs


@attrs.frozen
class Shape:
    operation: str
    method: str
    path: str  # with {id} placeholders
    query: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    enums: dict[str, frozenset[Any]] = attrs.field(factory=dict)
    body: bool = False


_PAGING = frozenset({"after", "limit", "orderBy", "order"})

SHAPES: tuple[Shape, ...] = (
    Shape("machines-list", "GET", "/machines",
          query=_PAGING | {"name", "region", "agentType", "machineType"}),
    Shape("machines-create", "POST", "/machines", body=True,
          required=frozenset({"diskSize", "machineType", "name", "region", "templateId"}),
          optional=frozenset({"accessorIds", "autoShutdownEnabled", "autoShutdownForce",
                              "autoShutdownTimeout", "autoSnapshotEnabled",
                              "autoSnapshotFrequency", "autoSnapshotSaveCount", "emailPassword",
                              "enableNvlink", "networkId", "publicIpType", "restorePointEnabled",
                              "restorePointFrequency", "startOnCreate", "startupScriptId",
                              "takeInitialSnapshot"}),
          enums={"publicIpType": frozenset({"static", "dynamic", "none"})}),
    Shape("machines-get", "GET", "/machines/{id}"),
    Shape("machines-delete", "DELETE", "/machines/{id}"),
    Shape("machines-start", "PATCH", "/machines/{id}/start", body=True),
    Shape("machines-stop", "PATCH", "/machines/{id}/stop", body=True),
    Shape("osTemplates-list", "GET", "/os-templates", query=_PAGING | {"name"}),
    Shape("startupScripts-list", "GET", "/startup-scripts", query=_PAGING | {"name"}),
    Shape("startupScripts-create", "POST", "/startup-scripts", body=True,
          required=frozenset({"name", "script"}), optional=frozenset({"isRunOnce"})),
    Shape("startupScripts-delete", "DELETE", "/startup-scripts/{id}"),
)


def check_request(method: str, path: str, query: dict[str, Any], body: bytes | None) -> str:
    """Assert the request is one of :data:`SHAPES`; return its operation id.

    ``path`` is below the API root (``/machines``, not ``/v1/machines``).
    """
    for shape in SHAPES:
        pattern = "^" + re.sub(r"\{\w+\}", "[^/]+", shape.path) + "$"
        if shape.method != method or not re.match(pattern, path):
            continue
        unknown = set(query) - shape.query
        assert not unknown, f"{method} {path}: undocumented query parameters {unknown}"
        data = json.loads(body) if body else None
        if not shape.body:
            assert data is None, f"{method} {path}: sends a body it should not"
            return shape.operation
        assert isinstance(data, dict), f"{method} {path}: body must be a JSON object"
        missing = shape.required - set(data)
        assert not missing, f"{method} {path}: missing required {missing}"
        extra = set(data) - shape.required - shape.optional
        assert not extra, f"{method} {path}: undocumented fields {extra}"
        for key, allowed in shape.enums.items():
            if key in data:
                assert data[key] in allowed, f"{method} {path}: {key}={data[key]!r} not in {allowed}"
        return shape.operation
    raise AssertionError(f"{method} {path}: not an operation runctl verified")
