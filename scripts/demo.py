"""`make demo`: run the default plan on the virtual vehicle and print where the report is."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.errors import BenchError
from bench.plan import load_plan
from bench.run import RunOptions, run_plan

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "test_plans" / "heihe_cold_soak_start.yaml"


def main(argv: list[str]) -> int:
    plan_path = Path(argv[0]) if argv else DEFAULT_PLAN
    try:
        result = run_plan(load_plan(plan_path), RunOptions())
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if result.summary is None:
        print(f"bench: error: {result.problem}", file=sys.stderr)
        return result.exit_code
    report = result.run_dir / "report.html"
    print()
    print(f"Verdict: {result.summary.verdict.upper()}  ({len(result.summary.checks)} checks)")
    print(f"Report:  {report.resolve()}")
    print(f"Run dir: {result.run_dir.resolve()}  (re-evaluate: bench evaluate {result.run_dir} "
          f"--plan {result.run_dir}/plan.yaml)")  # fmt: skip
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
