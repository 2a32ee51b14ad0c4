"""runctl provider for Nimbus, a made-up GPU cloud with a small REST API.

The worked example of runctl's plugin guide (docs/plugins.md): a third-party
package that registers a provider under the ``runctl.providers`` entry point,
imports only ``from runctl import ...``, and passes runctl's conformance kit
against the fake Nimbus in :mod:`runctl_nimbus.fake`.

Prerequisites: a Nimbus API key in ``NIMBUS_API_KEY`` (or ``api_key`` under
``[providers.nimbus]`` in runctl's config file). The API root is
``https://api.nimbus.example/v1``; the ``base_url`` setting overrides it.

==================  =====  ====================================================
capability          ?      how
==================  =====  ====================================================
live_offers         yes    ``GET /machine-types``, priced per GPU-hour by Nimbus
stop_start          yes    ``POST /jobs/{id}/stop`` and ``/start``
logs                yes    ``GET /jobs/{id}/logs`` (text)
exit_code           yes    the job's ``exit_code``
idempotent_launch   yes    Nimbus keeps one job per ``client_token`` (the launch id)
tags                yes    job labels, filtered server-side with ``?label=k=v``
spot                no     raises ``UnsupportedOperationError``
==================  =====  ====================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from runctl import (
    API_VERSION,
    AuthenticationError,
    Availability,
    Capabilities,
    CapacityError,
    LaunchSpec,
    MalformedResponseError,
    Money,
    NotFoundError,
    Offer,
    OfferQuery,
    Price,
    ProviderConfig,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
    Resource,
    ResourceState,
    ServerError,
    UnsupportedOperationError,
    ValidationError,
    normalize_gpu,
)

__all__ = ["STATES", "NimbusProvider"]

NAME = "nimbus"
DEFAULT_BASE_URL = "https://api.nimbus.example/v1"
KEY_ENV = ("NIMBUS_API_KEY",)

#: Every job status Nimbus documents, and what it means to runctl.
STATES: Mapping[str, ResourceState] = {
    "queued": ResourceState.PENDING,
    "booting": ResourceState.PROVISIONING,
    "running": ResourceState.RUNNING,
    "stopping": ResourceState.STOPPING,
    "stopped": ResourceState.STOPPED,
    "deleting": ResourceState.TERMINATING,
    "deleted": ResourceState.TERMINATED,
    "preempted": ResourceState.PREEMPTED,
    # "exited" depends on the exit code; see _resource.
    "exited": ResourceState.SUCCEEDED,
}


class NimbusProvider:
    """Nimbus jobs as runctl resources.

    Args:
        config: runctl's configuration for this provider.
        transport: an httpx transport (tests); default: the network.
    """

    name = NAME
    api_version = API_VERSION

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def check(cls, config: ProviderConfig) -> Availability:
        """Whether an API key is present, and where it was found (never the key)."""
        key = config.secret("api_key", env=KEY_ENV)
        if key is None:
            return Availability(usable=False, reason="set NIMBUS_API_KEY")
        return Availability(usable=True, reason=f"API key from {key.source}")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            live_offers=True,
            stop_start=True,
            logs=True,
            idempotent_launch=True,
            tags=True,
            exit_code=True,
        )

    # --- HTTP -----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            key = self.config.secret("api_key", env=KEY_ENV)
            if key is None:
                from runctl import MissingCredentialsError

                raise MissingCredentialsError(NAME, ("env NIMBUS_API_KEY",), "")
            base_url = self.config.setting("base_url", default=DEFAULT_BASE_URL)
            self._client = httpx.AsyncClient(
                base_url=base_url or DEFAULT_BASE_URL,
                headers={"Authorization": f"Bearer {key.reveal()}"},
                transport=self._transport,
                timeout=httpx.Timeout(30.0, connect=10.0),
            )
        return self._client

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; every failure becomes a runctl error (never an httpx one)."""
        try:
            response = await self._http().request(method, path, **kw)
        except httpx.TransportError as e:
            raise ProviderConnectionError(
                f"{method} {path}: {type(e).__name__}", provider=NAME
            ) from e
        if response.status_code < 400:
            return response
        status = response.status_code
        message = f"{method} {path} failed"
        error: ProviderError
        if status in (401, 403):
            error = AuthenticationError(message, provider=NAME, status=status)
        elif status == 404:
            error = NotFoundError(message, provider=NAME, status=status)
        elif status == 409:
            error = CapacityError(message, provider=NAME, status=status)
        elif status == 429:
            error = RateLimitedError(message, provider=NAME, status=status)
        elif status >= 500:
            error = ServerError(message, provider=NAME, status=status)
        else:
            error = ProviderError(message, provider=NAME, status=status)
        raise error

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._call(method, path, **kw)
        try:
            return response.json()
        except ValueError as e:
            raise MalformedResponseError(f"{method} {path}: not JSON", provider=NAME) from e

    # --- offers ---------------------------------------------------------------------------------

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        """Machine types, priced for the whole machine (Nimbus lists per GPU-hour)."""
        rows = await self._json("GET", "/machine-types")
        return [self._offer(row) for row in _list(rows, "machine types")]

    def _offer(self, row: Any) -> Offer:
        try:
            gpus = int(row["gpus"])
            per_gpu_hour = Decimal(str(row["price_per_gpu_hour"]))
            name = str(row["name"])
        except (KeyError, TypeError, ValueError, InvalidOperation) as e:
            raise MalformedResponseError(f"machine type {row!r}", provider=NAME) from e
        price = Price(per_hour=Money(per_gpu_hour * gpus, "USD"), gpu_count=gpus, source="live")
        return Offer(
            provider=NAME,
            instance_type=name,
            gpu=normalize_gpu(str(row.get("gpu") or "")) if gpus else None,
            gpu_count=gpus,
            price=price,
            available=bool(row.get("available", True)),
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> Resource:
        """Create a job; Nimbus returns the existing one for a known ``client_token``."""
        if spec.spot:
            raise UnsupportedOperationError(NAME, "spot", "Nimbus has no interruptible machines")
        if spec.nodes > 1:
            raise UnsupportedOperationError(NAME, "multi-node launches", "one machine per job")
        machine = spec.instance_type or (spec.offer.instance_type if spec.offer else None)
        if machine is None:
            raise ValidationError(
                "instance_type", "Nimbus needs a machine type", allowed="e.g. 'a100x1'"
            )
        body = {
            "client_token": spec.launch_id,
            "machine_type": machine,
            "image": spec.image or "python:3.12-slim",
            "command": list(spec.command),
            "env": dict(spec.env),
            "labels": spec.runctl_tags,
        }
        return self._resource(await self._json("POST", "/jobs", json=body))

    async def get(self, resource_id: str) -> Resource:
        return self._resource(await self._json("GET", f"/jobs/{_quote(resource_id)}"))

    async def list(self, *, tags: Mapping[str, str] | None = None) -> Sequence[Resource]:
        params = [("label", f"{k}={v}") for k, v in (tags or {}).items()]
        rows = await self._json("GET", "/jobs", params=params)
        return [self._resource(row) for row in _list(rows, "jobs")]

    async def terminate(self, resource_id: str) -> Resource:
        """Delete the job; a job Nimbus no longer knows is TERMINATED."""
        try:
            await self._call("DELETE", f"/jobs/{_quote(resource_id)}")
            return await self.get(resource_id)
        except NotFoundError:
            return Resource(
                id=resource_id, provider=NAME, state=ResourceState.TERMINATED, raw_state="deleted"
            )

    async def stop(self, resource_id: str) -> Resource:
        return self._resource(await self._json("POST", f"/jobs/{_quote(resource_id)}/stop"))

    async def start(self, resource_id: str) -> Resource:
        return self._resource(await self._json("POST", f"/jobs/{_quote(resource_id)}/start"))

    async def logs(self, resource_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        if follow:
            raise UnsupportedOperationError(
                NAME, "follow_logs", "Nimbus serves logs once a job ran"
            )
        response = await self._call("GET", f"/jobs/{_quote(resource_id)}/logs")
        for line in response.text.splitlines():
            yield line

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- wire -> model --------------------------------------------------------------------------

    def _resource(self, job: Any) -> Resource:
        try:
            raw = str(job["status"])
            rid = str(job["id"])
        except (KeyError, TypeError) as e:
            raise MalformedResponseError(f"job {job!r}", provider=NAME) from e
        exit_code = job.get("exit_code")
        state = STATES.get(raw, ResourceState.UNKNOWN)
        if raw == "exited":
            state = ResourceState.SUCCEEDED if exit_code == 0 else ResourceState.FAILED
        labels = job.get("labels") or {}
        return Resource(
            id=rid,
            provider=NAME,
            state=state,
            raw_state=raw,
            launch_id=job.get("client_token"),
            created_at=_time(job.get("created_at")),
            started_at=_time(job.get("started_at")),
            ended_at=_time(job.get("ended_at")) if state.is_terminal else None,
            exit_code=exit_code if isinstance(exit_code, int) else None,
            instance_type=job.get("machine_type"),
            tags={str(k): str(v) for k, v in labels.items()},
        )

    def __repr__(self) -> str:
        return f"<NimbusProvider {NAME!r}>"


def _list(rows: Any, what: str) -> list[Any]:
    if not isinstance(rows, list):
        raise MalformedResponseError(f"{what}: expected a list", provider=NAME)
    return rows


def _quote(resource_id: str) -> str:
    from urllib.parse import quote

    return quote(resource_id, safe="")


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
