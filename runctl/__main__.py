"""``python -m runctl`` is the ``runctl`` command."""

import sys

from .cli import main

sys.exit(main())
