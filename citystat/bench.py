"""`python -m citystat.bench ...`: the benchmark, run from a source checkout.

The benchmark itself lives in `devtools/bench` (with the sample-city generator it builds its
cities from), which is not part of the installed package. This launcher only runs it, by
module name, when the checkout is there; the package never imports it. Arguments are the
benchmark's own (`--requests`, `--runs`, `--kpis`, `--report`, ...; see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import importlib.util
import runpy
import sys


def main() -> int:
    if importlib.util.find_spec("devtools") is None or importlib.util.find_spec("devtools.bench") is None:
        print("the benchmark ships with CityStat's source, not with the installed package: run it from a "
              "checkout of the repository (python -m citystat.bench or python -m devtools.bench there)",
              file=sys.stderr)
        return 2
    sys.argv[0] = "python -m citystat.bench"
    try:
        runpy.run_module("devtools.bench", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
