"""runctl's built-in providers, one module each, registered through entry points.

This package is also what ``runctl.providers`` names, and it is callable:
``runctl.providers()`` lists every registered provider (see
:func:`runctl.registry.providers`). Python sets ``runctl.providers`` to this
package as soon as any provider module is imported, so rather than let the
package shadow the function depending on import order, the package forwards
calls to it. Importing the package imports no provider module.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..registry import ProviderInfo


class _ProvidersPackage(types.ModuleType):
    def __call__(self, *, check: bool = True) -> Sequence[ProviderInfo]:
        from ..registry import providers

        return providers(check=check)


sys.modules[__name__].__class__ = _ProvidersPackage
