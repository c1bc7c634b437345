"""``python -m bench``: run the whole benchmark and write bench/results/."""

import sys

from bench.run import main

sys.exit(main())
