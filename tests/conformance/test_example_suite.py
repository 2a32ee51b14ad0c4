"""The example plugin's own tests (docs/examples/runctl-nimbus/tests), collected here.

They use the kit as a pytest class (``runctl.testing.ProviderConformance``) the
way a plugin author does; running them in this process keeps that path tested
without a second interpreter.
"""

from __future__ import annotations

import importlib.util

from .conftest import EXAMPLE

_spec = importlib.util.spec_from_file_location(
    "runctl_nimbus_example_tests", EXAMPLE / "tests" / "test_conformance.py"
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

# The class and the module-level fixtures it uses.
TestNimbusConforms = _module.TestNimbusConforms
anyio_backend = _module.anyio_backend
fake = _module.fake
