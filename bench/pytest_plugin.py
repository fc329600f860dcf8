"""pytest integration: ``pytest test_plans/`` runs each plan and reports each check as a test.

For teams whose nightly already runs pytest. A plan file becomes a collector; the plan runs once
(lockstep on the virtual vehicle unless options say otherwise) when its first check is reached,
and every check of the plan is one test item, so ``--junitxml`` gives one testcase per check and
``-k`` selects checks by name. A plan that aborts fails every check that did not get a verdict.

YAML files are only collected as plans where the user asked for it — a path named on the command
line (``pytest test_plans/``, ``pytest test_plans/heihe_cold_soak_start.yaml``) or ``--bench-plans``
— so a project's own YAML fixtures are never run by accident. Registered through the ``pytest11``
entry point of the bench distribution.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .errors import BenchError
from .liveview import NullStream

PASSING = ("pass", "marginal")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "bench test plans")
    group.addoption("--bench-plans", action="store_true",
                    help="Collect bench plan YAML files wherever pytest looks.")  # fmt: skip
    group.addoption("--bench-out", default="reports",
                    help="Root of the run directories (default: reports).")  # fmt: skip
    group.addoption(
        "--bench-config",
        default=None,
        help="Bench profile (bench.toml) for the runs. Default: $BENCH_CONFIG.",
    )
    group.addoption("--bench-interface", default=None, help="python-can interface for the runs.")
    group.addoption("--bench-channel", default=None, help="Channel for the runs.")
    group.addoption("--bench-realtime", action="store_true", help="Run on the wall clock.")
    group.addoption("--bench-seed", type=int, default=None, help="Seed of the virtual vehicle.")


def _named_on_command_line(config: pytest.Config, path: Path) -> bool:
    for arg in config.invocation_params.args:
        text = str(arg).split("::", 1)[0]
        if not text or text.startswith("-"):
            continue
        candidate = (config.invocation_params.dir / text).resolve()
        if path == candidate or candidate in path.parents:
            return True
    return False


def _looks_like_plan(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return True  # let the plan loader say what is wrong with it, as a failing test
    return isinstance(data, dict) and "checks" in data and "name" in data


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    wanted = config.getoption("--bench-plans") or _named_on_command_line(
        config, file_path.resolve()
    )
    if wanted and _looks_like_plan(file_path):
        return PlanFile.from_parent(parent, path=file_path)
    return None


class PlanFile(pytest.File):
    """One plan: runs it once, lazily, and yields one item per check."""

    def collect(self) -> Iterator[pytest.Item]:
        from .plan import load_plan

        try:
            plan = load_plan(self.path)
        except BenchError as exc:
            yield PlanError.from_parent(self, name="plan", message=str(exc))
            return
        self.plan = plan
        self._result: Any = None
        for check in plan.checks:
            yield CheckItem.from_parent(self, name=check.name, check_name=check.name)

    def result(self) -> Any:
        if self._result is None:
            from .profile import load_profile
            from .run import RunOptions, run_plan

            config = self.config
            profile_path = config.getoption("--bench-config")
            options = RunOptions(
                bench=load_profile(Path(profile_path) if profile_path else None),
                interface=config.getoption("--bench-interface"),
                channel=config.getoption("--bench-channel"),
                realtime=config.getoption("--bench-realtime"),
                seed=config.getoption("--bench-seed"),
                out_root=Path(config.getoption("--bench-out")),
                force_plain=True,
                handle_signals=False,
                stream=NullStream(),
            )
            self._result = run_plan(self.plan, options)
        return self._result


class CheckItem(pytest.Item):
    """One check of a plan; passes when its verdict is pass or marginal."""

    def __init__(self, *, check_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_name = check_name

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, PlanFile)
        result = parent.result()
        summary = result.summary
        self.user_properties.append(("run_dir", str(result.run_dir)))
        if summary is None:  # the run's directory could not be judged (its storage failed)
            raise CheckFailed(f"no verdict: {result.problem} ({result.run_dir})")
        found = next((c for c in summary.checks if c.name == self.check_name), None)
        if found is None:
            raise CheckFailed(
                f"no verdict for this check (run {summary.verdict}): {result.run_dir}"
            )
        self.user_properties.append(("verdict", found.verdict))
        if summary.verdict == "aborted" and summary.aborted is not None:
            self.user_properties.append(("aborted", summary.aborted.reason))
        if found.verdict not in PASSING:
            window = f"; first evidence {found.evidence[0]}" if found.evidence else ""
            raise CheckFailed(f"{found.verdict}: {found.message}{window} ({result.run_dir})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.parent.name}::{self.check_name}"


class PlanError(pytest.Item):
    """A plan that does not load: one failing item carrying the loader's one-line message."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise CheckFailed(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return self.message

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.parent.name}::plan"


class CheckFailed(Exception):
    """A check's verdict is not a pass; its message is the check's own one line."""
