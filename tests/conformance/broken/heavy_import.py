"""A Nimbus variant whose module imports a cloud SDK at import time, when it is installed."""

from __future__ import annotations

from runctl_nimbus import NimbusProvider

try:  # the mistake: at module level, so listing providers pays for the SDK
    import kubernetes  # noqa: F401
except ImportError:
    pass


class HeavyImport(NimbusProvider):
    """Otherwise correct."""
