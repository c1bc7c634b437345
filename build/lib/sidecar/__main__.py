"""``python -m sidecar``: the same as the ``statelock`` command."""

import sys

from sidecar.cli import main

sys.exit(main())
