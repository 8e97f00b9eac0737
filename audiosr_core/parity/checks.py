"""One comparison of a parity run, and the report printed for a list of them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Check:
    """``error`` (max abs difference, or the rule's measure) against ``tolerance``."""

    stem: str
    name: str
    mode: str
    error: float
    tolerance: float | str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error <= (self.tolerance if isinstance(self.tolerance, float) else 0.0)


def print_report(checks: Sequence[Check], stream: TextIO = sys.stdout) -> bool:
    """Print one line per check and a total; True if every check passed (and there was one)."""
    print(f"{'input':<20} {'array':<26} {'mode':<9} {'max abs err':>12} {'tolerance':>10}",
          file=stream)
    for c in checks:
        tol = c.tolerance if isinstance(c.tolerance, str) else f"{c.tolerance:.0e}"
        flag = "ok" if c.ok else "FAIL"
        print(f"{c.stem:<20} {c.name:<26} {c.mode:<9} {c.error:>12.3e} {tol:>10}  {flag}"
              f"{'  ' + c.detail if c.detail else ''}", file=stream)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed", file=stream)
    return bool(checks) and not failed
