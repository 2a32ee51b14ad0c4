"""Twenty deliberately broken variants of the Nimbus example plugin, each a real mistake.

Each variant is a subclass of the working ``NimbusProvider`` that gets one thing
wrong, with the name of the kit check expected to catch it (``None``: the kit
is not expected to). tests/conformance/test_broken_variants.py runs the kit on
every one against a fresh fake Nimbus.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs
import httpx
from runctl_nimbus import NimbusProvider

from runctl import Capabilities, LaunchSpec, Offer, Resource, ResourceState, clock


class IgnoresExitCode(NimbusProvider):
    """``exit 3`` shown as SUCCEEDED: every exited job counts as a success."""

    def _resource(self, job: Any) -> Resource:
        r = super()._resource(job)
        return r.evolve(state=ResourceState.SUCCEEDED) if r.raw_state == "exited" else r


class StateMissingFromTable(NimbusProvider):
    """A documented state (``stopping``) forgotten in the state table."""

    def _resource(self, job: Any) -> Resource:
        r = super()._resource(job)
        return r.evolve(state=ResourceState.UNKNOWN) if r.raw_state == "stopping" else r


class RawHttpxFromTerminate(NimbusProvider):
    """``terminate`` lets httpx's own errors out (``raise_for_status``)."""

    async def terminate(self, resource_id: str) -> Resource:
        response = await self._http().delete(f"/jobs/{resource_id}")
        response.raise_for_status()
        return await self.get(resource_id)


class StopStartAdvertisedButNoOp(NimbusProvider):
    """``stop``/``start`` advertised, but they only read the job back."""

    async def stop(self, resource_id: str) -> Resource:
        return await self.get(resource_id)

    async def start(self, resource_id: str) -> Resource:
        return await self.get(resource_id)


class SpotAdvertisedButRefused(NimbusProvider):
    """``spot`` advertised, but a spot launch is refused."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, spot=True)


class ExitCodeAdvertisedButNeverRead(NimbusProvider):
    """``exit_code`` advertised, but the job's code is never read."""

    def _resource(self, job: Any) -> Resource:
        return super()._resource({**job, "exit_code": None})


class ListIgnoresTags(NimbusProvider):
    """``list(tags=)`` ignores the filter and returns every job."""

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        return await super().list()


class TagsNotReadBack(NimbusProvider):
    """Labels are set at launch but not read back."""

    def _resource(self, job: Any) -> Resource:
        return super()._resource({**job, "labels": {}})


class PerGpuPriceInPerHour(NimbusProvider):
    """The per-GPU list price put in ``per_hour`` (an 8-GPU machine shown at 1/8 its price)."""

    def _offer(self, row: Any) -> Offer:
        offer = super()._offer(row)
        per_gpu = offer.price.per_hour / max(offer.gpu_count, 1)
        return attrs.evolve(offer, price=attrs.evolve(offer.price, per_hour=per_gpu))


class LogLinesKeepNewlines(NimbusProvider):
    """Log lines come with their trailing newline."""

    async def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        response = await self._call("GET", f"/jobs/{resource_id}/logs")
        for line in response.text.splitlines(keepends=True):
            yield line


class TerminateRaisesRuntimeError(NimbusProvider):
    """``terminate`` crashes with a bare RuntimeError (the old kit crashed and leaked)."""

    async def terminate(self, resource_id: str) -> Resource:
        raise RuntimeError("unexpected status from DELETE")


class LaunchNotIdempotent(NimbusProvider):
    """Each launch sends a fresh client token, so a retry makes a second job."""

    async def launch(self, spec: LaunchSpec) -> Resource:
        made = await super().launch(attrs.evolve(spec, launch_id=uuid.uuid4().hex[:16]))
        return made.evolve(launch_id=spec.launch_id)


class UnknownIdIsNotNotFound(NimbusProvider):
    """``get`` of an unknown id returns an UNKNOWN resource instead of raising NotFoundError."""

    async def get(self, resource_id: str) -> Resource:
        if not resource_id.startswith("job-"):
            return Resource(id=resource_id, provider=self.name, state=ResourceState.UNKNOWN)
        return await super().get(resource_id)


class DeniedLogsSilentlyEmpty(NimbusProvider):
    """``logs`` not advertised, yet it returns nothing instead of raising."""

    @property
    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities, logs=False)

    async def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        for line in ():
            yield line


class OffersMisattributed(NimbusProvider):
    """Offers say they come from another provider (a copy-pasted constant)."""

    def _offer(self, row: Any) -> Offer:
        return attrs.evolve(super()._offer(row), provider="nimbuscloud")


class TransportErrorsNotWrapped(NimbusProvider):
    """A dropped connection escapes as ``httpx.ReadError``: only HTTP statuses are mapped."""

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = await self._http().request(method, path, **kw)
        if response.status_code >= 400:
            return await super()._call(method, path, **kw)
        return response


class WrongApiVersion(NimbusProvider):
    """``api_version`` left at 0."""

    api_version = 0


class LaunchIdNotReadBack(NimbusProvider):
    """The client token is not read back as the launch id."""

    def _resource(self, job: Any) -> Resource:
        return super()._resource({**job, "client_token": None})


class TerminateDoesNothing(NimbusProvider):
    """``terminate`` returns the job as it is, without deleting it."""

    async def terminate(self, resource_id: str) -> Resource:
        return await self.get(resource_id)


#: name -> (class, the kit check expected to catch it)
VARIANTS: dict[str, tuple[type[NimbusProvider], str]] = {
    "ignores exit code": (IgnoresExitCode, "exit codes"),
    "documented state missing from the table": (StateMissingFromTable, "documented raw state"),
    "raw httpx error from terminate": (RawHttpxFromTerminate, "only runctl errors"),
    "stop/start advertised, no-op": (StopStartAdvertisedButNoOp, "stop/start"),
    "spot advertised, refused": (SpotAdvertisedButRefused, "spot"),
    "exit_code advertised, never read": (ExitCodeAdvertisedButNeverRead, "exit codes"),
    "list(tags=) ignores the filter": (ListIgnoresTags, "list(tags=)"),
    "tags not read back": (TagsNotReadBack, "tags read back"),
    "per-GPU price in per_hour": (PerGpuPriceInPerHour, "offers"),
    "log lines keep their newline": (LogLinesKeepNewlines, "logs"),
    "terminate raises RuntimeError": (TerminateRaisesRuntimeError, "terminate"),
    "launch not idempotent": (LaunchNotIdempotent, "idempotent"),
    "unknown id is not NotFoundError": (UnknownIdIsNotNotFound, "NotFoundError"),
    "denied logs silently empty": (DeniedLogsSilentlyEmpty, "logs"),
    "offers misattributed": (OffersMisattributed, "offers"),
    "transport errors not wrapped": (TransportErrorsNotWrapped, "failed backend request"),
    "api_version 0": (WrongApiVersion, "protocol shape"),
    "launch id not read back": (LaunchIdNotReadBack, "launch id"),
    "terminate does nothing": (TerminateDoesNothing, "terminate"),
}


class Hangs(NimbusProvider):
    """Not one of the twenty: its ``stop`` never answers (the kit reports it as hung)."""

    async def stop(self, resource_id: str) -> Resource:
        await clock.sleep(10**6)  # the API never answers (virtual time: no real wait)
        raise AssertionError("unreachable")


def all_variants() -> dict[str, tuple[type[NimbusProvider], str]]:
    """The twenty: the nineteen above and one in a module of its own (imports are per module)."""
    from .heavy_import import HeavyImport

    return {**VARIANTS, "heavy SDK imported at module import": (HeavyImport, "heavy import")}

__all__ = ["VARIANTS", "all_variants"]
