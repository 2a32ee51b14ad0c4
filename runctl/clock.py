"""The one place runctl reads the time and waits: a seam tests drive.

Everything in runctl that stamps a time, measures an interval, sleeps between
polls or retries, or gives up after a deadline goes through this module::

    from runctl import clock

    started = clock.monotonic()
    with clock.fail_after(30):          # a deadline tests can drive
        while not done():
            await clock.sleep(0.5)      # a wait tests can skip
    resource = resource.evolve(observed_at=clock.now())

Plugin authors use the same functions, so that their provider's waits are
skipped under :class:`runctl.testing.FakeClock` too (stamina's ``set_testing``
is the model): there, sleeps return at once and advance a virtual time, and
the deadlines set through :func:`fail_after` / :func:`move_on_after` fire when
that virtual time reaches them. ``anyio.fail_after`` cannot be driven so: it
reads the event loop's own clock.

Outside a test, :func:`now` is the UTC wall clock, :func:`monotonic` is
:func:`time.monotonic`, :func:`sleep` is :func:`anyio.sleep` and the deadlines
are anyio's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import anyio

__all__ = [
    "Clock",
    "SystemClock",
    "fail_after",
    "monotonic",
    "move_on_after",
    "now",
    "sleep",
]


@runtime_checkable
class Clock(Protocol):
    """What a clock provides: the time, an interval clock, a sleep and a deadline."""

    def now(self) -> datetime:
        """The current time, as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    def move_on_after(
        self, delay: float | None, *, shield: bool = False
    ) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope cancelled ``delay`` seconds from now (``None``: never)."""
        ...


class SystemClock:
    """The real clock: UTC wall time, :func:`time.monotonic`, anyio's sleep and deadlines."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)

    def move_on_after(
        self, delay: float | None, *, shield: bool = False
    ) -> AbstractContextManager[anyio.CancelScope]:
        import anyio

        return anyio.move_on_after(delay, shield=shield)

    def __repr__(self) -> str:
        return "SystemClock()"


_SYSTEM = SystemClock()
_active: Clock = _SYSTEM


def _install(clock: Clock | None) -> Clock:
    """Make ``clock`` the one runctl uses (``None``: the system clock); returns the previous.

    Used by :class:`runctl.testing.FakeClock`; a process has one clock at a time.
    """
    global _active
    previous = _active
    _active = clock if clock is not None else _SYSTEM
    return previous


def current() -> Clock:
    """The clock runctl uses now: the system clock, or a test's fake."""
    return _active


def now() -> datetime:
    """The current time, as an aware UTC datetime."""
    return _active.now()


def monotonic() -> float:
    """Seconds on a clock that never goes back; only differences mean anything."""
    return _active.monotonic()


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` (at once, advancing virtual time, under a test's fake clock)."""
    await _active.sleep(seconds)


def move_on_after(
    delay: float | None, *, shield: bool = False
) -> AbstractContextManager[anyio.CancelScope]:
    """Like :func:`anyio.move_on_after`, on runctl's clock.

    Args:
        delay: seconds until the scope is cancelled; ``None`` or infinity: never.
        shield: shield the body from cancellation by enclosing scopes.
    """
    if delay is not None and math.isinf(delay):
        delay = None
    return _active.move_on_after(delay, shield=shield)


@contextmanager
def fail_after(delay: float | None, *, shield: bool = False) -> Iterator[anyio.CancelScope]:
    """Like :func:`anyio.fail_after`, on runctl's clock: ``TimeoutError`` once ``delay`` passes.

    Args:
        delay: seconds allowed; ``None`` or infinity: no limit.
        shield: shield the body from cancellation by enclosing scopes.

    Raises:
        TimeoutError: the body was still running when the deadline came.
    """
    with move_on_after(delay, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TimeoutError
