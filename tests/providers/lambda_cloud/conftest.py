"""Fixtures for the Lambda Cloud tests: a provider wired to cassettes, and a fake Lambda on loopback."""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import vcr

from runctl.config import ProviderConfig
from runctl.http import RetryPolicy
from runctl.providers.lambda_cloud import LambdaCloudProvider
from tests.support.fake_http import FakeHttpServer, Handler, Reply, Request
from tests.support.openapi import SPECS, RecordingTransport, validate_request

SPEC = SPECS / "lambda-cloud-openapi-1.8.3.json"
CASSETTES = Path(__file__).parent / "cassettes"
#: A made-up key: tests assert it never shows up in errors, reprs or cassettes.
FAKE_KEY = "secret_TESTKEY_lambda_0123456789abcdef"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxRunctlCassetteTestKeyOnlyNotARealKey0000 runctl-test"
)


def lambda_vcr() -> vcr.VCR:
    """Cassettes replay only (``RUNCTL_RECORD=1`` re-records, in the live tests)."""
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if os.environ.get("RUNCTL_RECORD") == "1" else "none",
        filter_headers=["authorization", "cookie", "set-cookie"],
        match_on=("method", "scheme", "host", "port", "path", "query"),
        decode_compressed_response=True,
    )


def config(environ: dict[str, str], tmp_path: Path) -> ProviderConfig:
    return ProviderConfig(name="lambda", home=tmp_path, environ=environ)


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport(httpx.AsyncHTTPTransport())


@pytest.fixture
async def provider(
    tmp_path: Path, recorder: RecordingTransport
) -> AsyncIterator[LambdaCloudProvider]:
    p = LambdaCloudProvider(
        config({"LAMBDA_API_KEY": FAKE_KEY}, tmp_path),
        transport=recorder,
        retry=RetryPolicy(attempts=3, base=0.001),
    )
    yield p
    await p.aclose()


_TYPE: dict[str, Any] = {
    "name": "gpu_8x_h100_sxm5",
    "description": "8x H100 (80 GB SXM5)",
    "gpu_description": "H100 (80 GB SXM5)",
    "price_cents_per_hour": 2392,
    "specs": {"vcpus": 208, "memory_gib": 1800, "storage_gib": 24780, "gpus": 8},
}


class FakeLambda:
    """Just enough of Lambda's API v1 to launch, read and terminate instances."""

    def __init__(self) -> None:
        self.server = FakeHttpServer()
        self.instances: dict[str, dict[str, Any]] = {}
        self.keys: list[dict[str, str]] = []
        self._ids = (f"{n:032x}" for n in itertools.count(1))
        self._overrides: dict[tuple[str, str], Handler] = {}
        self._route(
            "GET",
            "/api/v1/instances",
            lambda r: Reply.json({"data": list(self.instances.values())}),
        )
        self._route("GET", "/api/v1/instances/{id}", self._get)
        self._route("GET", "/api/v1/instance-types", self._types)
        self._route("POST", "/api/v1/instance-operations/launch", self._launch)
        self._route("POST", "/api/v1/instance-operations/terminate", self._terminate)
        self._route("GET", "/api/v1/ssh-keys", lambda r: Reply.json({"data": self.keys}))
        self._route("POST", "/api/v1/ssh-keys", self._add_key)

    def _route(self, method: str, template: str, handler: Handler) -> None:
        def dispatch(request: Request) -> Reply:
            return self._overrides.get((method, template), handler)(request)

        self.server.route(method, template, dispatch)

    def override(self, method: str, template: str, handler: Handler) -> None:
        """Answer ``method template`` with ``handler`` from now on."""
        self._overrides[(method, template)] = handler

    @staticmethod
    def error(status: int, code: str, message: str) -> Reply:
        return Reply.json({"error": {"code": code, "message": message}}, status)

    def _types(self, request: Request) -> Reply:
        regions = [{"name": "us-east-1", "description": "Virginia, USA"}]
        return Reply.json(
            {
                "data": {
                    _TYPE["name"]: {
                        "instance_type": _TYPE,
                        "regions_with_capacity_available": regions,
                    }
                }
            }
        )

    def _launch(self, request: Request) -> Reply:
        body = request.json()
        iid = next(self._ids)
        self.instances[iid] = {
            "id": iid,
            "name": body.get("name"),
            "status": "booting",
            "ssh_key_names": body["ssh_key_names"],
            "file_system_names": [],
            "region": {"name": body["region_name"], "description": "somewhere"},
            "instance_type": copy.deepcopy(_TYPE),
            "actions": {},
            "tags": body.get("tags", []),
        }
        return Reply.json({"data": {"instance_ids": [iid]}})

    def _get(self, request: Request) -> Reply:
        found = self.instances.get(request.path_params["id"])
        if found is None:
            return self.error(
                404, "global/object-does-not-exist", "Specified instance does not exist."
            )
        return Reply.json({"data": found})

    def _terminate(self, request: Request) -> Reply:
        done = []
        for iid in request.json()["instance_ids"]:
            found = self.instances.pop(iid, None)
            if found is None:
                return self.error(
                    404, "global/object-does-not-exist", "Specified instance does not exist."
                )
            done.append(dict(found, status="terminating"))
        return Reply.json({"data": {"terminated_instances": done}})

    def _add_key(self, request: Request) -> Reply:
        body = request.json()
        key = {"id": f"k{len(self.keys)}", "name": body["name"], "public_key": body["public_key"]}
        self.keys.append(key)
        return Reply.json({"data": key})

    def check_requests_against_spec(self) -> int:
        """Every request the fake received must be one Lambda documents."""
        for r in self.server.requests:
            url = f"https://cloud.lambda.ai{r.path}"
            if r.query:
                url += "?" + urlencode(r.query, doseq=True)
            validate_request(SPEC, method=r.method, url=url, body=r.body or None, headers=r.headers)
        return len(self.server.requests)


@pytest.fixture
def fake() -> Iterator[FakeLambda]:
    fake = FakeLambda()
    with fake.server:
        yield fake


@pytest.fixture
async def fake_provider(fake: FakeLambda, tmp_path: Path) -> AsyncIterator[LambdaCloudProvider]:
    environ = {"LAMBDA_API_KEY": FAKE_KEY, "RUNCTL_LAMBDA_BASE_URL": fake.server.url + "/api/v1"}
    p = LambdaCloudProvider(
        config(environ, tmp_path),
        retry=RetryPolicy(attempts=4, base=0.001, cap=1.0),
        timeout=httpx.Timeout(1.0),
    )
    yield p
    await p.aclose()
