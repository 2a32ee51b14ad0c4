"""Termination signals as Ctrl-C, so a killed host program still tears down what it launched.

Python turns SIGINT into :class:`KeyboardInterrupt`, which runctl's clients
handle: a launch in flight is undone and a ``with rc.launch(spec)`` block
terminates its resource. SIGTERM (what ``kill``, systemd, Docker, Kubernetes
and Slurm send) and SIGHUP (a closed terminal or SSH session) kill the process
outright instead, and whatever it launched bills on. :func:`interrupt_on_signals`
makes them behave like Ctrl-C for the duration of a ``with`` block::

    with runctl.interrupt_on_signals(), runctl.Client() as rc:
        with rc.launch(spec) as res:
            rc.wait(res, until="finished")

The ``runctl`` command does this for every command and exits ``128 + N`` after
signal ``N`` (143 after SIGTERM, 129 after SIGHUP), as shells report it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["SignalInterrupt", "interrupt_on_signals"]

logger = logging.getLogger("runctl")


class SignalInterrupt(KeyboardInterrupt):
    """A termination signal received inside :func:`interrupt_on_signals`.

    A :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` cleanup
    (runctl's included) runs for it as for Ctrl-C.

    Attributes:
        signum: the signal's number.
        exit_code: the conventional exit status after it, ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"received {signal.Signals(signum).name}")


def _default_signals() -> tuple[int, ...]:
    names = ("SIGTERM", "SIGHUP")  # SIGHUP does not exist on Windows
    return tuple(int(getattr(signal, n)) for n in names if hasattr(signal, n))


@contextmanager
def interrupt_on_signals(signals: Sequence[int] | None = None) -> Iterator[None]:
    """Raise :class:`SignalInterrupt` in the main thread when one of ``signals`` arrives.

    Only the first signal raises; later ones are logged and ignored, so that the
    cleanup the first one started (terminating what was launched) is not cut
    short. Ctrl-C still interrupts as usual. The previous handlers are restored
    when the block exits.

    Args:
        signals: the signal numbers (default: SIGTERM and SIGHUP where they exist).

    Raises:
        RuntimeError: called outside the main thread (Python delivers signals there only).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("interrupt_on_signals() works in the main thread only")
    wanted = _default_signals() if signals is None else tuple(int(s) for s in signals)
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            logger.warning(
                "runctl: %s received again; still cleaning up after %s",
                signal.Signals(signum).name, signal.Signals(received[0]).name,
            )
            return
        received.append(signum)
        raise SignalInterrupt(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in wanted:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
