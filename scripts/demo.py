"""`make demo`: run the default plan on the virtual vehicle and print where the report is."""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    # Until the runner lands, the demo shows the DBC set the virtual vehicle will speak.
    return subprocess.call([sys.executable, "-m", "bench.cli", "dbc"])


if __name__ == "__main__":
    sys.exit(main())
