"""``python -m recipes.tts_enhance``: see :mod:`recipes.tts_enhance`."""

import sys

from recipes.tts_enhance import main

sys.exit(main())
