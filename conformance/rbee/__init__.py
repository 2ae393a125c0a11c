"""The rbee worker target: WKR requirement data, black-box worker checks and the ``worker-check`` runner.

* :data:`WORKER_REQUIREMENTS` — the WKR IDs this part proves (they live in
  :mod:`conformance._catalogue`; this tuple names them for callers and the coverage test);
* :class:`WorkerProbe` + the ``check_*`` functions (:data:`CHECKS`) — one black-box rule each,
  shared by the Gherkin steps and the target runner;
* :func:`run_worker_check` / :class:`WorkerCheckConfig` — ``--worker-url`` as a target, writing
  the harness's results model.
"""

from ._checks import (
    BAD_INPUT_CASES,
    CHECKS,
    CheckResult,
    WorkerProbe,
    check_bad_input,
    check_busy,
    check_health,
    check_heartbeat,
    check_infer_json,
    check_infer_stream,
    check_info,
    check_oversized,
    check_queen_down,
    parse_worker_sse,
)
from ._runner import NOT_BLACK_BOX, WorkerCheckConfig, parse_listen, run_checks, run_worker_check

#: The WKR IDs of the rbee worker contract (text, level and source in the catalogue).
WORKER_REQUIREMENTS: tuple[str, ...] = tuple(f"WKR-{n}" for n in range(1001, 1016))

__all__ = [
    "BAD_INPUT_CASES",
    "CHECKS",
    "NOT_BLACK_BOX",
    "WORKER_REQUIREMENTS",
    "CheckResult",
    "WorkerCheckConfig",
    "WorkerProbe",
    "check_bad_input",
    "check_busy",
    "check_health",
    "check_heartbeat",
    "check_infer_json",
    "check_infer_stream",
    "check_info",
    "check_oversized",
    "check_queen_down",
    "parse_listen",
    "parse_worker_sse",
    "run_checks",
    "run_worker_check",
]
