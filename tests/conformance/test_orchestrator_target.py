"""``llorch-conformance run --orchestrator-url``: the facade scenarios judged black-box over HTTP.

The real facade runs as its own process (``llorch-conformance orchestrator --port 0``, the bound
port read from its start-up line); broken facades are tiny Starlette apps served in-process by
``ServerThread``. The run itself is always the CLI in a subprocess, so exit codes, the results
file and the one-line usage errors are what a user sees. The API token travels only in the
environment and must never show up in the results or the run's output.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from llorch_conformance.adapters.orchestrator._server import ServerThread
from llorch_conformance.conformance import RunResults

from ._cli import cli_env, run_cli, run_results

pytest_plugins = ["pytester"]

TOKEN = "orch-target-token-0123456789abcdef"
START_LIMIT_S = 30.0


def _env(**extra: str) -> dict[str, str]:
    return cli_env(drop=("LLORCH_API_TOKEN", "ORCH_TOKEN"), **extra)


def run(
    *args: str, env: dict[str, str], timeout: float = 180.0
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, in a scratch cwd (runs write under the cwd), bounded in time."""
    return run_cli(*args, timeout=timeout, env=env)


@pytest.fixture
def orchestrator() -> Iterator[str]:
    """The real facade over the mock adapter, with a bearer token, on a port the OS picked."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", "orchestrator", "--port", "0",
         "--bind", "default/r0=mock", "--bind", "gpu/r0=mock"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(LLORCH_API_TOKEN=TOKEN),
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
    try:
        try:
            first = lines.get(timeout=START_LIMIT_S)
        except queue.Empty:
            pytest.fail("the orchestrator printed no start-up line")
        m = re.search(r" on (http://\S+) ", first)
        assert m, (
            f"unexpected start-up line {first!r}; stderr: {proc.stderr.read() if proc.poll() is not None and proc.stderr else ''}"
        )
        # The socket listens before the line is printed: the URL is usable now.
        yield m.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _by_requirement(results: RunResults) -> dict[str, str]:
    return {v.requirement: v.status for v in results.verdicts() if v.adapter == "orchestrator"}


def test_real_facade_passes_and_reports_what_it_cannot_control(
    orchestrator: str, tmp_path: Path
) -> None:
    proc = run(
        "run", "--orchestrator-url", orchestrator, "--out", str(tmp_path),
        "-j", "1", "--no-progress", "--no-bundle",
        env=_env(LLORCH_API_TOKEN=TOKEN),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = run_results(tmp_path)
    verdicts = _by_requirement(results)
    for rid in (
        "SSE-1002", "SSE-1005", "ORCH-3408", "ORCH-3409", "AUTH-1001", "AUTH-1003", "AUTH-1005",
        "OC-METRICS-7101", "OC-METRICS-7102", "ADAPT-3000",
    ):  # fmt: skip
        assert verdicts.get(rid) == "pass", (rid, verdicts.get(rid))
    assert not [s.scenario for s in results.scenarios if s.status == "error"]
    # Nothing silently skipped: a skip is only a dialect scenario no orchestrator speaks.
    for s in results.scenarios:
        if s.status == "skipped":
            assert s.message.startswith("not applicable"), (s.scenario, s.message)
    facade = [s for s in results.scenarios if "/orchestrator/" in s.feature]
    by_name = {s.scenario: s for s in facade}
    needs_engine = [
        "The facade flushes each event as it comes",
        "Cancel through the facade stops tokens and closes the upstream connection",
        "No token is dropped on a long stream",
    ]
    for name in needs_engine:
        s = by_name[name]
        assert s.status == "unsupported", (name, s.status, s.message)
        assert f"orchestrator at {orchestrator}" in s.message and "fault control" in s.message
    logs = by_name["The facade logs identities by token fingerprint, never the token"]
    assert logs.status == "unsupported" and "logs" in logs.message
    rules = by_name["The facade's bind and token rules"]
    assert rules.status == "unsupported" and "not of the orchestrator under test" in rules.message
    host = [s for s in results.scenarios if "/host/" in s.feature]
    assert host and all(
        s.status == "unsupported" and "in-process adapter host" in s.message for s in host
    )
    assert results.target["targets"][0]["orchestrator_url"] == orchestrator
    # The token is read from the environment and never written out.
    blob = (
        next((tmp_path / "conformance").glob("*/results.json")).read_text("utf-8")
        + proc.stdout
        + proc.stderr
    )
    assert TOKEN not in blob


def test_orchestrator_pool_is_where_the_tasks_go(orchestrator: str, tmp_path: Path) -> None:
    """``--orchestrator-pool gpu``: health/capabilities of that pool, and tasks pinned to it."""
    proc = run(
        "run", "--orchestrator-url", orchestrator, "--orchestrator-pool", "gpu",
        "--requirement", "SSE-1002", "--out", str(tmp_path), "-j", "1", "--no-progress",
        "--no-bundle",
        env=_env(LLORCH_API_TOKEN=TOKEN),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert _by_requirement(run_results(tmp_path))["SSE-1002"] == "pass"
    # /metrics needs the token when the facade has one (issue 16 item 7)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    metrics = httpx.get(f"{orchestrator}/metrics", headers=auth, timeout=10).text
    enqueued = {
        s.labels["pool_id"]: s.value
        for fam in text_string_to_metric_families(metrics)
        for s in fam.samples
        if s.name == "tasks_enqueued_total"
    }
    assert enqueued.get("gpu", 0) >= 1 and "default" not in enqueued, enqueued


def _broken_facade(flaw: str) -> Starlette:
    """A facade with one deliberate flaw: ``token_after_end`` or ``any_token``."""
    admitted: dict[str, dict[str, Any]] = {}

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return flaw == "any_token" or header == f"Bearer {TOKEN}"

    def refused(request: Request) -> Response:
        missing = "authorization" not in request.headers
        message = "MISSING_TOKEN" if missing else "BAD_TOKEN"
        return JSONResponse({"code": message, "message": message}, status_code=401)

    async def enqueue(request: Request) -> Response:
        if not authorised(request):
            return refused(request)
        body = await request.json()
        if not isinstance(body.get("ctx"), int) or body["ctx"] < 0:
            return JSONResponse({"code": "INVALID_PARAMS", "message": "ctx"}, status_code=400)
        admitted[body["task_id"]] = body
        return JSONResponse(
            {"task_id": body["task_id"], "queue_position": 0, "predicted_start_ms": 0},
            status_code=202,
        )

    async def stream(request: Request) -> Response:
        task = admitted.pop(request.path_params["task_id"], None)
        if task is None:
            return JSONResponse({"code": "INVALID_PARAMS", "message": "unknown"}, status_code=404)
        n = int(task.get("max_tokens") or 4)

        async def frames() -> AsyncIterator[bytes]:
            def frame(kind: str, data: dict[str, Any]) -> bytes:
                return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

            yield frame("started", {"queue_position": 0, "predicted_start_ms": 0})
            for i in range(n):
                yield frame("token", {"t": f"w{i} ", "i": i})
            yield frame("end", {"tokens_out": n, "decode_time_ms": 1, "stop_reason": "length"})
            if flaw == "token_after_end":
                yield frame("token", {"t": "late", "i": n})

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def cancel(request: Request) -> Response:
        return Response(status_code=204) if authorised(request) else refused(request)

    async def capabilities(request: Request) -> Response:
        if not authorised(request):
            return refused(request)
        engine = {"engine": "vllm", "engine_version": "broken-1", "pool_id": "default"}
        return JSONResponse({"api_version": "1.0.0", "engines": [engine]})

    async def health(request: Request) -> Response:
        return JSONResponse({"live": True, "ready": True})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse("")

    return Starlette(
        routes=[
            Route("/v1/tasks", enqueue, methods=["POST"]),
            Route("/v1/tasks/{task_id}/stream", stream, methods=["GET"]),
            Route("/v1/tasks/{task_id}/cancel", cancel, methods=["POST"]),
            Route("/v1/capabilities", capabilities, methods=["GET"]),
            Route("/v1/pools/{pool_id}/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


@pytest.mark.parametrize(
    ("flaw", "requirement", "blamed"),
    [
        ("token_after_end", "SSE-1002", ["SSE-1002"]),
        # the auth step judges the single privilege level (AUTH-1005) with the token check
        ("any_token", "AUTH-1001", ["AUTH-1001", "AUTH-1005"]),
    ],
)
def test_broken_facade_fails_the_right_requirement(
    flaw: str, requirement: str, blamed: list[str], tmp_path: Path
) -> None:
    with ServerThread(_broken_facade(flaw)) as srv:
        proc = run(
            "run", "--orchestrator-url", srv.base_url, "--orchestrator-token-env", "ORCH_TOKEN",
            "--requirement", requirement, "--out", str(tmp_path), "-j", "1", "--no-progress",
            "--no-bundle",
            env=_env(ORCH_TOKEN=TOKEN),
        )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = run_results(tmp_path)
    failed = [s for s in results.scenarios if s.status == "fail"]
    assert failed, [(s.scenario, s.status, s.message) for s in results.scenarios]
    assert all(s.failed_requirements == blamed for s in failed), [
        (s.scenario, s.failed_requirements, s.message) for s in failed
    ]
    assert "FAIL [orchestrator]" in proc.stdout and f"{requirement} (MUST)" in proc.stdout
    # Streamed tasks name the engine the pool lists in /v1/capabilities, not a placeholder.
    streamed = [s for s in results.scenarios if (s.evidence.get("request") or {}).get("engine")]
    assert all(s.evidence["request"]["engine"] == "vllm" for s in streamed)
    assert streamed or flaw == "any_token"  # the auth scenario streams nothing


def _refusing_port() -> socket.socket:
    """A bound socket that does not listen: connecting to it is refused, deterministically."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


def _not_an_orchestrator() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


def _one_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]


def test_unreachable_or_wrong_orchestrator_is_one_clear_line(orchestrator: str) -> None:
    env = _env(LLORCH_API_TOKEN=TOKEN)
    sock = _refusing_port()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _one_line(run("run", "--orchestrator-url", url, env=env), "cannot reach the orchestrator")
    finally:
        sock.close()
    _one_line(run("run", "--orchestrator-url", "ftp://x", env=env), "must be an http(s) URL")
    _one_line(
        run("run", "--orchestrator-url", "http://me:secret@127.0.0.1:1", env=env),
        "no credentials in the URL",
    )
    _one_line(
        run("run", "--orchestrator-url", orchestrator, "--worker-url", orchestrator, env=env),
        "pick one",
    )
    _one_line(
        run("run", "--orchestrator-url", orchestrator, "--dialect", "vllm", env=env),
        "drop --dialect",
    )
    with ServerThread(_not_an_orchestrator()) as srv:
        _one_line(
            run("run", "--orchestrator-url", srv.base_url, env=env), "not an orchestrator facade"
        )
    _one_line(
        run("run", "--orchestrator-url", orchestrator, "--orchestrator-pool", "nope", env=env),
        "--orchestrator-pool 'nope'",
    )
    wrong = _env(LLORCH_API_TOKEN="not-the-token-0123456789")
    _one_line(run("run", "--orchestrator-url", orchestrator, env=wrong), "refused the token")
    _one_line(run("run", "--orchestrator-url", orchestrator, env=_env()), "wants a token")


def test_plugin_option_runs_the_target_in_a_vendors_pytest(
    orchestrator: str, pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--llorch-orchestrator-url`` in a plain pytest run, across xdist workers (which do not
    probe the URL again; the controller did)."""
    monkeypatch.setenv("LLORCH_API_TOKEN", TOKEN)
    results = tmp_path / "results.json"
    result = pytester.runpytest_subprocess(
        "--llorch-suite", "--llorch-orchestrator-url", orchestrator,
        "--llorch-requirement", "ORCH-3408", "--llorch-requirement", "AUTH-1001",
        "--llorch-results", str(results), "-p", "no:cacheprovider", "-n", "2",
        timeout=120,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-2000:]
    data = json.loads(results.read_text("utf-8"))
    statuses = {s["scenario"]: s["status"] for s in data["scenarios"]}
    assert statuses, result.stdout.str()[-2000:]
    passed = {r for s in data["scenarios"] if s["status"] == "pass" for r in s["requirements"]}
    assert {"ORCH-3408", "AUTH-1001"} <= passed, statuses
    assert all(s["adapter"] in ("orchestrator", "*") for s in data["scenarios"])
