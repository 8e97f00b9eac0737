"""``python -m audiosr_core.app``: the same as ``audiosr-plug app``."""

import sys

from . import main

sys.exit(main())
