"""``python -m bench``: run the benchmark suite (see bench/run.py and docs/benchmarks.md)."""

import sys

from bench.run import main

if __name__ == "__main__":
    try:
        results = main()
    except KeyboardInterrupt:
        sys.exit(130)  # every process the suite started has been stopped by then
    sys.exit(1 if any("error" in r for r in results) else 0)
