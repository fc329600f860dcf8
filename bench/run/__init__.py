"""Run a plan: drive the bus step by step, record everything, stop safely, then judge the log.

The runner as small parts, as OpenHTF separates its test executor, phase executor, state and
record:

* :mod:`~bench.run.options` — what a run is asked (:class:`RunOptions`) and gives back
  (:class:`RunResult`), and why it stops early (:class:`StopRun`);
* :mod:`~bench.run.wiring` — buses, message routes, the virtual vehicle, instruments;
* :mod:`~bench.run.pacing` — one lockstep pacer and one wall-clock pacer;
* :mod:`~bench.run.pump` — frames to and from the buses, the recorder and the live monitor;
* :mod:`~bench.run.steps` — one handler per step kind, in a registry;
* :mod:`~bench.run.cyclic` — cyclic send tasks (python-can; the kernel's BCM on SocketCAN);
* :mod:`~bench.run.safe_state` — the safe state, sent and held;
* :mod:`~bench.run.recording` — frames and events, and storage faults;
* :mod:`~bench.run.state` — the state of one run; :mod:`~bench.run.status` — the live status;
* :mod:`~bench.run.executor` — the run from start to verdict (:func:`run_plan`).
"""

from .executor import Executor, run_plan
from .options import RunOptions, RunResult, StopRun

__all__ = ["Executor", "RunOptions", "RunResult", "StopRun", "run_plan"]
