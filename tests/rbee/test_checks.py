"""The black-box worker checks: green on a healthy worker, each fault fails its WKR ID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from llorch_conformance.adapters.rbee_worker import bind_socket
from llorch_conformance.conformance._catalogue import get_requirement
from llorch_conformance.conformance._results import RunResults
from llorch_conformance.conformance.cli import main
from llorch_conformance.conformance.rbee import (
    CHECKS,
    WORKER_REQUIREMENTS,
    CheckResult,
    WorkerCheckConfig,
    WorkerProbe,
    parse_worker_sse,
    run_checks,
    run_worker_check,
)
from llorch_conformance.mock_engines.rbee import MockQueen, run_mock_queen, run_mock_worker

from .conftest import INTERVAL_S

#: fault -> (check that must fail, the WKR ID it must name)
CAUGHT = [
    ("health.wrong_body", "health", "WKR-1001"),
    ("info.missing_field;field=port", "info", "WKR-1002"),
    ("info.missing_field;field=version", "info", "WKR-1002"),
    ("info.bad_status", "info", "WKR-1009"),
    ("infer.bad_response", "infer_json", "WKR-1003"),
    ("infer.no_done", "infer_stream", "WKR-1004"),
    ("infer.event_lines", "infer_stream", "WKR-1004"),
    ("input.500", "bad_input", "WKR-1005"),
    ("input.no_error_body", "bad_input", "WKR-1005"),
    ("busy.accept", "busy", "WKR-1005"),
    ("oversize.accept", "oversized", "WKR-1011"),
    ("heartbeat.none", "heartbeat", "WKR-1007"),
    ("heartbeat.bad_timestamp", "heartbeat", "WKR-1007"),
]


def _probe(worker_url: str, queen: MockQueen) -> WorkerProbe:
    return WorkerProbe(
        worker_url,
        queen=queen,
        heartbeat_interval_s=INTERVAL_S,
        grace_s=1.0,
        request_timeout_s=10.0,
    )


def _run(faults: list[str], names: tuple[str, ...]) -> dict[str, CheckResult]:
    with (
        run_mock_queen(interval_s=INTERVAL_S, timeout_s=0.3) as q,
        run_mock_worker(
            queen_url=q.url, heartbeat_interval_s=INTERVAL_S, token_delay_s=0.01, faults=faults
        ) as w,
    ):
        results = anyio.run(run_checks, _probe(w.base_url, q), names)
    return {r.name: r for r in results}


def test_all_checks_pass_on_a_healthy_mock_worker() -> None:
    results = _run([], ())
    assert {n: r.status for n, r in results.items()} == {n: "pass" for n, _ in CHECKS}


@pytest.mark.parametrize(("fault", "check", "rid"), CAUGHT, ids=[c[0] for c in CAUGHT])
def test_a_broken_worker_fails_its_requirement(fault: str, check: str, rid: str) -> None:
    names = ("info", check) if check == "heartbeat" else (check,)
    res = _run([fault], names)[check]
    assert res.status == "fail", (fault, res)
    assert rid in res.failed, (fault, res.failed, res.message)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'data: {"token": "a"}\n\ndata: [DONE]\n\n', None),
        (b'data: {"token": "a"}\n\n', "did not end with data: [DONE]"),
        (
            b'data: {"token": "a"}\n\ndata: [DONE]\n\ndata: {"token": "b"}\n\n',
            "follows data: [DONE]",
        ),
        (b'data: {"t": "a"}\n\ndata: [DONE]\n\n', 'is not {"token": string}'),
        (b'event: token\ndata: {"token": "a"}\n\ndata: [DONE]\n\n', "event: token"),
        (b"data: hello\n\ndata: [DONE]\n\n", "not JSON"),
        (b'data: {"token": "a"}\r\n\r\ndata: [DONE]\r\n\r\n', None),
    ],
)
def test_worker_sse_grammar(raw: bytes, problem: str | None) -> None:
    tokens, problems = parse_worker_sse(raw)
    if problem is None:
        assert problems == [] and tokens == ["a"]
    else:
        assert any(problem in p for p in problems), problems


def test_every_wkr_id_is_in_the_catalogue() -> None:
    assert len(WORKER_REQUIREMENTS) == 15
    for rid in WORKER_REQUIREMENTS:
        assert get_requirement(rid).pending is None


@pytest.fixture
def free_queen_port() -> Iterator[int]:
    sock = bind_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()  # the worker-check queen binds it again (SO_REUSEADDR), a moment later
    yield port


def test_worker_check_target_writes_run_results(tmp_path: Path, free_queen_port: int) -> None:
    queen_url = f"http://127.0.0.1:{free_queen_port}"
    with run_mock_worker(
        queen_url=queen_url, heartbeat_interval_s=INTERVAL_S, token_delay_s=0.01
    ) as w:
        cfg = WorkerCheckConfig(
            w.base_url,
            ("127.0.0.1", free_queen_port),
            heartbeat_interval_s=INTERVAL_S,
            max_concurrency=4,
        )
        res = run_worker_check(cfg, tmp_path)
    assert res.exit_code() == 0, [(s.scenario, s.status, s.message) for s in res.scenarios]
    back = RunResults.read(tmp_path / "results.json")
    assert back.target["kind"] == "worker"
    by_id = {v.requirement: v.status for v in back.verdicts()}
    for rid in (
        "WKR-1001",
        "WKR-1002",
        "WKR-1003",
        "WKR-1004",
        "WKR-1005",
        "WKR-1006",
        "WKR-1007",
        "WKR-1009",
        "WKR-1011",
        "WKR-1012",
    ):
        assert by_id[rid] == "pass", rid
    for rid in ("WKR-1008", "WKR-1010", "WKR-1013", "WKR-1014", "WKR-1015"):
        assert by_id[rid] == "skipped", rid
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema"] == "llorch-conformance/results/1"
    assert (tmp_path / "worker_check.md").read_text().startswith("# AUTOGENERATED: Proof Bundle")


def test_worker_check_cli_fails_a_broken_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_mock_worker(faults=["infer.no_done"]) as w:
        rc = main(
            [
                "worker-check",
                "--worker-url",
                w.base_url,
                "--only",
                "health,infer_stream",
                "--out",
                str(tmp_path),
                "--proof-dir",
                str(tmp_path / "proof"),
            ]
        )
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL  WKR-1004" in out and "PASS  WKR-1001" in out
    assert RunResults.read(tmp_path / "results.json").failing()[0].requirement == "WKR-1004"
    (bundle,) = (tmp_path / "proof" / "conformance").iterdir()  # the same bundle 'run' writes
    assert RunResults.read(bundle / "results.json").target["kind"] == "worker"
    assert (bundle / "test_report.md").exists() or any(bundle.glob("*.md"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker-check", "--worker-url", "ftp://x"], "must be an http(s) URL"),
        (
            ["worker-check", "--worker-url", "http://127.0.0.1:1", "--queen-listen", "nohost"],
            "expected HOST:PORT",
        ),
        (["worker-check", "--worker-url", "http://127.0.0.1:1", "--only", "nope"], "unknown check"),
    ],
)
def test_worker_check_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_run_with_worker_url_is_the_worker_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_mock_worker() as w:
        rc = main(
            [
                "run",
                "--worker-url",
                w.base_url,
                "--out",
                str(tmp_path),
            ]
        )
    out = capsys.readouterr().out
    assert rc == 0, out
    (run_dir,) = (tmp_path / "conformance").iterdir()  # one output root: results in the run dir
    res = RunResults.read(run_dir / "results.json")
    assert res.target["worker_url"] == w.base_url
    statuses = {s.nodeid.rsplit("::", 1)[-1]: s.status for s in res.scenarios}
    assert statuses["health"] == "pass" and statuses["heartbeat"] == "skipped"  # no queen given


def test_a_worker_that_drops_the_stream_fails_its_requirement_not_the_harness() -> None:
    """Issue 13: a worker that breaks the exchange (here: closes the connection in the middle of
    a chunked SSE body) is the worker's failure of the check's IDs, never a harness error."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                    b'14\r\ndata: {"token": "a"}\n\r\n'
                    b"40\r\ndata: {"  # a chunk announced, never completed: the worker dies here
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        (res,) = anyio.run(run_checks, WorkerProbe(f"http://127.0.0.1:{port}"), ("infer_stream",))
    finally:
        stop.set()
        thread.join(5)
        srv.close()
    assert res.status == "fail", res
    assert res.failed == ["WKR-1004"] and "broke the exchange" in res.message, res


def test_every_check_declares_the_requirements_it_proves() -> None:
    from llorch_conformance.conformance.rbee._runner import check_requirements

    for name, fn in CHECKS:
        ids = check_requirements(fn)
        assert ids and all(i.startswith("WKR-") for i in ids), (name, ids)
