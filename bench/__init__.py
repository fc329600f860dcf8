"""bench: an EV validation test-bench harness.

CAN frames in (python-can), DBC decoding (cantools), Parquet recording, verdicts against thresholds.
The command line (`bench.cli`) is a thin layer over this library; nothing here imports it.
"""

from __future__ import annotations

__version__ = "0.1.0"
