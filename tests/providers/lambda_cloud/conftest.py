"""Fixtures for the Lambda Cloud tests: a provider wired to cassettes, and a fake Lambda on loopback."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runctl.config import ProviderConfig
from runctl.http import RetryPolicy
from runctl.providers.lambda_cloud import LambdaCloudProvider
from tests.support.fake_http import FakeApi, Reply, Request
from tests.support.openapi import SPECS, RecordingTransport, assert_server_requests_match

SPEC = SPECS / "lambda-cloud-openapi-1.8.3.json"
CASSETTES = Path(__file__).parent / "cassettes"
#: A made-up key: tests assert it never shows up in errors, reprs or cassettes.
FAKE_KEY = "secret_TESTKEY_lambda_0123456789abcdef"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxRunctlCassetteTestKeyOnlyNotARealKey0000 runctl-test"
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


class FakeLambda(FakeApi):
    """Just enough of Lambda's API v1 to launch, read and terminate instances."""

    prefix = "/api/v1"

    def __init__(self) -> None:
        super().__init__()
        self.instances: dict[str, dict[str, Any]] = {}
        self.keys: list[dict[str, str]] = []
        self._ids = (f"{n:032x}" for n in itertools.count(1))
        self.route("GET", "/instances", lambda r: Reply.json({"data": list(self.instances.values())}))
        self.route("GET", "/instances/{id}", self._get)
        self.route("GET", "/instance-types", self._types)
        self.route("POST", "/instance-operations/launch", self._launch)
        self.route("POST", "/instance-operations/terminate", self._terminate)
        self.route("GET", "/ssh-keys", lambda r: Reply.json({"data": self.keys}))
        self.route("POST", "/ssh-keys", self._add_key)

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
        return assert_server_requests_match(SPEC, self.server.requests)


@pytest.fixture
def fake() -> Iterator[FakeLambda]:
    with FakeLambda() as fake:
        yield fake


@pytest.fixture
async def fake_provider(fake: FakeLambda, tmp_path: Path) -> AsyncIterator[LambdaCloudProvider]:
    environ = {"LAMBDA_API_KEY": FAKE_KEY, "RUNCTL_LAMBDA_BASE_URL": fake.url}
    p = LambdaCloudProvider(
        config(environ, tmp_path),
        retry=RetryPolicy(attempts=4, base=0.001, cap=1.0),
        timeout=httpx.Timeout(1.0),
    )
    yield p
    await p.aclose()
