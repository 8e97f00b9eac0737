"""``python -m audiosr_core`` is the ``audiosr-plug`` command."""

import sys

from .cli import main

sys.exit(main())
