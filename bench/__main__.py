"""Run every benchmark module in this package (any `bench/*.py` with a `main()`), in name order.

Each benchmark prints its own numbers and ratios; a failing one is reported and the rest still
run, and the exit status is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_") and not m.ispkg
    )


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    failed: list[str] = []
    for name in discover():
        if wanted and name not in wanted:
            continue
        print(f"== bench.{name} ==", flush=True)
        t0 = time.perf_counter()
        try:
            entry = getattr(importlib.import_module(f"bench.{name}"), "main", None)
            if not callable(entry):
                print("(no main(), skipped)")
                continue
            rc = entry()
        except Exception:
            traceback.print_exc()
            rc = 1
        print(f"== bench.{name} done in {time.perf_counter() - t0:.1f}s ==\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
