"""The virtual clock behind :class:`runctl.testing.FakeClock` (re-exported there)."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import TracebackType

import anyio
import anyio.lowlevel

from . import clock as _clock

__all__ = ["FakeClock"]



class _Timer:
    __slots__ = ("dead", "fired", "scope")

    def __init__(self, scope: anyio.CancelScope | None) -> None:
        self.scope = scope
        self.fired = False
        self.dead = False


class FakeClock:
    """A virtual clock for tests: sleeps return at once, deadlines fire on virtual time.

    While installed (``with FakeClock() as clock:``, or the ``fake_clock`` pytest
    fixture), :mod:`runctl.clock` answers from it, so every wait in runctl and in
    providers written on the seam costs no real time, and a test reads the same
    on a loaded machine as on an idle one::

        with FakeClock() as clock:
            with runctl.clock.fail_after(0.05):   # fires when virtual time reaches 0.05
                await launch_that_sleeps_one_second()
        assert clock.monotonic() == 0.05

    Time moves only in sleeps. A sleeping task first lets every other ready task
    run (a few scheduler passes, so things due "now" happen before time moves),
    then moves time to the earliest due timer, its own or another task's sleep or
    deadline, and fires it; concurrent sleeps therefore end in the order of their
    virtual wake-up times, as they would on a real clock. Real I/O takes no
    virtual time, and a deadline fires only when some task sleeps up to it (or the
    test calls :meth:`advance`): a task that waits on anything else under a
    deadline needs a sleeper beside it. Nor does it suit a test whose fake backend
    acts in real time (a thread that carries out a request late): a window the code
    waits through in virtual time then takes no real time, and misses it. Works
    under asyncio and trio.

    Args:
        start: the virtual wall time at 0 (default: the real time when the clock is made;
            give a fixed one for reproducible stamps).
        passes: scheduler passes a sleeper yields before it moves time.
    """

    def __init__(self, *, start: datetime | None = None, passes: int = 5) -> None:
        if start is None:
            # The real time: fakes of provider APIs stamp their records with it, and a
            # virtual "now" before their stamps would make finished things look future.
            start = datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self._start = start.astimezone(timezone.utc)
        self._t = 0.0
        self._passes = passes
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._previous: _clock.Clock | None = None
        #: Every sleep asked for, in seconds, in order (the waits a test may assert on).
        self.sleeps: list[float] = []

    # --- the Clock protocol -------------------------------------------------------------------

    def now(self) -> datetime:
        """Virtual wall time: ``start`` plus the virtual seconds passed."""
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        return self._t

    async def sleep(self, seconds: float) -> None:
        """Return once virtual time reaches now + ``seconds``; no real wait."""
        self.sleeps.append(seconds)
        if not seconds > 0:  # 0, negative or NaN: a checkpoint, as anyio.sleep(0)
            await anyio.lowlevel.checkpoint()
            return
        if math.isinf(seconds):
            await anyio.sleep_forever()
        timer = self._push(self._t + seconds, None)
        try:
            while not timer.fired:
                for _ in range(self._passes):
                    await anyio.lowlevel.checkpoint()
                    if timer.fired:  # woken by another sleeper: go on at once
                        return
                self._fire_next()
        finally:
            timer.dead = True

    @contextmanager
    def move_on_after(
        self, delay: float | None, *, shield: bool = False
    ) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled when virtual time reaches now + ``delay``."""
        scope = anyio.CancelScope(shield=shield)
        if delay is None:
            with scope:
                yield scope
            return
        timer = self._push(self._t + max(delay, 0.0), scope)
        try:
            with scope:
                if delay <= 0:
                    self._fire(timer)
                yield scope
        finally:
            timer.dead = True

    # --- driving it ---------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, firing every sleep and deadline due."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._t + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if not (timer.dead or timer.fired):
                self._t = max(self._t, when)
                self._fire(timer)
        self._t = max(self._t, target)

    def _push(self, when: float, scope: anyio.CancelScope | None) -> _Timer:
        timer = _Timer(scope)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def _fire_next(self) -> None:
        while self._timers:
            when, _, timer = heapq.heappop(self._timers)
            if timer.dead or timer.fired:
                continue
            self._t = max(self._t, when)
            self._fire(timer)
            return

    @staticmethod
    def _fire(timer: _Timer) -> None:
        timer.fired = True
        if timer.scope is not None:
            timer.scope.cancel()

    # --- installing it ------------------------------------------------------------------------

    def __enter__(self) -> FakeClock:
        if self._previous is not None:
            raise RuntimeError("this FakeClock is already installed")
        self._previous = _clock._install(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        previous, self._previous = self._previous, None
        _clock._install(previous)

    def __repr__(self) -> str:
        return f"FakeClock(t={self._t:g}s, now={self.now().isoformat()})"
