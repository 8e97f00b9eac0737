"""``python -m recipes.build_corpus``: see :mod:`recipes.build_corpus.build_corpus`."""

import sys

from recipes.build_corpus.build_corpus import main

sys.exit(main())
