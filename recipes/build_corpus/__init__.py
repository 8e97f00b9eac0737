"""The ``lite`` training corpus from real recordings in Debian packages.

Run ``python -m recipes.build_corpus --help`` from the repository root; the code is in
:mod:`recipes.build_corpus.build_corpus` and the README beside it explains the sources.
"""
