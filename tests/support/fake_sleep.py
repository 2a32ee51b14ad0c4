"""A stand-in for ``anyio.sleep`` that providers take as their ``sleep`` seam."""

from __future__ import annotations

import anyio

__all__ = ["Sleeps"]


class Sleeps:
    """Records every wait the provider asks for, and waits only a moment.

    Args:
        cap: the longest real wait, in seconds.
    """

    def __init__(self, cap: float = 0.05) -> None:
        self.calls: list[float] = []
        self.cap = cap

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.sleep(min(seconds, self.cap))
