"""A conformance kit for provider authors, ours and third parties'.

Run it against your provider (pointed at a fake server, a cassette or a real
account) to check the contract runctl relies on::

    import anyio
    from runctl.testing import check_provider

    async def test_my_provider_conforms():
        provider = MyCloudProvider(config)
        spec = LaunchSpec(command=["true"], provider="mycloud")
        report = await check_provider(provider, spec=spec)
        assert report.ok, report

Each check is a statement about behaviour users rely on: a retried launch with
the same launch id returns the same resource; a resource can be found by its
runctl tags; terminate is idempotent and ends in a terminal or terminating
state; an unknown id raises ``NotFoundError``; an operation the capabilities
deny raises ``UnsupportedOperationError``; offers are priced in ``Decimal``.
The kit terminates whatever it launched, even when a check fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import attrs

from .errors import NotFoundError, RunctlError, UnsupportedOperationError
from .models import TAG_LAUNCH_ID, TAG_MANAGED_BY, Capabilities, OfferQuery, Resource, ResourceState

if TYPE_CHECKING:
    from .models import LaunchSpec
    from .provider import Provider

__all__ = ["CheckResult", "ConformanceReport", "check_provider"]


@attrs.frozen(kw_only=True)
class CheckResult:
    """One check: its name, whether it passed, and why not."""

    name: str
    passed: bool
    detail: str = ""


@attrs.frozen(kw_only=True)
class ConformanceReport:
    """All checks run against one provider."""

    provider: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def __str__(self) -> str:
        lines = [f"conformance of {self.provider!r}: {'ok' if self.ok else 'FAILED'}"]
        for r in self.results:
            lines.append(
                f"  [{'ok' if r.passed else 'FAIL'}] {r.name}{': ' + r.detail if r.detail else ''}"
            )
        return "\n".join(lines)


class _Checks:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    async def run(self, name: str, check: Callable[[], Awaitable[None]]) -> bool:
        try:
            await check()
        except AssertionError as e:
            self.results.append(
                CheckResult(name=name, passed=False, detail=str(e) or "assertion failed")
            )
            return False
        except Exception as e:
            detail = f"{type(e).__name__}: {e}"
            self.results.append(CheckResult(name=name, passed=False, detail=detail))
            return False
        self.results.append(CheckResult(name=name, passed=True))
        return True


async def check_provider(
    provider: Provider,
    *,
    spec: LaunchSpec,
    settle_timeout: float = 60.0,
    poll: float = 0.5,
) -> ConformanceReport:
    """Check ``provider`` against runctl's Provider contract.

    Args:
        provider: the provider object under test.
        spec: a cheap spec to launch (it is launched once, twice with the same launch id).
        settle_timeout: seconds to wait for states to settle (e.g. after terminate).
        poll: seconds between polls.

    Returns:
        A report; ``report.ok`` is true when every check passed.
    """
    checks = _Checks()
    name = provider.name
    launched: list[Resource] = []

    async def shape() -> None:
        assert isinstance(provider.capabilities, Capabilities), (
            "capabilities must be a Capabilities"
        )
        for method in ("offers", "launch", "get", "list", "terminate", "aclose"):
            assert inspect.iscoroutinefunction(getattr(provider, method)), f"{method} must be async"

    async def offers() -> None:
        found = await provider.offers(OfferQuery())
        for offer in found:
            assert offer.provider == name, f"offer from {offer.provider!r}, expected {name!r}"
            assert isinstance(offer.price.per_hour.amount, Decimal), "prices must be Decimal"
            assert offer.gpu_count >= 0

    async def launch() -> None:
        first = await provider.launch(spec)
        launched.append(first)
        assert first.provider == name, f"resource says provider {first.provider!r}"
        assert first.id, "resource id is empty"
        again = await provider.launch(spec)
        launched.append(again)
        assert again.id == first.id, (
            f"a retried launch with launch id {spec.launch_id!r} created a second resource "
            f"({first.id} then {again.id})"
        )

    async def get() -> None:
        got = await provider.get(launched[0].id)
        assert got.id == launched[0].id
        assert isinstance(got.state, ResourceState)

    async def find_by_tags() -> None:
        if not provider.capabilities.tags:
            return
        found = await provider.list(tags={TAG_LAUNCH_ID: spec.launch_id})
        assert [r.id for r in found] == [launched[0].id], f"list by launch id gave {found!r}"
        managed = await provider.list(tags={TAG_MANAGED_BY: "runctl"})
        assert launched[0].id in [r.id for r in managed], "not listed as runctl-managed"

    async def unsupported() -> None:
        caps = provider.capabilities
        rid = launched[0].id
        if not caps.stop_start:
            for op in (provider.stop, provider.start):
                try:
                    await op(rid)
                except UnsupportedOperationError:
                    continue
                raise AssertionError(f"{op.__name__} must raise UnsupportedOperationError")
        if not caps.logs:
            try:
                async for _ in provider.logs(rid):
                    break
            except UnsupportedOperationError:
                return
            raise AssertionError("logs must raise UnsupportedOperationError")

    async def terminate() -> None:
        rid = launched[0].id
        result = await provider.terminate(rid)
        assert result.is_terminal or result.state is ResourceState.TERMINATING, (
            f"terminate returned {result.state.value}"
        )
        again = await provider.terminate(rid)  # idempotent
        assert again.is_terminal or again.state is ResourceState.TERMINATING
        with anyio.fail_after(settle_timeout):
            while True:
                try:
                    current = await provider.get(rid)
                except NotFoundError:
                    return  # gone is fine
                if current.is_terminal:
                    return
                await anyio.sleep(poll)

    async def not_found() -> None:
        try:
            await provider.get("runctl-conformance-no-such-id")
        except NotFoundError:
            return
        raise AssertionError("get of an unknown id must raise NotFoundError")

    try:
        await checks.run("protocol shape", shape)
        await checks.run("offers are priced in Decimal and attributed", offers)
        if await checks.run("launch is idempotent on launch_id", launch):
            await checks.run("get returns the resource", get)
            await checks.run("list finds it by runctl tags", find_by_tags)
            await checks.run("missing capabilities raise UnsupportedOperationError", unsupported)
            await checks.run("terminate ends it and is idempotent", terminate)
        await checks.run("unknown id raises NotFoundError", not_found)
    finally:
        with anyio.CancelScope(shield=True):
            for resource in launched:
                try:
                    await provider.terminate(resource.id)
                except RunctlError:
                    pass
    return ConformanceReport(provider=name, results=tuple(checks.results))
