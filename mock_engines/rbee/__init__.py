"""Fakes of the rbee side: the mock queen (heartbeat route + registry) and a fault-capable worker.

* :func:`run_mock_queen` / :class:`MockQueen` — ``POST /v1/worker-heartbeat``, the worker
  registry with configurable interval/timeout, stale marking, faults, and state to assert on
  (:class:`QueenState`: ``workers()``, ``journal``, ``events``, ``wait_for``).
* :func:`run_mock_worker` / :class:`MockWorker` — the worker contract implemented directly, with
  named faults (:data:`WORKER_FAULTS`) for the black-box checks' self-tests.

Both run a real uvicorn server in a thread on a pre-bound loopback port (port 0 by default).
"""

from ._queen import (
    QUEEN_FAULTS,
    MockQueen,
    QueenConfig,
    QueenEvent,
    QueenState,
    ReceivedHeartbeat,
    RegisteredWorker,
    create_queen_app,
    run_mock_queen,
)
from ._worker import WORKER_FAULTS, MockWorker, MockWorkerConfig, MockWorkerServer, run_mock_worker

__all__ = [
    "QUEEN_FAULTS",
    "WORKER_FAULTS",
    "MockQueen",
    "MockWorker",
    "MockWorkerConfig",
    "MockWorkerServer",
    "QueenConfig",
    "QueenEvent",
    "QueenState",
    "ReceivedHeartbeat",
    "RegisteredWorker",
    "create_queen_app",
    "run_mock_queen",
    "run_mock_worker",
]
