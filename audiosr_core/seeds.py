"""Seeds: the one way a seed is drawn and the one way seeds are derived from a seed.

Example
-------
>>> from audiosr_core.seeds import derive_seed
>>> derive_seed(42, "window", 1)         # window 1 of a file enhanced with seed 42
775909526
>>> derive_seed(0, "audioldm", 3)        # item 3 of generator "audioldm" in a study
56328232
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["SEED_BITS", "fresh_seed", "derive_seed"]

SEED_BITS = 31
"""Seeds are non-negative integers below ``2**31`` (any library takes them)."""


def fresh_seed() -> int:
    """A new random seed from the operating system's entropy."""
    return secrets.randbits(SEED_BITS)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A seed for the part named ``keys`` of a job seeded with ``seed``.

    The first 31 bits of SHA-256 of ``"seed/key1/key2/..."``: stable across runs, platforms,
    library versions and processes, and independent for different keys.

    Parameters
    ----------
    seed : int
        The job's seed.
    keys : int or str
        What the part is (a window index; a generator name and an item index; ...).
    """
    text = "/".join(str(part) for part in (int(seed), *keys))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") & ((1 << SEED_BITS) - 1)
