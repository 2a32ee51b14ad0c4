"""The provider kit: everything a provider needs, built-in or third-party, in one place.

A plugin author imports from here only; runctl's own providers use exactly these
pieces, so what a plugin gets is what the built-ins are tested with::

    from runctl.kit import Fields, RestProviderBase, StateTable, TAG_LAUNCH_ID

What a provider module keeps to itself is its wire calls and its facts: its
capabilities, its :class:`StateTable`, its billing rule (:class:`BillingRule`), its
GPU spellings (:class:`GpuSpellings`) and its default image. Everything else is here:

Base classes and their lifecycle (template methods)
    :class:`ProviderBase` and :class:`RestProviderBase`. Their ``launch`` looks for
    the launch id first (:meth:`~ProviderBase.find_by_launch_id`), then calls the
    provider's :meth:`~ProviderBase.create`, and recovers a create whose answer
    was lost; ``terminate`` calls :meth:`~ProviderBase.remove` and reports an id
    the provider does not know as TERMINATED; ``list(tags=)`` calls
    :meth:`~ProviderBase.list_all` and keeps what runctl launched and carries the
    tags. Public hooks to override: ``check_launch``, ``create``, ``remove``,
    ``list_all``, ``classify_error`` and ``find_api_key`` (no underscores).
    :func:`is_lost_answer` says whether a failed request may have been carried out.
Wire readers
    :class:`Fields` (lenient, typed reads of JSON objects, with secret fields
    hidden from every error), :func:`malformed` and :func:`hide_secrets`.
States
    :class:`StateTable` (raw state -> :class:`~runctl.models.ResourceState`, with the
    documented states listed) and :func:`check_state_table` for a provider's tests.
Workload wrapper
    :func:`wrap_command` and friends: the ``sh`` wrapper that makes a container's
    command report its end and exit code (see :mod:`runctl._workload`).
Tags, ids, time and numbers
    ``TAG_*`` keys, :data:`MANAGED_BY`, :func:`has_tags`, :func:`check_resource_id`,
    :func:`utcnow`, :func:`parse_timestamp`, :func:`parse_decimal`.
Pagination
    :func:`collect_pages`.
GPUs
    :class:`GpuSpellings` (a provider's own names for GPUs), :func:`normalize_gpu`,
    :func:`gpu_matches` (the core's one matcher: exact on canonical models) and
    :func:`gpu_query_model` (the model a query names, for messages).
Shell scripts
    :func:`shell_command`, :func:`export_lines`.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from ._wire import Fields, hide_secrets, malformed
from ._workload import (
    KEEP_ALIVE,
    ExitCodes,
    Marker,
    ended,
    exit_code_in,
    is_marker,
    parse_marker,
    shell_argv,
    wrap_command,
)
from .cost import BillingRule
from .errors import ValidationError
from .gpus import GpuSpellings, gpu_for_instance_type, gpu_matches, gpu_query_model, normalize_gpu
from .models import TAG_LAUNCH_ID, TAG_MANAGED_BY, TAG_NAME, TAG_TTL, ResourceState
from .provider import (
    API_VERSION,
    Availability,
    ProviderBase,
    RestProviderBase,
    is_lost_answer,
    refuse_unsupported_nodes,
)

__all__ = [
    "API_VERSION",
    "KEEP_ALIVE",
    "MANAGED_BY",
    "TAG_LAUNCH_ID",
    "TAG_MANAGED_BY",
    "TAG_NAME",
    "TAG_TTL",
    "Availability",
    "BillingRule",
    "ExitCodes",
    "Fields",
    "GpuSpellings",
    "Marker",
    "ProviderBase",
    "RestProviderBase",
    "StateTable",
    "check_resource_id",
    "check_state_table",
    "collect_pages",
    "ended",
    "exit_code_in",
    "export_lines",
    "gpu_for_instance_type",
    "gpu_matches",
    "gpu_query_model",
    "has_tags",
    "hide_secrets",
    "is_lost_answer",
    "is_marker",
    "malformed",
    "normalize_gpu",
    "parse_decimal",
    "parse_marker",
    "parse_timestamp",
    "refuse_unsupported_nodes",
    "shell_argv",
    "shell_command",
    "utcnow",
    "wrap_command",
]

#: The value of :data:`TAG_MANAGED_BY` on everything runctl launches.
MANAGED_BY = "runctl"

T = TypeVar("T")


# --- states -------------------------------------------------------------------------------------


class StateTable:
    """A provider's raw states, each mapped to runctl's :class:`~runctl.models.ResourceState`.

    Every state the provider documents is listed (``documented``), so a test can
    check that none falls through to ``UNKNOWN`` (:func:`check_state_table`). A raw
    state the table does not know reads as ``UNKNOWN``, with a detail naming it.

    Args:
        provider: the provider's name, for details.
        states: each documented raw state (``None`` for a JSON null, when the
            provider documents one) and the state it means.
        details: a short explanation shown beside some raw states.
        case_sensitive: compare raw states exactly; by default case is ignored.

    Example::

        STATES = StateTable("mycloud", {"booting": ResourceState.PROVISIONING,
                                        "active": ResourceState.RUNNING})
        STATES("ACTIVE")  # ResourceState.RUNNING
    """

    def __init__(
        self,
        provider: str,
        states: Mapping[str | None, ResourceState],
        *,
        details: Mapping[str, str] | None = None,
        case_sensitive: bool = False,
    ) -> None:
        self.provider = provider
        self.case_sensitive = case_sensitive
        self._states = {self._key(raw): state for raw, state in states.items()}
        self._details = {self._key(raw): text for raw, text in (details or {}).items()}
        #: The raw states the provider documents, in the order given.
        self.documented: tuple[str | None, ...] = tuple(states)

    def _key(self, raw: str | None) -> str | None:
        return raw if raw is None or self.case_sensitive else raw.lower()

    def __call__(self, raw: str | None) -> ResourceState:
        """runctl's state for ``raw``; ``UNKNOWN`` for a state the table does not know."""
        return self._states.get(self._key(raw), ResourceState.UNKNOWN)

    def __contains__(self, raw: object) -> bool:
        return (raw is None or isinstance(raw, str)) and self._key(raw) in self._states

    def __getitem__(self, raw: str | None) -> ResourceState:
        return self._states[self._key(raw)]

    def get(self, raw: str | None, default: ResourceState | None = None) -> ResourceState | None:
        """The state for ``raw``, or ``default`` when the table does not know it."""
        return self._states.get(self._key(raw), default)

    def items(self) -> Iterable[tuple[str | None, ResourceState]]:
        """``(raw, state)`` for every documented raw state."""
        return ((raw, self[raw]) for raw in self.documented)

    def __iter__(self) -> Iterator[str | None]:
        return iter(self.documented)

    def __len__(self) -> int:
        return len(self.documented)

    def detail(self, raw: str | None) -> str | None:
        """What to tell the user beside ``raw``: the table's note, or that it is unknown."""
        if raw not in self:
            return f"{self.provider} reported state {raw!r}, which runctl does not know"
        return self._details.get(self._key(raw)) if raw is not None else None

    def __repr__(self) -> str:
        return f"<StateTable {self.provider}: {len(self.documented)} documented states>"


def check_state_table(table: StateTable) -> None:
    """Assert that every documented raw state maps to a state other than ``UNKNOWN``.

    For a provider's tests (``runctl.testing``'s conformance kit calls it too).

    Raises:
        AssertionError: naming every documented state that maps to ``UNKNOWN``, or
            a table that documents no state at all.
    """
    if not table.documented:
        raise AssertionError(f"{table.provider}: the state table documents no state")
    unknown = [raw for raw in table.documented if table(raw) is ResourceState.UNKNOWN]
    if unknown:
        raise AssertionError(
            f"{table.provider}: documented states mapped to UNKNOWN: "
            + ", ".join(repr(raw) for raw in unknown)
        )


# --- tags and ids -------------------------------------------------------------------------------


def has_tags(carried: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    """Whether ``carried`` is runctl's (the managed-by tag) and holds every ``wanted`` tag."""
    if carried.get(TAG_MANAGED_BY) != MANAGED_BY:
        return False
    return not wanted or all(carried.get(k) == v for k, v in wanted.items())


#: What any resource id may contain: safe in a URL path, whatever the provider.
_SAFE_ID = r"[A-Za-z0-9_-]{1,128}"


def check_resource_id(
    resource_id: object, *, provider: str, what: str, pattern: str = _SAFE_ID
) -> str:
    """``resource_id`` if it can be one of this provider's ids, safe to put in a URL path.

    Args:
        resource_id: the id given by the user.
        provider: the provider's name, for the error.
        what: what it is, in the user's words, e.g. ``"RunPod pod"``.
        pattern: the regular expression a whole id of this provider matches.

    Raises:
        ValidationError: naming ``resource_id``, for an id no provider could have
            issued (a ``/``, spaces, empty ...): bad input.
        NotFoundError: for a well-formed id this provider cannot have issued (another
            provider's, say): no such resource here, as for any id it does not know
            (so ``terminate`` of it is TERMINATED).
    """
    import re

    from .errors import NotFoundError

    if not isinstance(resource_id, str) or not re.fullmatch(_SAFE_ID, resource_id):
        raise ValidationError(
            "resource_id",
            f"{resource_id!r} is not a {what} id",
            allowed=f"an id matching {pattern}",
        )
    if not re.fullmatch(pattern, resource_id):
        raise NotFoundError(f"{resource_id!r} is not a {what} id", provider=provider)
    return resource_id


# --- time and numbers ---------------------------------------------------------------------------


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, read through the time seam (:mod:`runctl.clock`)."""
    from . import clock

    return clock.now()


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed; one without a zone is UTC), or ``None``.

    ``None`` for anything that is not such a string: for timestamps a provider
    reports as extra information (log lines). Use :meth:`Fields.timestamp` for
    fields whose bad value must be an error.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_decimal(value: object, *, field: str, allowed: str = "a number") -> Decimal:
    """User input as an exact, finite :class:`~decimal.Decimal` (floats through ``repr``).

    Raises:
        ValidationError: naming ``field`` and ``allowed``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationError(field, f"{value!r} is not a number", allowed=allowed)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValidationError(field, f"{value!r} is not a number", allowed=allowed) from None
    if not number.is_finite():
        raise ValidationError(field, f"{value!r} is not finite", allowed=allowed)
    return number


# --- pagination ---------------------------------------------------------------------------------


async def collect_pages(
    fetch: Callable[[str | None], Awaitable[tuple[Sequence[T], str | None]]],
) -> list[T]:
    """Every item of a token-paged list.

    Args:
        fetch: reads one page: given the token of the page (``None`` for the first),
            returns its items and the next page's token (``None`` or empty: no more).

    A token seen before ends the walk, so a provider repeating itself cannot loop us.
    """
    found: list[T] = []
    token: str | None = None
    seen: set[str] = set()
    while True:
        items, token = await fetch(token)
        found.extend(items)
        if not token or token in seen:
            return found
        seen.add(token)


# --- shell scripts ------------------------------------------------------------------------------


def shell_command(command: Sequence[str], *, shell: bool) -> str:
    """``command`` as one ``sh`` command line.

    Args:
        command: an argv, each argument quoted so it runs as exactly that (one element
            included: never through a shell); or, with ``shell``, one shell command
            line (pipes, ``&&``), run under ``sh -c``.
        shell: the command is the shell form (``LaunchSpec.shell``).
    """
    if shell:
        (line,) = command
        return f"sh -c {shlex.quote(line)}"
    return shlex.join(command)


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines for ``env``, values quoted for ``sh``."""
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
