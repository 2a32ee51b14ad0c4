"""Canonical accelerators and the mapping from each provider's spelling to them.

(First cut: the cost work replaces this with the full table in runctl/data/.)
"""

from __future__ import annotations

from .models import Gpu

__all__ = ["normalize_gpu"]


def normalize_gpu(raw: str, *, provider: str | None = None) -> Gpu:
    """Map a provider's accelerator name to runctl's canonical :class:`Gpu`.

    Never raises for an unknown name: returns ``Gpu(model="unknown", raw=raw)``.
    """
    return Gpu(model="unknown", raw=raw)
