"""Test tools for provider authors, ours and third parties': a conformance kit and a fake clock.

**The conformance kit** checks a provider against the contract runctl relies on.
The provider is pointed at a backend the test controls (a fake server, a
cassette, a sandbox account), and a *backend driver* lets the kit move that
backend: put a resource in each raw state the provider documents, end a
workload with an exit code. As a pytest class::

    import pytest
    from runctl.testing import ProviderConformance

    class TestMyCloud(ProviderConformance):
        conformance_spec = {"image": "python:3.12-slim"}

        @pytest.fixture
        async def conformance_provider(self, fake_server):
            provider = MyCloudProvider(config_for(fake_server))
            yield provider
            await provider.aclose()

        @pytest.fixture
        def conformance_driver(self, fake_server):
            return MyCloudDriver(fake_server)   # a BackendDriver

or as a function, for any test runner::

    report = await check_provider(provider, spec=spec, driver=driver)
    assert report.ok, str(report)

What the kit checks, each a statement a user relies on:

- shape: a slug ``name``, the current ``api_version``, ``Capabilities``, async methods;
- importing the provider's module imports no heavy SDK (boto3, google, azure,
  kubernetes, modal ...; see :data:`HEAVY_MODULES`): they load on first use;
- offers are priced in ``Decimal``, attributed to the provider, and in the
  right unit: ``per_hour`` is the whole machine (``price.gpu_count`` equals the
  offer's GPU count, and equals the backend's list price when the driver knows it);
- launch is idempotent on ``launch_id``; the launch id, the runctl tags and the
  user's tags read back; ``list(tags=)`` returns exactly the matching resources;
- every documented raw state maps to a state other than ``UNKNOWN``, and the raw
  state is kept beside it;
- exit code 0 ends ``SUCCEEDED`` with code 0, a non-zero code ``FAILED`` with it;
- every advertised capability works (stop/start, logs, spot, exit code, live
  offers), every denied one raises ``UnsupportedOperationError``;
- log lines come without trailing newlines;
- ``get`` of an unknown id raises ``NotFoundError``; terminate is idempotent and ends it;
- no method ever raises anything but a runctl error (a ``RuntimeError`` or a raw
  ``httpx`` error is a reported failure), even when the backend fails a request.

The kit never crashes on a provider's bug: each one is a failed check in the
report, a call that hangs times out, and whatever the kit launched is
terminated at the end, shielded from cancellation.

**The fake clock** (:class:`FakeClock`, fixture ``fake_clock``) drives
:mod:`runctl.clock`: sleeps return at once and advance a virtual time, so a
test of a provider's waits, retries and deadlines is instant and deterministic.
Put ``from runctl.testing import fake_clock`` in a ``conftest.py`` to use the fixture.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import anyio
import attrs

from . import clock
from ._fake_clock import FakeClock
from .errors import NotFoundError, RunctlError, UnsupportedOperationError, ValidationError
from .models import (
    TAG_LAUNCH_ID,
    TAG_MANAGED_BY,
    Capabilities,
    LaunchSpec,
    OfferQuery,
    Resource,
    ResourceState,
)

if TYPE_CHECKING:
    from .provider import Provider

__all__ = [
    "HEAVY_MODULES",
    "BackendDriver",
    "CheckResult",
    "ConformanceReport",
    "FakeClock",
    "ProviderConformance",
    "check_provider",
    "fake_clock",
]

#: Modules a provider's module must not import at import time: they cost seconds, and
#: a user listing providers pays for every one installed.
HEAVY_MODULES: tuple[str, ...] = (
    "boto3",
    "botocore",
    "google.cloud",
    "google.api_core",
    "googleapiclient",
    "azure",
    "kubernetes",
    "modal",
    "grpc",
    "torch",
    "tensorflow",
    "jax",
)

_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_S = ResourceState
_STOPPING = frozenset({_S.STOPPING, _S.STOPPED})
_STARTING = frozenset({_S.PENDING, _S.PROVISIONING, _S.RUNNING})


# --- the backend driver -------------------------------------------------------------------------


@runtime_checkable
class BackendDriver(Protocol):
    """Moves the backend behind a provider under test, as only the test can.

    Implement it over your fake server (or sandbox). Optional extras the kit
    uses when present (looked up by name, so a driver need not define them):

    - ``async write_log(resource_id, lines)``: make the workload print ``lines``;
      the kit then checks that ``logs()`` returns them, exactly.
    - ``async hourly_price(offer) -> Money | None``: what one hour of the whole
      machine of ``offer`` costs on the backend (its list price); the kit checks
      the offer's ``per_hour`` against it.
    - ``async fail_next_request()``: the backend's next answer is a server error
      (or a dropped connection); the kit checks that the provider raises a runctl
      error for it, never a library's own.

    - ``indeterminate_states``: documented states that say the backend itself does
      not know (a host that stopped reporting); they must map to ``UNKNOWN``, and
      every other documented state must not.

    Attributes:
        documented_states: every raw state the provider's documentation lists.
    """

    documented_states: Collection[str]

    async def set_raw_state(self, resource_id: str, raw: str) -> None:
        """Make the backend report ``raw`` as the state of ``resource_id``."""
        ...

    async def finish(self, resource_id: str, exit_code: int) -> None:
        """End the workload of ``resource_id`` with ``exit_code``, as its command would."""
        ...


# --- the report ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CheckResult:
    """One check: its name, whether it passed, and why not (or why it was skipped)."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False


@attrs.frozen(kw_only=True)
class ConformanceReport:
    """All checks run against one provider."""

    provider: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Every check passed (a skipped check counts as passed)."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def __str__(self) -> str:
        lines = [f"conformance of {self.provider!r}: {'ok' if self.ok else 'FAILED'}"]
        for r in self.results:
            mark = "skip" if r.skipped else "ok" if r.passed else "FAIL"
            lines.append(f"  [{mark}] {r.name}{': ' + r.detail if r.detail else ''}")
        return "\n".join(lines)


class _Skip(Exception):
    """Raised inside a check that does not apply; the reason is reported."""


class _Foreign(AssertionError):
    """A provider method raised something other than a runctl error."""


# --- the kit ------------------------------------------------------------------------------------

_T = TypeVar("_T")


class _Kit:
    def __init__(
        self,
        provider: Provider,
        spec: LaunchSpec,
        driver: BackendDriver | None,
        *,
        settle_timeout: float,
        poll: float,
        call_timeout: float,
        heavy_modules: Sequence[str],
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.driver = driver
        self.settle_timeout = settle_timeout
        self.poll = poll
        self.call_timeout = call_timeout
        self.heavy_modules = tuple(heavy_modules)
        self.results: list[CheckResult] = []
        self.launched: dict[str, Resource] = {}
        #: Every non-runctl exception a provider method raised, as "method: Type: message".
        self.foreign: list[str] = []
        self.name = str(getattr(provider, "name", "?"))
        self.run_id = spec.launch_id[:48]
        self.a: Resource | None = None
        self.b: Resource | None = None

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def caps(self) -> Capabilities:
        caps = self.provider.capabilities
        if not isinstance(caps, Capabilities):
            return Capabilities()
        return caps

    async def run(self, name: str, check: Callable[[], Awaitable[None]]) -> bool:
        try:
            await check()
        except _Skip as e:
            self.results.append(CheckResult(name=name, passed=True, skipped=True, detail=str(e)))
            return True
        except AssertionError as e:
            self.results.append(CheckResult(name=name, passed=False, detail=str(e) or "failed"))
            return False
        except Exception as e:  # a bug in the provider, not in the kit: report it
            detail = f"{type(e).__name__}: {e}"
            self.results.append(CheckResult(name=name, passed=False, detail=detail))
            return False
        self.results.append(CheckResult(name=name, passed=True))
        return True

    async def call(self, method: str, work: Callable[[], Awaitable[_T]]) -> _T:
        """Call a provider method; a non-runctl exception or a hang becomes an assertion."""
        try:
            with clock.fail_after(self.call_timeout):
                return await work()
        except RunctlError:
            raise
        except TimeoutError:
            raise AssertionError(
                f"{method} did not return within {self.call_timeout:g} s"
            ) from None
        except Exception as e:
            self.foreign.append(f"{method}: {type(e).__name__}: {e}")
            raise _Foreign(f"{method} raised {type(e).__name__} (not a runctl error): {e}") from e

    async def get(self, rid: str) -> Resource:
        got = await self.call("get", lambda: self.provider.get(rid))
        assert isinstance(got, Resource), f"get returned {type(got).__name__}, not a Resource"
        return got

    async def launch(self, spec: LaunchSpec) -> Resource:
        made = await self.call("launch", lambda: self.provider.launch(spec))
        assert isinstance(made, Resource), f"launch returned {type(made).__name__}"
        self.launched.setdefault(made.id, made)
        return made

    async def read_logs(self, rid: str, *, follow: bool = False) -> list[str]:
        async def read() -> list[str]:
            stream = self.provider.logs(rid, follow=follow)
            lines: list[str] = []
            async for line in stream:
                lines.append(line)
            return lines

        return await self.call("logs", read)

    async def until(self, rid: str, wanted: Collection[ResourceState], what: str) -> Resource:
        """Poll ``get`` until the state is in ``wanted``; fail after ``settle_timeout``."""
        deadline = clock.monotonic() + self.settle_timeout
        seen: list[str] = []
        while True:
            current = await self.get(rid)
            label = f"{current.state.value}({current.raw_state})"
            if not seen or seen[-1] != label:
                seen.append(label)
            if current.state in wanted:
                return current
            if clock.monotonic() >= deadline:
                raise AssertionError(
                    f"{rid} never became {what} within {self.settle_timeout:g} s "
                    f"(seen: {' -> '.join(seen)})"
                )
            await clock.sleep(self.poll)

    def spec_for(self, suffix: str, **changes: Any) -> LaunchSpec:
        # Told apart by launch id only: ``tags`` promises runctl's tags, not the user's
        # (a provider may keep them in the name and refuse others).
        launch_id = self.spec.launch_id if suffix == "a" else f"{self.run_id}_{suffix}"
        return attrs.evolve(self.spec, launch_id=launch_id, **changes)

    def need_driver(self) -> BackendDriver:
        if self.driver is None:
            raise _Skip("no backend driver given")
        return self.driver

    def need(self, resource: Resource | None) -> Resource:
        if resource is None:
            raise _Skip("nothing launched to check it on")
        return resource

    # --- the checks -----------------------------------------------------------------------------

    async def shape(self) -> None:
        provider = self.provider
        assert _SLUG.match(self.name), f"name {self.name!r} is not a lowercase slug"
        from .provider import API_VERSION

        version = getattr(provider, "api_version", None)
        assert version == API_VERSION, f"api_version is {version!r}, expected {API_VERSION}"
        assert isinstance(provider.capabilities, Capabilities), (
            "capabilities must be a runctl Capabilities"
        )
        for method in ("offers", "launch", "get", "list", "terminate", "stop", "start", "aclose"):
            assert inspect.iscoroutinefunction(getattr(provider, method, None)), (
                f"{method} must be an async method"
            )
        assert callable(getattr(provider, "logs", None)), "logs must be a method"

    async def heavy_imports(self) -> None:
        module = type(self.provider).__module__
        if module in ("__main__", "builtins") or not self.heavy_modules:
            raise _Skip(f"module {module!r} cannot be imported afresh")
        loaded = await _heavy_imports_of(module, self.heavy_modules)
        assert not loaded, (
            f"importing {module} imports {', '.join(loaded)}; import them when the provider "
            "is first used"
        )

    async def offers(self) -> None:
        found = await self.call("offers", lambda: self.provider.offers(OfferQuery()))
        problems: list[str] = []
        live = 0
        for offer in found:
            where = f"{offer.instance_type}"
            if offer.provider != self.name:
                problems.append(f"{where}: attributed to {offer.provider!r}")
            if not isinstance(offer.price.per_hour.amount, Decimal):
                problems.append(f"{where}: price is not a Decimal")
            if offer.gpu_count < 0:
                problems.append(f"{where}: negative GPU count")
            if offer.price.gpu_count != offer.gpu_count:
                problems.append(
                    f"{where}: price.gpu_count {offer.price.gpu_count} but the offer has "
                    f"{offer.gpu_count} GPUs (per_hour is the whole machine)"
                )
            live += offer.price.source == "live"
            listed = await _optional(self.driver, "hourly_price", offer)
            if listed is not None and listed != offer.price.per_hour:
                problems.append(
                    f"{where}: per_hour {offer.price.per_hour} but the machine lists at "
                    f"{listed} an hour ({offer.gpu_count} GPUs; per-GPU price put in per_hour?)"
                )
        # Live offers: a live price, or live availability (a cluster's free GPUs priced
        # at a published rate is live too); an offer with neither is the snapshot's.
        offline = sum(o.price.source == "snapshot" and o.available is None for o in found)
        if self.caps.live_offers and found and offline == len(found):
            problems.append("live_offers advertised but every offer comes from the snapshot")
        if not self.caps.live_offers and live:
            problems.append(f"{live} offers say source='live' but live_offers is not advertised")
        assert not problems, "; ".join(problems[:5])

    async def launch_idempotent(self) -> None:
        spec = self.spec_for("a")
        first = await self.launch(spec)
        self.a = first
        assert first.id, "resource id is empty"
        assert first.provider == self.name, f"resource says provider {first.provider!r}"
        if not self.caps.idempotent_launch:
            raise _Skip("idempotent_launch not advertised (the core guards it)")
        again = await self.launch(spec)
        assert again.id == first.id, (
            f"a retried launch with launch id {spec.launch_id!r} created a second resource "
            f"({first.id} then {again.id})"
        )

    async def read_back(self) -> None:
        a = self.need(self.a)
        got = await self.get(a.id)
        assert got.id == a.id, f"get({a.id!r}) returned {got.id!r}"
        assert got.provider == self.name
        assert isinstance(got.state, ResourceState)
        assert got.launch_id == self.spec.launch_id, (
            f"launch id read back as {got.launch_id!r}, launched with {self.spec.launch_id!r}"
        )
        if not self.caps.tags:
            raise _Skip("tags not advertised")
        wanted = self.spec_for("a").runctl_tags
        wrong = {k: got.tags.get(k) for k, v in wanted.items() if got.tags.get(k) != v}
        assert not wrong, f"tags read back wrong or missing: {wrong} (launched with {wanted})"

    async def list_by_tags(self) -> None:
        a = self.need(self.a)
        if not self.caps.tags:
            raise _Skip("tags not advertised")
        self.b = b = await self.launch(self.spec_for("b"))
        assert b.id != a.id, f"two launch ids made one resource {a.id}"

        async def ids(tags: Mapping[str, str] | None) -> list[str]:
            found = await self.call("list", lambda: self.provider.list(tags=tags))
            return sorted(r.id for r in found)

        problems = []
        for resource, suffix in ((a, "a"), (b, "b")):
            spec = self.spec_for(suffix)
            by_id = await ids({TAG_LAUNCH_ID: spec.launch_id})
            if by_id != [resource.id]:
                problems.append(
                    f"list(launch id {spec.launch_id}) gave {by_id}, not [{resource.id}]"
                )
            both = await ids({TAG_LAUNCH_ID: spec.launch_id, TAG_MANAGED_BY: "runctl"})
            if both != [resource.id]:
                problems.append(f"list(launch id and managed-by of {resource.id}) gave {both}")
        neither = await ids({TAG_LAUNCH_ID: self.spec.launch_id, TAG_MANAGED_BY: "someone-else"})
        if neither:
            problems.append(f"list with two tags no resource has both of gave {neither}")
        none = await ids({TAG_LAUNCH_ID: "runctl-conformance-no-such-launch"})
        if none:
            problems.append(f"list(an unused launch id) gave {none}")
        managed = await ids({TAG_MANAGED_BY: "runctl"})
        if not {a.id, b.id} <= set(managed):
            problems.append(f"list(managed-by runctl) gave {managed}, missing ours")
        everything = await ids(None)
        if not {a.id, b.id} <= set(everything):
            problems.append(f"list() gave {everything}, missing ours")
        assert not problems, "; ".join(problems)

    async def not_found(self) -> None:
        try:
            await self.call("get", lambda: self.provider.get("runctl-conformance-no-such-id"))
        except NotFoundError:
            return
        except RunctlError as e:
            raise AssertionError(
                f"get of an unknown id raised {type(e).__name__}, not NotFoundError"
            ) from e
        raise AssertionError("get of an unknown id must raise NotFoundError")

    async def documented_states(self) -> None:
        driver = self.need_driver()
        states = list(driver.documented_states)
        assert states, "the driver lists no documented states"
        indeterminate = set(getattr(driver, "indeterminate_states", ()))
        c = await self.launch(self.spec_for("c"))
        unmapped, lost = [], []
        for raw in states:
            await driver.set_raw_state(c.id, raw)
            got = await self.get(c.id)
            if raw in indeterminate:
                if got.state is not ResourceState.UNKNOWN:
                    lost.append(f"{raw} (the backend does not know) reported as {got.state.value}")
            elif got.state is ResourceState.UNKNOWN:
                unmapped.append(raw)
            if (got.raw_state or "").lower() != raw.lower():
                lost.append(f"{raw} read back as raw_state {got.raw_state!r}")
        assert not unmapped, f"documented raw states that map to UNKNOWN: {unmapped}"
        assert not lost, "; ".join(lost)

    async def exit_codes(self) -> None:
        driver = self.need_driver()
        if not self.caps.exit_code:
            raise _Skip("exit_code not advertised")
        cases = [(self.need(self.a), 0, _S.SUCCEEDED)]
        d = await self.launch(self.spec_for("d"))
        cases.append((d, 3, _S.FAILED))
        problems = []
        for resource, code, state in cases:
            await self.until(resource.id, {_S.RUNNING}, "running")
            await driver.finish(resource.id, code)
            done = await self.until(
                resource.id, {state, *(s for s in _S if s.is_terminal)}, "ended"
            )
            if done.state is not state or done.exit_code != code:
                problems.append(
                    f"exit {code} reported as {done.state.value} with exit_code {done.exit_code!r} "
                    f"(expected {state.value}, {code})"
                )
        assert not problems, "; ".join(problems)

    async def stop_start(self) -> None:
        b = self.b or self.a
        resource = self.need(b)
        if not self.caps.stop_start:
            for op in ("stop", "start"):
                try:
                    method = getattr(self.provider, op)
                    await self.call(op, lambda m=method: m(resource.id))  # type: ignore[misc]
                except UnsupportedOperationError:
                    continue
                raise AssertionError(
                    f"{op} is not advertised but did not raise UnsupportedOperationError"
                )
            return
        await self.until(resource.id, {_S.RUNNING}, "running")
        stopped = await self.call("stop", lambda: self.provider.stop(resource.id))
        assert stopped.state in _STOPPING, f"stop returned {stopped.state.value}"
        await self.until(resource.id, {_S.STOPPED}, "stopped")
        again = await self.call("stop", lambda: self.provider.stop(resource.id))
        assert again.state in _STOPPING, f"stop of a stopped resource returned {again.state.value}"
        started = await self.call("start", lambda: self.provider.start(resource.id))
        assert started.state in _STARTING, f"start returned {started.state.value}"
        await self.until(resource.id, {_S.RUNNING}, "running again")

    async def logs(self) -> None:
        resource = self.need(self.b or self.a)
        if not self.caps.logs:
            try:
                await self.read_logs(resource.id)
            except UnsupportedOperationError:
                pass
            else:
                raise AssertionError(
                    "logs is not advertised but did not raise UnsupportedOperationError"
                )
            assert not self.caps.follow_logs, "follow_logs advertised without logs"
            return
        expected = ["runctl conformance: first line", "", "second line \u00e9\u00e8"]
        wrote = await _optional_call(self.driver, "write_log", resource.id, expected)
        lines = await self.read_logs(resource.id)
        bad = [line for line in lines if not isinstance(line, str) or line.endswith(("\n", "\r"))]
        assert not bad, f"log lines must not end in a newline: {bad[:3]!r}"
        if wrote:
            assert lines[-len(expected) :] == expected, (
                f"logs returned {lines[-len(expected) :]!r}, the workload printed {expected!r}"
            )

    async def spot(self) -> None:
        if self.caps.spot:
            found = await self.call("offers", lambda: self.provider.offers(OfferQuery(spot=True)))
            wrong = [o.instance_type for o in found if not o.price.spot]
            assert not wrong, f"offers(spot=True) returned on-demand offers: {wrong[:3]}"
            made = await self.launch(self.spec_for("spot", spot=True))
            got = await self.get(made.id)
            assert got.price is None or got.price.spot, (
                "a spot launch reports an on-demand price: spot is advertised but not used"
            )
            return
        spec = self.spec_for("spot", spot=True)
        try:
            made = await self.launch(spec)
        except UnsupportedOperationError:
            return
        raise AssertionError(
            f"spot is not advertised but a spot launch made {made.id} instead of raising "
            "UnsupportedOperationError"
        )

    async def multi_node(self) -> None:
        if "nodes" not in attrs.fields_dict(LaunchSpec):
            raise _Skip("this runctl has no LaunchSpec.nodes")
        if self.caps.multi_node:
            raise _Skip("multi_node advertised: not checked by this kit yet")
        spec = self.spec_for("nodes", nodes=2)
        try:
            made = await self.launch(spec)
        except (UnsupportedOperationError, ValidationError):
            return
        raise AssertionError(f"multi_node is not advertised but nodes=2 launched {made.id}")

    async def backend_failure(self) -> None:
        resource = self.need(self.a)
        if self.driver is None or not callable(getattr(self.driver, "fail_next_request", None)):
            raise _Skip("the driver cannot fail a request")
        wrong: list[str] = []
        for method, work in (
            ("get", lambda: self.provider.get(resource.id)),
            ("list", lambda: self.provider.list(tags={TAG_MANAGED_BY: "runctl"})),
            ("terminate", lambda: self.provider.terminate("runctl-conformance-no-such-id")),
        ):
            await self.driver.fail_next_request()  # type: ignore[attr-defined]
            try:
                await self.call(method, work)
            except RunctlError:
                pass
            except _Foreign as e:
                wrong.append(str(e))
            # A method that failed before asking leaves the fault queued: use it up here,
            # so it does not land on a later check.
            try:
                await self.get(resource.id)
            except RunctlError:
                pass
        assert not wrong, "; ".join(wrong)

    async def unknown_ids(self) -> None:
        rid = "runctl-conformance-no-such-id"
        for method in ("terminate", "stop", "start"):
            try:
                fn = getattr(self.provider, method)
                await self.call(method, lambda fn=fn: fn(rid))  # type: ignore[misc]
            except RunctlError:
                pass
        try:
            await self.read_logs(rid)
        except RunctlError:
            pass

    async def terminate(self) -> None:
        # A resource of its own: the others may have ended already, and ending a finished
        # workload proves nothing about terminate.
        e = await self.launch(self.spec_for("e"))
        result = await self.call("terminate", lambda: self.provider.terminate(e.id))
        assert result.is_terminal or result.state is _S.TERMINATING, (
            f"terminate returned {result.state.value}"
        )
        again = await self.call("terminate", lambda: self.provider.terminate(e.id))
        assert again.is_terminal or again.state is _S.TERMINATING, (
            f"a second terminate returned {again.state.value}"
        )
        try:
            await self.until(e.id, {s for s in _S if s.is_terminal}, "terminal")
        except NotFoundError:
            pass  # gone is fine

    async def only_runctl_errors(self) -> None:
        assert not self.foreign, (
            f"{len(self.foreign)} calls raised non-runctl exceptions: "
            + "; ".join(self.foreign[:4])
        )

    async def cleanup(self, timeout: float) -> list[str]:
        """Terminate everything launched, whatever happens; returns what could not be."""
        left: list[str] = []
        with clock.move_on_after(timeout, shield=True):
            for rid in list(self.launched):
                try:
                    await self.provider.terminate(rid)
                except Exception as e:  # report, never crash: it is the provider's bug
                    left.append(f"{rid}: {type(e).__name__}: {e}")
        return left


async def check_provider(
    provider: Provider,
    *,
    spec: LaunchSpec,
    driver: BackendDriver | None = None,
    settle_timeout: float = 60.0,
    poll: float = 0.5,
    call_timeout: float = 120.0,
    cleanup_timeout: float = 120.0,
    heavy_modules: Sequence[str] = HEAVY_MODULES,
) -> ConformanceReport:
    """Check ``provider`` against runctl's Provider contract.

    Args:
        provider: the provider object under test, pointed at a backend the test controls.
        spec: a cheap spec to launch. Its ``launch_id`` names this run: the kit launches
            a few resources with launch ids derived from it.
        driver: moves the backend (see :class:`BackendDriver`); without one the checks
            that need it are skipped.
        settle_timeout: seconds to wait for a state to be reached.
        poll: seconds between polls.
        call_timeout: seconds one provider call may take before it counts as hung.
        cleanup_timeout: seconds the final clean-up may take.
        heavy_modules: modules the provider's module must not import at import time.

    Returns:
        A report; ``report.ok`` is true when every check passed.
    """
    kit = _Kit(
        provider,
        spec,
        driver,
        settle_timeout=settle_timeout,
        poll=poll,
        call_timeout=call_timeout,
        heavy_modules=heavy_modules,
    )
    on_launched = (
        ("launch id and tags read back", kit.read_back),
        ("list(tags=) returns exactly the matching resources", kit.list_by_tags),
        ("stop/start works, or raises UnsupportedOperationError", kit.stop_start),
        ("logs work without trailing newlines, or raise", kit.logs),
        ("exit codes: 0 is SUCCEEDED, non-zero FAILED with the code", kit.exit_codes),
        ("a failed backend request raises a runctl error", kit.backend_failure),
        ("terminate ends it and is idempotent", kit.terminate),
    )
    independent = (
        ("every documented raw state maps to a known state", kit.documented_states),
        ("spot works, or raises UnsupportedOperationError", kit.spot),
        ("nodes > 1 without multi_node is refused", kit.multi_node),
        ("unknown id: get raises NotFoundError", kit.not_found),
        ("unknown id: other methods raise runctl errors", kit.unknown_ids),
    )
    try:
        if await kit.run("protocol shape", kit.shape):
            await kit.run("no heavy import at module import", kit.heavy_imports)
            await kit.run("offers are priced in Decimal, attributed, per machine", kit.offers)
            if await kit.run("launch is idempotent on launch_id", kit.launch_idempotent):
                for name, check in on_launched:
                    await kit.run(name, check)
            for name, check in independent:
                await kit.run(name, check)
    finally:
        left = await kit.cleanup(cleanup_timeout)
    await kit.run("only runctl errors from every method", kit.only_runctl_errors)
    if left:
        kit.results.append(
            CheckResult(
                name="everything launched was terminated",
                passed=False,
                detail="; ".join(left[:4]),
            )
        )
    return ConformanceReport(provider=kit.name, results=tuple(kit.results))


async def _optional(driver: object, name: str, *args: Any) -> Any:
    method = getattr(driver, name, None) if driver is not None else None
    return await method(*args) if callable(method) else None


async def _optional_call(driver: object, name: str, *args: Any) -> bool:
    method = getattr(driver, name, None) if driver is not None else None
    if not callable(method):
        return False
    await method(*args)
    return True


@functools.lru_cache(maxsize=64)
def _heavy_imports_script(module: str, heavy: tuple[str, ...]) -> str:
    return (
        "import json, sys\n"
        f"import {module}\n"
        f"heavy = {list(heavy)!r}\n"
        "print(json.dumps(sorted(h for h in heavy if h in sys.modules)))\n"
    )


_HEAVY_CACHE: dict[tuple[str, tuple[str, ...]], list[str]] = {}


async def _heavy_imports_of(module: str, heavy: tuple[str, ...]) -> list[str]:
    """The ``heavy`` modules a fresh interpreter has loaded after ``import module``."""
    key = (module, heavy)
    if key not in _HEAVY_CACHE:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        result = await anyio.run_process(
            [sys.executable, "-c", _heavy_imports_script(module, heavy)], env=env, check=False
        )
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise AssertionError(f"importing {module} in a fresh interpreter failed: {tail}")
        _HEAVY_CACHE[key] = json.loads(result.stdout)
    return _HEAVY_CACHE[key]


# --- pytest -------------------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])


def _fixture(fn: _F) -> _F:
    """``pytest.fixture`` when pytest is importable; the plain function otherwise."""
    try:
        import pytest
    except ImportError:  # the kit is usable without pytest
        return fn
    return pytest.fixture(fn)  # type: ignore[return-value]


@_fixture
def fake_clock() -> Iterator[FakeClock]:
    """A :class:`FakeClock` installed for the test: sleeps are instant, deadlines virtual."""
    with FakeClock() as fake:
        yield fake


class ProviderConformance:
    """The conformance kit as a pytest class: subclass it in a test module.

    Define two fixtures on the subclass (async ones work under the anyio plugin):
    ``conformance_provider`` (a provider pointed at a test backend; close it
    after the yield) and ``conformance_driver`` (a :class:`BackendDriver`, or
    ``None``). The test runs under the ``anyio_backend`` fixture, so define that
    to run under trio too. Class attributes tune the run.
    """

    #: Fields of the LaunchSpec the kit launches (``command`` and ``provider`` default).
    conformance_spec: ClassVar[Mapping[str, Any]] = {}
    conformance_settle_timeout: ClassVar[float] = 60.0
    conformance_poll: ClassVar[float] = 0.5

    async def test_provider_conforms(
        self, anyio_backend: Any, conformance_provider: Provider, conformance_driver: Any
    ) -> None:
        """The provider passes every check of :func:`check_provider`."""
        fields: dict[str, Any] = {"command": ["python", "-c", "print('hi')"]}
        fields.update(self.conformance_spec)
        fields.setdefault("provider", conformance_provider.name)
        spec = LaunchSpec(**fields)
        report = await check_provider(
            conformance_provider,
            spec=spec,
            driver=conformance_driver,
            settle_timeout=self.conformance_settle_timeout,
            poll=self.conformance_poll,
        )
        assert report.ok, str(report)
