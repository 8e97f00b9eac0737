"""``python -m recipes.generate_and_enhance``: see :mod:`recipes.generate_and_enhance`."""

import sys

from recipes.generate_and_enhance import main

sys.exit(main())
