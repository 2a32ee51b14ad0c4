"""AsyncClient.offers(): live providers fanned out, the snapshot fills in, failures reported."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

import runctl
from runctl import Offer, OfferQuery, clock
from runctl.cost import Money, Price
from runctl.errors import ServerError
from runctl.models import Capabilities, Gpu

pytestmark = pytest.mark.anyio


class FakeLive:
    """A provider whose offers() is scripted (a plugin, as far as the client knows)."""

    api_version = 2

    def __init__(self, name: str, offers=(), *, error=None, delay=0.0):
        self.name = name
        self._offers = list(offers)
        self._error = error
        self._delay = delay

    @property
    def capabilities(self):
        return Capabilities(live_offers=True)

    async def offers(self, query):
        await clock.sleep(self._delay)
        if self._error:
            raise self._error
        return self._offers

    async def aclose(self):
        pass


def offer(provider: str, per_hour: str, count: int = 8) -> Offer:
    return Offer(
        provider=provider, instance_type=f"{provider}-8xh100", gpu=Gpu(model="H100", memory_gb=80),
        gpu_count=count, price=Price(per_hour=Money(per_hour), gpu_count=count, source="live"),
        region="us-east",
    )


async def test_live_offers_replace_that_providers_snapshot_rows_and_others_fill_in():
    live = FakeLive("lambda", [offer("lambda", "1.00")])
    async with runctl.AsyncClient(providers={"lambda": live}) as rc:
        found = await rc.offers(gpu="H100", count=8, providers=["lambda", "aws"], sort="per_gpu_hour")
    by_provider = {o.provider for o in found}
    assert by_provider == {"lambda", "aws"}
    lambda_offers = [o for o in found if o.provider == "lambda"]
    assert [o.price.source for o in lambda_offers] == ["live"]  # no snapshot duplicates
    assert {o.price.source for o in found if o.provider == "aws"} == {"snapshot"}
    per_gpu = [o.price.per_gpu_hour.amount for o in found]
    assert per_gpu == sorted(per_gpu)
    assert found[0].price.per_gpu_hour == Money(Decimal("0.125"))


async def test_one_broken_provider_never_hides_the_others(fake_clock):
    broken = FakeLive("runpod", error=ServerError("boom", provider="runpod", status=500))
    slow = FakeLive("vast", [offer("vast", "9.00")], delay=30)
    fine = FakeLive("lambda", [offer("lambda", "2.00")])
    async with runctl.AsyncClient(providers={"runpod": broken, "vast": slow, "lambda": fine}) as rc:
        found = await rc.offers(OfferQuery(gpu="H100"), providers=["runpod", "vast", "lambda"], timeout=0.5)
    assert fake_clock.monotonic() == 0.5  # gave up on the slow one at the timeout, not after its 30 s
    assert isinstance(found.errors["runpod"], ServerError)
    assert "0.5" in str(found.errors["vast"])
    assert "lambda" not in found.errors
    # the failed providers fall back to their snapshot rows
    assert {o.provider for o in found} >= {"lambda", "runpod", "vast"}
    assert {o.price.source for o in found if o.provider in ("runpod", "vast")} == {"snapshot"}


async def test_snapshot_only_search_needs_no_provider_at_all():
    async with runctl.AsyncClient() as rc:
        found = await rc.offers(gpu="A100-80GB", count=8, live=False, limit=5)
    assert 0 < len(found) <= 5
    assert all(o.gpu_count == 8 and o.price.source == "snapshot" for o in found)


async def test_query_and_keyword_filters_are_not_mixed():
    async with runctl.AsyncClient() as rc:
        with pytest.raises(runctl.ValidationError, match="filters"):
            await rc.offers(OfferQuery(gpu="H100"), count=8)


def test_with_no_network_offers_come_from_the_snapshot_quickly_and_sources_are_reported():
    # Credentials set for every REST provider, and no network: each live source fails
    # fast and is reported, the snapshot answers.
    code = (
        "import json, time, runctl\n"
        "t = time.monotonic()\n"
        "with runctl.Client() as rc:\n"
        "    found = rc.offers(gpu='H100', limit=3)\n"
        "print(json.dumps({'s': time.monotonic() - t, 'n': len(found),\n"
        "                  'errors': {n: type(e).__name__ for n, e in found.errors.items()}}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
        "RUNPOD_API_KEY": "k", "VAST_API_KEY": "k", "LAMBDA_API_KEY": "k", "PAPERSPACE_API_KEY": "k",
        # Unroutable proxies make "no network" certain, whatever this machine can reach.
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
    }
    import os

    env["RUNCTL_HOME"] = os.environ["RUNCTL_HOME"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["n"] == 3
    installed = {i.name for i in runctl.list_providers(check=False)}
    live_rest = {n for n in ("runpod", "vast") if n in installed}
    assert live_rest <= set(result["errors"])
    # Quickly, by construction rather than by the clock: a refused connection fails at once,
    # so no provider may have run into the offer timeout.
    assert "ProviderTimeoutError" not in result["errors"].values(), result
