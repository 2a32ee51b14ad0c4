"""Check the requests runctl sends against a provider's published OpenAPI spec.

Provider tests collect every request a provider module sends (through
:class:`RecordingTransport`, or the requests a ``FakeHttpServer`` received) and
assert each one is something the provider documents: a known path and method,
the parameters it declares, and a JSON body that satisfies the request schema::

    transport = RecordingTransport(inner)          # or httpx.MockTransport, or None (real network)
    provider = RunPodProvider(config, transport=transport)
    ...
    assert_requests_match(SPECS / "runpod-rest-v2-openapi.json", transport.requests)

Specs live in ``tests/support/specs/`` (see the README there for provenance),
so tests never read anything outside the repository.

Host names do not matter: the request's scheme and host are replaced by those
of the spec's first ``servers`` entry before matching, so a request sent to a
loopback fake server is checked exactly like one sent to the real API. The
request's *path* must still include the server's base path (for Lambda,
``/api/v1/...``).

Security requirements are not checked by default: cassettes and fake servers
scrub or never see real credentials. Pass ``check_security=True`` to check them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from .fake_http import Request as ServerRequest

__all__ = [
    "SPECS",
    "RecordingTransport",
    "assert_requests_match",
    "assert_server_requests_match",
    "validate_request",
]

#: Where the vendored specs live.
SPECS = Path(__file__).parent / "specs"


@cache
def _load(spec_path: str) -> tuple[OpenAPI, str | None]:
    path = Path(spec_path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    servers = data.get("servers") or []
    server = servers[0].get("url") if servers else None
    origin = None
    if server and "://" in server:
        parts = urlsplit(server)
        origin = f"{parts.scheme}://{parts.netloc}"
    if path.name in _INVALID_BUT_USED:
        # Skip checking the document itself; requests are still checked against its schemas.
        from openapi_core import Config

        return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None)), origin
    return OpenAPI.from_dict(data), origin


#: Specs that are not valid OpenAPI 3.0 documents but are what the server serves, so
#: requests are checked against them as they are. slurmrestd's: 22.05's v0.0.38 puts a
#: schema name ("dbv0.0.38_tres_update") among the methods of a path; v0.0.41 and later
#: write ``"required": []`` (3.0 wants at least one name).
_INVALID_BUT_USED = frozenset(
    {"slurmrestd-openapi-v0.0.38-slurm-22.05.json"}
    | {f"slurmrestd-openapi-v0.0.{n}.json" for n in range(40, 46)}
)


class _SpecRequest:
    """The request as openapi-core wants it (its ``Request`` protocol)."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        origin: str | None,
    ) -> None:
        parts = urlsplit(url)
        self.method = method.lower()
        self.host_url = origin or f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.body = body or None
        self.content_type = headers.get("content-type") or "application/json"
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(parts.query, keep_blank_values=True)),
            header=Headers(dict(headers)),
            cookie=ImmutableMultiDict(),
        )


def _describe(error: BaseException) -> list[str]:
    """Every useful line in an openapi-core error chain (schema errors with their paths)."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines.append(f"{type(current).__name__}: {current}")
        for schema_error in getattr(current, "schema_errors", ()) or ():
            where = "/".join(str(p) for p in getattr(schema_error, "absolute_path", ())) or "<body>"
            lines.append(f"  at {where}: {getattr(schema_error, 'message', schema_error)}")
        current = current.__cause__ or current.__context__
    return lines


def validate_request(
    spec_path: str | Path,
    request: httpx.Request | None = None,
    *,
    method: str | None = None,
    url: str | None = None,
    body: bytes | str | Any = None,
    headers: Mapping[str, str] | None = None,
    check_security: bool = False,
) -> None:
    """Assert that one request is one the spec documents.

    Give either an ``httpx.Request`` or ``method`` and ``url`` (with the query
    string), plus ``body`` (bytes, str, or a JSON-serialisable object) and
    ``headers``.

    Raises:
        AssertionError: the path, method, parameters or body do not match the spec;
            the message names the request and every schema problem found.
    """
    if request is not None:
        method = request.method
        url = str(request.url)
        raw_body: bytes | None = request.content
        header_map = {k.lower(): v for k, v in request.headers.items()}
    else:
        if method is None or url is None:
            raise TypeError("validate_request needs an httpx.Request, or method and url")
        if body is None or isinstance(body, bytes):
            raw_body = body
        elif isinstance(body, str):
            raw_body = body.encode()
        else:
            raw_body = json.dumps(body).encode()
        header_map = {k.lower(): v for k, v in (headers or {}).items()}
        if raw_body and "content-type" not in header_map:
            header_map["content-type"] = "application/json"
    if not check_security:
        # Cassettes scrub credentials; put a placeholder where the spec wants one.
        header_map.setdefault("authorization", "Bearer placeholder")
    openapi, origin = _load(str(spec_path))
    spec_request = _SpecRequest(
        method=method, url=url, body=raw_body, headers=header_map, origin=origin
    )
    result = openapi.unmarshal_request(spec_request)
    errors = [e for e in result.errors if check_security or "Security" not in type(e).__name__]
    if errors:
        detail = "\n".join(line for e in errors for line in _describe(e))
        shown = raw_body.decode(errors="replace")[:500] if raw_body else "<no body>"
        raise AssertionError(
            f"{method} {urlsplit(url).path} does not match {Path(spec_path).name}:\n"
            f"{detail}\nbody: {shown}"
        )


def assert_requests_match(
    spec_path: str | Path, requests: Iterable[httpx.Request], *, check_security: bool = False
) -> int:
    """Validate every request; return how many were checked (so a test can insist on > 0).

    Raises:
        AssertionError: listing every request that does not match.
    """
    problems: list[str] = []
    count = 0
    for request in requests:
        count += 1
        try:
            validate_request(spec_path, request, check_security=check_security)
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        raise AssertionError("\n\n".join(problems))
    return count


def assert_server_requests_match(spec_path: str | Path, requests: Iterable[ServerRequest]) -> int:
    """Validate every request a ``FakeHttpServer`` received; return how many.

    Raises:
        AssertionError: at the first request that does not match.
    """
    count = 0
    for r in requests:
        query = urlencode(r.query, doseq=True)
        url = f"http://127.0.0.1{r.path}" + (f"?{query}" if query else "")
        validate_request(spec_path, method=r.method, url=url, body=r.body or None, headers=r.headers)
        count += 1
    return count


class RecordingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that keeps a copy of every request, then sends it on.

    Args:
        inner: the transport that really sends (``httpx.MockTransport``, a vcr-patched
            default transport ...); default: a plain ``httpx.AsyncHTTPTransport``.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
