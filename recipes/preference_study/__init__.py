"""Plug-and-play preference study: blind A/B listening test of generator output with and without
enhancement. Run ``python -m recipes.preference_study --help`` (see README.md)."""
