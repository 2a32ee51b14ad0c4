"""runctl.kit, the public provider kit: what a plugin author gets, and the lifecycle it writes once."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import runctl
from runctl import kit
from runctl.errors import (
    CapacityError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ServerError,
    ValidationError,
)
from runctl.models import Capabilities, LaunchSpec, Offer, OfferQuery, Resource, ResourceState

S = ResourceState
RUNCTL = Path(runctl.__file__).parent

# --- the public surface -------------------------------------------------------------------------


def test_everything_a_plugin_needs_has_a_public_name() -> None:
    assert sorted(kit.__all__) == sorted(set(kit.__all__))
    for name in kit.__all__:
        assert not name.startswith("_")
        assert hasattr(kit, name), name
    # The hooks a provider overrides have no underscore either.
    for hook in ("create", "remove", "list_all", "check_launch", "find_by_launch_id",
                 "recover_launch", "unknown_terminated"):
        assert callable(getattr(kit.ProviderBase, hook))
    for hook in ("classify_error", "find_api_key", "fields", "sleep"):
        assert callable(getattr(kit.RestProviderBase, hook))


def test_every_built_in_provider_uses_the_kit_and_no_private_core_module() -> None:
    providers = RUNCTL / "providers"
    modules = [p for p in providers.glob("*.py") if p.name != "__init__.py"]
    packages = [p for p in providers.iterdir() if (p / "__init__.py").exists()]
    for path in sorted(modules):
        text = path.read_text()
        assert "from ..kit import" in text, path.name
        assert not re.search(r"from \.\.(_\w+|provider|gpus) import", text), path.name
    for package in sorted(packages):  # a provider in several modules: runctl.providers.slurm
        texts = {p.name: p.read_text() for p in package.glob("*.py")}
        assert any("from ...kit import" in t for t in texts.values()), package.name
        for name, text in texts.items():
            assert not re.search(r"from \.\.\.(_\w+|provider|gpus) import", text), name


#: Names of providers (built-in and planned) that the core must never name.
PROVIDER_NAMES = ("local", "runpod", "lambda", "vast", "paperspace", "aws", "gcp", "azure",
                  "coreweave", "modal", "kubernetes", "slurm", "digitalocean")
#: The one place the core names a provider: the documented default setting.
ALLOWED = {
    ("config.py", "local"),
    # The conformance kit's list of heavy SDKs a provider must not import at module import.
    ("testing.py", "azure"), ("testing.py", "kubernetes"), ("testing.py", "modal"),
}


def _code_strings_and_names(tree: ast.AST) -> list[tuple[int, str]]:
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                docs.add(id(stmt.value))  # docstrings and attribute docs: prose, may give examples
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found.append((node.lineno, node.value))
        for attr in ("id", "attr", "name", "arg"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                found.append((getattr(node, "lineno", 0), value.replace("_", " ")))
    return found


def test_the_core_names_no_provider() -> None:
    word = re.compile(r"(?<![a-z0-9])(" + "|".join(PROVIDER_NAMES) + r")(?![a-z0-9])", re.I)
    hits = []
    for path in sorted(RUNCTL.glob("*.py")):
        for line, text in _code_strings_and_names(ast.parse(path.read_text())):
            for match in word.finditer(text):
                if (path.name, match.group(1).lower()) not in ALLOWED:
                    hits.append(f"{path.name}:{line}: {match.group(1)!r} in {text[:60]!r}")
    assert hits == []


def test_the_core_gpu_table_holds_no_provider_spellings() -> None:
    import json

    data = json.loads((RUNCTL / "data" / "gpus.json").read_text())
    assert set(data) == {"about", "sources", "gpus", "instance_type_patterns"}
    assert set(data["instance_type_patterns"]) == {"about", "*"}


def test_built_in_providers_declare_the_facts_the_snapshot_holds_as_data() -> None:
    from runctl import catalog
    from runctl.gpus import _source_spellings
    from runctl.providers.lambda_cloud import LambdaCloudProvider
    from runctl.providers.paperspace import PaperspaceProvider
    from runctl.providers.runpod import RunPodProvider
    from runctl.providers.vast import VastProvider

    for cls in (RunPodProvider, LambdaCloudProvider, VastProvider, PaperspaceProvider):
        assert cls.billing_rule == catalog.BILLING_RULES[cls.name], cls.name
        assert cls.gpu_spellings is not None
        data = _source_spellings()[cls.name]
        assert cls.gpu_spellings.aliases == data.aliases, cls.name
        assert set(cls.gpu_spellings.patterns) <= set(data.patterns), cls.name


# --- state tables -------------------------------------------------------------------------------


TABLE = kit.StateTable(
    "acme", {"booting": S.PROVISIONING, "active": S.RUNNING, None: S.PENDING},
    details={"booting": "the machine boots"},
)


def test_a_state_table_maps_raw_states_ignoring_case() -> None:
    assert TABLE("ACTIVE") is S.RUNNING
    assert TABLE(None) is S.PENDING
    assert TABLE("melting") is S.UNKNOWN
    assert "booting" in TABLE and "melting" not in TABLE
    assert TABLE.documented == ("booting", "active", None)
    assert TABLE.detail("booting") == "the machine boots"
    assert TABLE.detail("active") is None
    assert "melting" in (TABLE.detail("melting") or "")
    kit.check_state_table(TABLE)


def test_the_check_names_every_documented_state_that_maps_to_unknown() -> None:
    bad = kit.StateTable("acme", {"active": S.RUNNING, "limbo": S.UNKNOWN, "gone": S.UNKNOWN})
    with pytest.raises(AssertionError, match="'limbo', 'gone'"):
        kit.check_state_table(bad)
    with pytest.raises(AssertionError, match="no state"):
        kit.check_state_table(kit.StateTable("acme", {}))


def test_every_built_in_state_table_maps_every_documented_state() -> None:
    from runctl.providers import lambda_cloud, local, paperspace, runpod, vast

    for table in (runpod.RUNPOD_STATES, lambda_cloud.LAMBDA_STATES, vast.RAW_STATES,
                  paperspace.RAW_STATES, local._STATES):
        kit.check_state_table(table)


# --- wire readers, ids, time, numbers, pages, shell ---------------------------------------------


def test_secret_fields_never_reach_an_error_even_nested() -> None:
    data = {"id": "p1", "createdAt": "yesterday", "env": {"HF_TOKEN": "hf_secret_value"},
            "runtime": {"jupyter_token": "tok_secret_value"}}
    f = kit.Fields(data, "Pod", provider="acme", secret=("env", "jupyter_token"))
    with pytest.raises(MalformedResponseError) as caught:
        f.timestamp("createdAt")
    shown = f"{caught.value} {caught.value!r} {caught.value.body}"
    assert "hf_secret_value" not in shown and "tok_secret_value" not in shown
    assert "HF_TOKEN" in shown  # the keys help to debug
    runtime = f.obj("runtime")
    assert runtime is not None
    with pytest.raises(MalformedResponseError) as nested:
        runtime.integer("jupyter_token")
    assert "tok_secret_value" not in str(nested.value.body)


def test_ids_unsafe_in_a_url_are_bad_input_and_another_provider_s_are_not_found() -> None:
    assert kit.check_resource_id("123", provider="acme", what="Acme box", pattern=r"\d+") == "123"
    with pytest.raises(ValidationError, match="resource_id"):
        kit.check_resource_id("../account", provider="acme", what="Acme box")
    with pytest.raises(NotFoundError):
        kit.check_resource_id("abc", provider="acme", what="Acme box", pattern=r"\d+")


def test_timestamps_and_decimals() -> None:
    assert kit.parse_timestamp("2026-01-02T03:04:05Z") == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert kit.parse_timestamp("2026-01-02T03:04:05") is not None
    assert kit.parse_timestamp("yesterday") is None and kit.parse_timestamp(None) is None
    assert kit.parse_decimal(0.4, field="bid") == Decimal("0.4")
    assert kit.parse_decimal("1.25", field="bid") == Decimal("1.25")
    for bad in ("abc", "NaN", True, None, [1]):
        with pytest.raises(ValidationError, match="bid"):
            kit.parse_decimal(bad, field="bid")
    assert kit.utcnow().tzinfo is timezone.utc


@pytest.mark.anyio
async def test_collect_pages_follows_tokens_and_stops_on_a_repeated_one() -> None:
    pages = {None: ([1, 2], "a"), "a": ([3], "b"), "b": ([4], "a")}
    asked: list[str | None] = []

    async def fetch(token: str | None) -> tuple[list[int], str | None]:
        asked.append(token)
        return pages[token]

    assert await kit.collect_pages(fetch) == [1, 2, 3, 4]
    assert asked == [None, "a", "b"]


def test_shell_builders() -> None:
    assert kit.shell_command(["python", "train.py", "--name", "a b"], shell=False) == (
        "python train.py --name 'a b'")
    assert kit.shell_command(["echo hi && ls"], shell=True) == "sh -c 'echo hi && ls'"
    # One argument is still an argv, never a shell line.
    assert kit.shell_command(["echo hi; touch x"], shell=False) == "'echo hi; touch x'"
    assert kit.export_lines({"A": "x y"}) == ["export A='x y'"]


def test_has_tags_needs_runctl_s_managed_by_tag() -> None:
    mine = {kit.TAG_MANAGED_BY: kit.MANAGED_BY, "team": "a"}
    assert kit.has_tags(mine, {"team": "a"}) and kit.has_tags(mine, None)
    assert not kit.has_tags(mine, {"team": "b"})
    assert not kit.has_tags({"team": "a"}, {"team": "a"})


# --- the lifecycle, written once ----------------------------------------------------------------


class Acme(kit.ProviderBase):
    """A plugin that implements only the wire calls; the kit does the rest."""

    name = "acme"
    recover_tries = 2

    def __init__(self) -> None:
        from runctl.config import ProviderConfig

        super().__init__(ProviderConfig(name="acme", home=Path("/nonexistent")))
        self.boxes: dict[str, Resource] = {}
        self.creates = 0
        self.create_fault: BaseException | None = None
        self.create_anyway = False
        self.list_faults: list[BaseException] = []
        self.faults_after_create: list[BaseException] = []
        self.slept: list[float] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(tags=True, idempotent_launch=True)

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        return []

    async def get(self, resource_id: str) -> Resource:
        if resource_id not in self.boxes:
            raise NotFoundError(resource_id, provider=self.name)
        return self.boxes[resource_id]

    async def list_all(self) -> Sequence[Resource]:
        if self.list_faults:
            raise self.list_faults.pop(0)
        return list(self.boxes.values())

    def check_launch(self, spec: LaunchSpec) -> None:
        if spec.spot:  # what the capabilities deny is refused, before any request
            raise runctl.UnsupportedOperationError(self.name, "spot", "acme has no spot machines")

    async def create(self, spec: LaunchSpec) -> Resource:
        self.creates += 1
        self.list_faults.extend(self.faults_after_create)
        if self.create_fault is not None and not self.create_anyway:
            raise self.create_fault
        box = Resource(id=f"b{self.creates}", provider=self.name, state=S.RUNNING,
                       launch_id=spec.launch_id, tags=spec.runctl_tags)
        self.boxes[box.id] = box
        if self.create_fault is not None:
            raise self.create_fault  # carried out, but the answer was lost
        return box

    async def remove(self, resource_id: str) -> Resource:
        box = await self.get(resource_id)
        gone = box.evolve(state=S.TERMINATED)
        self.boxes[resource_id] = gone
        return gone

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def spec(launch_id: str = "l1", **kw: Any) -> LaunchSpec:
    return LaunchSpec(command=["true"], launch_id=launch_id, **kw)


def lost() -> ProviderTimeoutError:
    error = ProviderTimeoutError("POST /boxes timed out", provider="acme")
    error.maybe_applied = True
    return error


@pytest.mark.anyio
async def test_launch_returns_what_the_launch_id_already_has() -> None:
    acme = Acme()
    first = await acme.launch(spec())
    again = await acme.launch(spec())
    assert again.id == first.id and acme.creates == 1


@pytest.mark.anyio
async def test_a_lost_create_is_recovered_without_a_second_resource() -> None:
    acme = Acme()
    acme.create_fault, acme.create_anyway = lost(), True
    box = await acme.launch(spec())
    assert box.id == "b1" and acme.creates == 1


@pytest.mark.anyio
async def test_a_lost_create_not_found_says_a_retry_is_safe() -> None:
    acme = Acme()
    acme.create_fault = lost()
    with pytest.raises(ProviderTimeoutError) as caught:
        await acme.launch(spec())
    assert caught.value.maybe_applied
    assert "launching again with the same launch id is safe" in str(caught.value)
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    assert acme.slept == [acme.recover_wait]  # looked recover_tries times


@pytest.mark.anyio
async def test_a_refused_create_is_raised_as_is_without_looking() -> None:
    acme = Acme()
    refused = CapacityError("no boxes", provider="acme", status=400)
    acme.create_fault = refused
    with pytest.raises(CapacityError) as caught:
        await acme.launch(spec())
    assert caught.value is refused and acme.slept == []


@pytest.mark.anyio
async def test_a_lookup_that_fails_is_not_an_answer() -> None:
    acme = Acme()
    acme.create_fault, acme.create_anyway = ServerError("boom", provider="acme", status=502), True
    acme.faults_after_create = [ProviderConnectionError("down", provider="acme")]
    box = await acme.launch(spec())  # the first look fails, the second finds it
    assert box.id == "b1" and acme.creates == 1


@pytest.mark.anyio
async def test_terminate_of_an_unknown_id_is_terminated() -> None:
    acme = Acme()
    gone = await acme.terminate("b404")
    assert gone.state is S.TERMINATED and gone.provider == "acme" and gone.id == "b404"
    box = await acme.launch(spec())
    assert (await acme.terminate(box.id)).state is S.TERMINATED
    # An ended resource no longer holds its launch id: launching again creates anew.
    assert (await acme.launch(spec())).id == "b2"


@pytest.mark.anyio
async def test_list_keeps_runctl_s_resources_with_every_tag_asked() -> None:
    acme = Acme()
    await acme.launch(spec("l1", tags={"team": "a"}))
    await acme.launch(spec("l2", tags={"team": "b"}))
    acme.boxes["x"] = Resource(id="x", provider="acme", state=S.RUNNING, tags={"team": "a"})
    assert sorted(r.id for r in await acme.list()) == ["b1", "b2"]
    assert [r.id for r in await acme.list(tags={"team": "a"})] == ["b1"]
    assert await acme.find_by_launch_id("l2") is not None
    assert await acme.find_by_launch_id("nope") is None


@pytest.mark.anyio
async def test_a_kit_plugin_passes_the_conformance_kit() -> None:
    from runctl.testing import check_provider

    report = await check_provider(Acme(), spec=spec("conform1"), settle_timeout=1, poll=0.01)
    assert report.ok, report


def test_the_alpha_hook_names_still_work() -> None:
    from runctl.config import Secret

    class Old(kit.RestProviderBase):
        name = "old"
        default_base_url = "https://api.old.example"

        @classmethod
        def _secret(cls, config: Any) -> Secret | None:
            return Secret("k-123456789", "somewhere")

    availability = Old.check(runctl.config.ProviderConfig(name="old", home=Path("/nonexistent"), environ={}))
    assert availability.usable and availability.reason == "API key from somewhere"


# --- billing rules ------------------------------------------------------------------------------


def test_a_billing_rule_is_a_provider_fact() -> None:
    rule = kit.BillingRule(increment=timedelta(minutes=1), source="https://acme.example/billing")
    assert rule.minimum == timedelta(0)
