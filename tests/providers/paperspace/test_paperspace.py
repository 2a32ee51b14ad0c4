"""Paperspace: states, names, wire models, credentials, and behaviour under faults (fake server)."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from runctl.config import ProviderConfig
from runctl.errors import (
    AuthenticationError,
    CapacityError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    UnsupportedOperationError,
    ValidationError,
)
from runctl.http import RetryPolicy
from runctl.models import TAG_LAUNCH_ID, LaunchSpec, OfferQuery, ResourceState
from runctl.providers.paperspace import (
    RAW_STATES,
    PaperspaceMachine,
    PaperspaceProvider,
    machine_name,
    parse_machine_name,
    startup_script,
    state_of,
)
from tests.support.fake_http import Fault
from tests.support.fake_sleep import Sleeps

from .fake_paperspace import FakePaperspace

S = ResourceState
KEY = "ps-test-key-0123456789abcdef"

#: The machine ``state`` enum of the v1 API (Paperspace/cli api/openapi.ts).
DOCUMENTED = {
    "off": S.STOPPED, "starting": S.PROVISIONING, "stopping": S.STOPPING,
    "restarting": S.PROVISIONING, "serviceready": S.RUNNING, "ready": S.RUNNING,
    "upgrading": S.PROVISIONING, "provisioning": S.PROVISIONING,
}


@pytest.mark.parametrize(("raw", "expected"), list(DOCUMENTED.items()))
def test_every_documented_state_has_a_runctl_state(raw: str, expected: ResourceState) -> None:
    assert state_of(raw) == (expected, None)


def test_the_table_covers_exactly_the_documented_states() -> None:
    assert set(RAW_STATES) == set(DOCUMENTED)


def test_unknown_and_deleted_states() -> None:
    state, detail = state_of("melting")
    assert state is S.UNKNOWN and detail is not None and "melting" in detail
    assert state_of("off", deleted=True)[0] is S.TERMINATED


def test_the_machine_name_carries_launch_id_and_name() -> None:
    spec = LaunchSpec(command=["x"], launch_id="abc123", name="my-run")
    assert machine_name(spec) == "runctl-abc123-my-run"
    tags = parse_machine_name("runctl-abc123-my-run")
    assert tags is not None and tags[TAG_LAUNCH_ID] == "abc123" and tags["runctl-name"] == "my-run"
    assert parse_machine_name("My Machine 1") is None


def test_tags_a_machine_cannot_carry_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="team"):
        machine_name(LaunchSpec(command=["x"], tags={"team": "a"}))


def test_machines_parse_leniently_and_fail_as_malformed() -> None:
    m = PaperspaceMachine.from_json({"id": "ps1", "surprise": True})
    assert m.state is None and m.accelerators == ()
    with pytest.raises(MalformedResponseError, match="machine.id"):
        PaperspaceMachine.from_json({"name": "x"})
    with pytest.raises(MalformedResponseError, match="count"):
        PaperspaceMachine.from_json({"id": "ps1", "accelerators": [{"name": "A4000", "count": "1"}]})
    with pytest.raises(MalformedResponseError, match="dtCreated"):
        PaperspaceMachine.from_json({"id": "ps1", "dtCreated": "yesterday"})


def test_the_startup_script_runs_the_command_in_the_image_with_env_and_key() -> None:
    spec = LaunchSpec(command=["python", "train.py", "--lr", "1e-3"], image="pytorch/pytorch:2",
                      env={"TOKEN": "it's"}, ssh_public_key="ssh-ed25519 AAAA me", launch_id="l1")
    script = startup_script(spec)
    assert script.startswith("#!/bin/bash")
    assert "export TOKEN='it'\"'\"'s'" in script
    assert "docker run --rm --gpus all -e TOKEN pytorch/pytorch:2 python train.py --lr 1e-3" in script
    assert "authorized_keys" in script and "/var/log/runctl-l1.log" in script


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        (["printf", "%s|", "two  spaces\nand a newline"], "two  spaces\nand a newline|"),
        ("echo one && echo two", "one\ntwo\n"),  # a str is the shell form
        (["echo", "a; echo b"], "a; echo b\n"),  # a list never meets a shell
    ],
)
def test_the_startup_script_runs_the_command_exactly_as_given(
    tmp_path: Path, command: list[str] | str, printed: str
) -> None:
    spec = LaunchSpec(command=command, launch_id="l2")
    out = tmp_path / "out.log"
    script = startup_script(spec).replace("/var/log/runctl-l2.log", str(out))
    subprocess.run(["bash", "-c", script], check=True, timeout=10)
    assert out.read_text() == printed


def _config(environ: dict[str, str], settings: dict[str, str] | None = None) -> ProviderConfig:
    return ProviderConfig(name="paperspace", home=Path("/nonexistent"), settings=settings or {},
                          environ=environ)


def test_check_reports_where_the_key_is_without_revealing_it(tmp_path: Path) -> None:
    a = PaperspaceProvider.check(_config({"PAPERSPACE_API_KEY": KEY, "HOME": str(tmp_path)}))
    assert a.usable and "PAPERSPACE_API_KEY" in (a.reason or "") and KEY not in (a.reason or "")
    b = PaperspaceProvider.check(_config({"HOME": str(tmp_path)}, {"api_key": KEY}))
    assert b.usable and "config file" in (b.reason or "")
    c = PaperspaceProvider.check(_config({"HOME": str(tmp_path)}))
    assert not c.usable and "PAPERSPACE_API_KEY" in (c.reason or "")


def test_check_finds_the_pspace_cli_login(tmp_path: Path) -> None:
    (tmp_path / ".paperspace").mkdir()
    (tmp_path / ".paperspace" / "config.toml").write_text('version = 1\nteam = "ml"\n')
    (tmp_path / ".paperspace" / "credentials.toml").write_text(f'version = 1\n[keys]\nml = "{KEY}"\n')
    a = PaperspaceProvider.check(_config({"HOME": str(tmp_path)}))
    assert a.usable and "credentials.toml" in (a.reason or "") and KEY not in (a.reason or "")


def test_capabilities_are_honest() -> None:
    caps = PaperspaceProvider(_config({})).capabilities
    assert not caps.live_offers and not caps.spot and not caps.logs
    assert caps.stop_start and caps.idempotent_launch and caps.ssh


# --- against the fake server -------------------------------------------------------------------


@pytest.fixture
def ps() -> Iterator[FakePaperspace]:
    with FakePaperspace() as fake:
        yield fake



def make(fake: FakePaperspace, sleeps: Sleeps | None = None, *, read_timeout: float = 5.0,
         settings: dict[str, str] | None = None) -> PaperspaceProvider:
    config = ProviderConfig(name="paperspace", home=Path("/nonexistent"), settings=settings or {},
                            environ={"PAPERSPACE_API_KEY": KEY,
                                     "RUNCTL_PAPERSPACE_BASE_URL": fake.url})
    return PaperspaceProvider(
        config, retry=RetryPolicy(attempts=5, base=0.5, cap=8.0, rng=random.Random(3)),
        sleep=sleeps or Sleeps(), timeout=httpx.Timeout(read_timeout, connect=2.0),
    )


SPEC = LaunchSpec(command=["python", "train.py"], instance_type="A4000", image="pytorch/pytorch:2",
                  env={"A": "1"}, launch_id="pl1", name="run")


@pytest.mark.anyio
async def test_lifecycle_sends_only_verified_request_shapes(ps: FakePaperspace) -> None:
    provider = make(ps)
    assert await provider.offers(OfferQuery()) == []
    r = await provider.launch(SPEC)
    assert (r.state, r.launch_id, r.name, r.instance_type) == (S.PROVISIONING, "pl1", "run", "A4000")
    script = ps.scripts[next(iter(ps.scripts))]
    assert script["name"] == "runctl-pl1" and script["isRunOnce"] is True
    assert ps.machines[r.id]["startupScriptId"] == script["id"]
    assert [x.id for x in await provider.list(tags={TAG_LAUNCH_ID: "pl1"})] == [r.id]
    assert (await provider.get(r.id)).state is S.PROVISIONING
    assert (await provider.stop(r.id)).state is S.STOPPING
    assert (await provider.start(r.id)).state is S.PROVISIONING
    gone = await provider.terminate(r.id)
    assert gone.state is S.TERMINATED and not ps.scripts
    await provider.aclose()
    ops = ps.check_requests()
    assert {"machines-create", "startupScripts-create", "osTemplates-list", "machines-stop",
            "machines-start", "machines-delete", "startupScripts-delete"} <= set(ops)


@pytest.mark.anyio
async def test_the_newest_ml_in_a_box_template_is_chosen_unless_one_is_given(ps: FakePaperspace) -> None:
    await make(ps).launch(SPEC)
    assert next(iter(ps.machines.values()))  # created
    bodies = [r.json() for r in ps.server.requests if r.method == "POST" and r.path == "/v1/machines"]
    assert bodies[0]["templateId"] == "tmlbox2"
    await make(ps, settings={"template_id": "tmine"}).launch(
        LaunchSpec(command=["true"], instance_type="A4000", launch_id="pl2"))
    bodies = [r.json() for r in ps.server.requests if r.method == "POST" and r.path == "/v1/machines"]
    assert bodies[1]["templateId"] == "tmine"


@pytest.mark.anyio
async def test_templates_and_startup_scripts_are_read_on_every_page(ps: FakePaperspace) -> None:
    ps.page_size = 1
    ps.scripts["ss-other"] = {"id": "ss-other", "name": "someone-elses", "isRunOnce": False}
    provider = make(ps)
    r = await provider.launch(SPEC)
    body = next(r.json() for r in ps.server.requests if r.method == "POST" and r.path == "/v1/machines")
    assert body["templateId"] == "tmlbox2"  # the newest ML-in-a-Box, on the last page
    await provider.terminate(r.id)
    assert list(ps.scripts) == ["ss-other"]  # runctl's script (page 2) is gone, no other
    ps.check_requests()


@pytest.mark.anyio
async def test_a_429_burst_without_retry_after_backs_off(ps: FakePaperspace) -> None:
    m = ps.add_machine()
    ps.server.fail("GET", "/v1/machines/{id}", *[Fault.http(429, {"code": "rate_limited",
                                                                  "message": "slow down"})] * 3)
    sleeps = Sleeps()
    assert (await make(ps, sleeps).get(m["id"])).state is S.RUNNING
    assert len(sleeps.calls) == 3
    assert all(0 <= w <= 0.5 * 2 ** n for n, w in enumerate(sleeps.calls))


@pytest.mark.anyio
async def test_endless_429_is_rate_limited(ps: FakePaperspace) -> None:
    m = ps.add_machine()
    ps.server.fail("GET", "/v1/machines/{id}", *[Fault.http(429, {"code": "x", "message": "no"})] * 9)
    with pytest.raises(RateLimitedError):
        await make(ps).get(m["id"])


@pytest.mark.anyio
async def test_a_429_saying_rate_limit_exceeded_is_rate_limited_not_a_quota(
    ps: FakePaperspace,
) -> None:
    m = ps.add_machine()
    ps.server.fail("GET", "/v1/machines/{id}", *[Fault.http(
        429, {"code": "rate_limited", "message": "Rate limit exceeded"})] * 9)
    with pytest.raises(RateLimitedError):
        await make(ps).get(m["id"])


@pytest.mark.anyio
async def test_5xx_on_reads_is_retried(ps: FakePaperspace) -> None:
    m = ps.add_machine()
    ps.server.fail("GET", "/v1/machines/{id}", Fault.http(503), Fault.http(502))
    assert (await make(ps).get(m["id"])).id == m["id"]


@pytest.mark.anyio
async def test_a_500_on_create_with_nothing_made_says_retrying_is_safe(ps: FakePaperspace) -> None:
    ps.server.fail("POST", "/v1/machines", Fault.http(500, {"code": "internal", "message": "boom"}))
    with pytest.raises(ServerError, match="launching again with the same launch id is safe"):
        await make(ps).launch(SPEC)
    assert ps.creates == 0


@pytest.mark.anyio
async def test_a_lost_create_response_never_makes_a_second_machine(ps: FakePaperspace) -> None:
    ps.server.fail("POST", "/v1/machines", Fault.lose_response())
    provider = make(ps)
    r = await provider.launch(SPEC)
    assert ps.creates == 1 and r.launch_id == "pl1"
    assert (await provider.launch(SPEC)).id == r.id and ps.creates == 1


@pytest.mark.anyio
async def test_a_reset_create_is_a_clear_connection_error(ps: FakePaperspace) -> None:
    ps.server.fail("POST", "/v1/machines", Fault.reset())
    with pytest.raises(ProviderConnectionError, match="no machine with launch id pl1"):
        await make(ps).launch(SPEC)
    assert ps.creates == 0


@pytest.mark.anyio
async def test_a_create_that_times_out_but_happens_is_found(ps: FakePaperspace) -> None:
    ps.server.fail("POST", "/v1/machines", Fault.sleep(0.6))
    r = await make(ps, Sleeps(cap=0.5), read_timeout=0.3).launch(SPEC)
    await anyio.sleep(0.5)
    assert ps.creates == 1 and r.launch_id == "pl1"


@pytest.mark.anyio
async def test_truncated_json_on_a_read_is_retried(ps: FakePaperspace) -> None:
    m = ps.add_machine()
    ps.server.fail("GET", "/v1/machines/{id}", Fault.truncate())
    assert (await make(ps).get(m["id"])).id == m["id"]


@pytest.mark.anyio
async def test_an_unknown_state_keeps_the_raw_state(ps: FakePaperspace) -> None:
    m = ps.add_machine(state="teleporting")
    r = await make(ps).get(m["id"])
    assert (r.state, r.raw_state) == (S.UNKNOWN, "teleporting")


@pytest.mark.anyio
async def test_a_wrong_type_is_malformed(ps: FakePaperspace) -> None:
    ps.add_machine(name=12)
    with pytest.raises(MalformedResponseError):
        await make(ps).list()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"code": "unauthorized", "message": "Invalid API key"}, AuthenticationError),
        (404, {"code": "not_found", "message": "Machine not found"}, NotFoundError),
        (400, {"code": "bad_request", "message": "Machine type A100 is out of capacity in NY2"},
         CapacityError),
        (400, {"code": "bad_request", "message": "Machine limit exceeded for team"},
         QuotaExceededError),
    ],
)
async def test_errors_map_into_the_tree_without_the_key(
    ps: FakePaperspace, status: int, body: dict[str, str], error: type[Exception]
) -> None:
    ps.server.fail("GET", "/v1/machines/{id}", Fault.http(status, body))
    with pytest.raises(error) as caught:
        await make(ps).get("ps0000001")
    assert body["message"] in str(caught.value) and KEY not in repr(caught.value)


@pytest.mark.anyio
async def test_spot_and_logs_are_unsupported(ps: FakePaperspace) -> None:
    provider = make(ps)
    with pytest.raises(UnsupportedOperationError):
        await provider.launch(LaunchSpec(command=["x"], instance_type="A4000", spot=True))
    with pytest.raises(UnsupportedOperationError):
        provider.logs("ps1")
