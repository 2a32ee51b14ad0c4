"""What the built-in providers' backend drivers share (see runctl.testing.BackendDriver)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fake_http import FakeHttpServer, Fault

__all__ = ["HttpFaults", "documented_enum"]


def documented_enum(spec: Path, schema: str, *path: str) -> Sequence[str]:
    """The enum of ``schema`` (then down ``path``) in a published OpenAPI document.

    The documented states come from the provider's published spec, not from the
    provider's own table, so that a state the table forgot is caught.
    """
    text = spec.read_text()
    if spec.suffix in (".yaml", ".yml"):
        import yaml

        document: Any = yaml.safe_load(text)
    else:
        document = json.loads(text)
    node = document["components"]["schemas"][schema]
    for key in path:
        node = node[key]
    return tuple(node["enum"])


class HttpFaults:
    """``fail_next_request`` for a driver over a :class:`FakeHttpServer`: a dropped
    connection, then a 503, in turn."""

    server: FakeHttpServer
    _failures = 0

    async def fail_next_request(self) -> None:
        self._failures += 1
        self.server.fail_next(Fault.reset() if self._failures % 2 else Fault.http(503))
