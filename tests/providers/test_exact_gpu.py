"""A launch never gets another GPU model than asked (issue 9: gpu="A10" launched an A100).

Every built-in provider pre-filters with the core's matcher only, exact on canonical
models; no offer for the model is a CapacityError naming it; unambiguous short names
("4090", "A6000") are the model they name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runctl.config import ProviderConfig
from runctl.errors import CapacityError
from runctl.http import RetryPolicy
from runctl.models import LaunchSpec, OfferQuery

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """A scripted API: routes by method and path, and records what was sent."""

    def __init__(self, routes: dict[tuple[str, str], Any]) -> None:
        self.routes = routes
        self.sent: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": "no route"})
        return httpx.Response(200, json=answer(body) if callable(answer) else answer)

    def posted(self, path: str) -> list[Any]:
        return [body for method, p, body in self.sent if method in ("POST", "PUT") and p == path]


def provider(cls: type, name: str, env: dict[str, str], api: Api, tmp_path: Path) -> Any:
    config = ProviderConfig(name=name, home=tmp_path, environ=env)
    return cls(config, transport=httpx.MockTransport(api), retry=RetryPolicy(attempts=1))


# --- Lambda -------------------------------------------------------------------------------------


def lambda_type(name: str, gpu: str, cents: int) -> dict[str, Any]:
    return {
        "instance_type": {
            "name": name, "description": f"1x {gpu}", "gpu_description": gpu,
            "price_cents_per_hour": cents,
            "specs": {"vcpus": 30, "memory_gib": 200, "storage_gib": 1400, "gpus": 1},
        },
        "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia"}],
    }


def lambda_api(*types: dict[str, Any]) -> Api:
    catalog = {t["instance_type"]["name"]: t for t in types}
    instance = {"id": "i1", "status": "booting", "tags": [],
                "instance_type": types[0]["instance_type"] if types else None}
    return Api({
        ("GET", "/api/v1/instance-types"): {"data": catalog},
        ("GET", "/api/v1/instances"): {"data": []},
        ("POST", "/api/v1/instance-operations/launch"): {"data": {"instance_ids": ["i1"]}},
        ("GET", "/api/v1/instances/i1"): {"data": instance},
    })


def lambda_provider(api: Api, tmp_path: Path) -> Any:
    from runctl.providers.lambda_cloud import LambdaCloudProvider

    return provider(LambdaCloudProvider, "lambda", {"LAMBDA_API_KEY": "k-lambda-123456"}, api,
                    tmp_path)


def lambda_spec(gpu: str) -> LaunchSpec:
    return LaunchSpec(command=["true"], gpu=gpu, launch_id="exact1",
                      options={"ssh_key_name": "mine"})


async def test_lambda_never_launches_an_a100_for_a10(tmp_path: Path) -> None:
    api = lambda_api(lambda_type("gpu_1x_a100", "A100 (40 GB PCIe)", 129))
    p = lambda_provider(api, tmp_path)
    assert await p.offers(OfferQuery(gpu="A10")) == []
    with pytest.raises(CapacityError, match="A10"):
        await p.launch(lambda_spec("A10"))
    assert api.posted("/api/v1/instance-operations/launch") == []
    await p.aclose()


async def test_lambda_launches_the_a10_when_there_is_one(tmp_path: Path) -> None:
    api = lambda_api(lambda_type("gpu_1x_a100", "A100 (40 GB PCIe)", 129),
                     lambda_type("gpu_1x_a10", "A10 (24 GB PCIe)", 75))
    p = lambda_provider(api, tmp_path)
    assert [o.instance_type for o in await p.offers(OfferQuery(gpu="A10"))] == ["gpu_1x_a10"]
    await p.launch(lambda_spec("A10"))
    (body,) = api.posted("/api/v1/instance-operations/launch")
    assert body["instance_type_name"] == "gpu_1x_a10"
    await p.aclose()


async def test_lambda_never_launches_a_gh200_for_h200(tmp_path: Path) -> None:
    api = lambda_api(lambda_type("gpu_1x_gh200", "GH200 (96 GB)", 149))
    p = lambda_provider(api, tmp_path)
    with pytest.raises(CapacityError, match="H200"):
        await p.launch(lambda_spec("H200"))
    assert api.posted("/api/v1/instance-operations/launch") == []
    await p.aclose()


# --- Vast ---------------------------------------------------------------------------------------


def vast_offer(ask: int, gpu: str, price: str) -> dict[str, Any]:
    return {"id": ask, "num_gpus": 1, "gpu_name": gpu, "gpu_ram": 48000, "dph_base": price,
            "dph_total": price, "rentable": True, "geolocation": "US"}


def vast_api(*offers: dict[str, Any]) -> Api:
    return Api({
        ("POST", "/api/v0/bundles"): {"offers": list(offers)},
        ("GET", "/api/v1/instances"): {"instances": []},
    })


def vast_provider(api: Api, tmp_path: Path) -> Any:
    from runctl.providers.vast import VastProvider

    return provider(VastProvider, "vast", {"VAST_API_KEY": "k-vast-123456789"}, api, tmp_path)


async def test_vast_never_rents_an_l40s_for_l4_or_an_a100_for_a10(tmp_path: Path) -> None:
    api = vast_api(vast_offer(1, "L40S", "0.50"), vast_offer(2, "A100 SXM4", "0.90"))
    p = vast_provider(api, tmp_path)
    assert await p.offers(OfferQuery(gpu="L4")) == []
    assert await p.offers(OfferQuery(gpu="A10")) == []
    for gpu in ("L4", "A10"):
        with pytest.raises(CapacityError, match=gpu):
            await p.launch(LaunchSpec(command=["true"], gpu=gpu, launch_id=f"exact{gpu}"))
    assert [p for m, p, _ in api.sent if m == "PUT"] == []
    assert {o.instance_type for o in await p.offers(OfferQuery(gpu="L40S"))} == {"1"}
    await p.aclose()


# --- RunPod -------------------------------------------------------------------------------------


def runpod_api(created: list[Any]) -> Api:
    gpus = [
        {"id": "NVIDIA GeForce RTX 4090", "name": "RTX 4090", "memory": 24, "secure": True,
         "community": False, "price": {"secure": 0.69}, "maxCount": {"secure": 8}},
        {"id": "NVIDIA RTX A6000", "name": "RTX A6000", "memory": 48, "secure": True,
         "community": False, "price": {"secure": 0.49}, "maxCount": {"secure": 8}},
        {"id": "NVIDIA A100 80GB PCIe", "name": "A100 PCIe", "memory": 80, "secure": True,
         "community": False, "price": {"secure": 1.64}, "maxCount": {"secure": 8}},
    ]

    def create(body: Any) -> Any:
        created.append(body)
        return {"id": "pod1", "status": "PROVISIONING", "env": body["env"]}

    return Api({
        ("GET", "/v2/catalog/gpus"): {"gpus": gpus},
        ("GET", "/v2/pods"): {"pods": []},
        ("POST", "/v2/pods"): create,
    })


def runpod_provider(api: Api, tmp_path: Path) -> Any:
    from runctl.providers.runpod import RunPodProvider

    return provider(RunPodProvider, "runpod", {"RUNPOD_API_KEY": "k-runpod-123456"}, api,
                    tmp_path)


async def test_runpod_short_names_normalise_instead_of_matching_nothing(tmp_path: Path) -> None:
    created: list[Any] = []
    p = runpod_provider(runpod_api(created), tmp_path)
    offers = await p.offers(OfferQuery(gpu="4090", count=1))
    assert {o.gpu.name for o in offers if o.gpu} == {"RTX 4090"}
    offers = await p.offers(OfferQuery(gpu="A6000", count=1))
    assert {o.gpu.name for o in offers if o.gpu} == {"RTX A6000"}
    await p.launch(LaunchSpec(command=["true"], image="ubuntu", gpu="4090", launch_id="exact2"))
    assert [body["gpu"]["id"] for body in created] == ["NVIDIA GeForce RTX 4090"]
    await p.aclose()


async def test_runpod_never_launches_an_a100_for_a10(tmp_path: Path) -> None:
    created: list[Any] = []
    p = runpod_provider(runpod_api(created), tmp_path)
    assert await p.offers(OfferQuery(gpu="A10")) == []
    with pytest.raises(CapacityError, match="A10"):
        await p.launch(LaunchSpec(command=["true"], image="ubuntu", gpu="A10", launch_id="x3"))
    assert created == []
    await p.aclose()
