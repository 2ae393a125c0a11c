"""replay: rerun with the recorded seed/configuration and report any transcript difference."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from llorch_conformance.reports._replay import compare, normalise_events, replay_params

from . import _factory as f


def test_clock_and_run_dependent_values_are_not_differences() -> None:
    a = f.results()
    b = copy.deepcopy(a)
    st = b.scenarios[0].evidence["streams"][0]
    for rec in st["transcript"]:
        rec["t_ms"] += 3.0
        if rec["kind"] == "end":
            rec["data"]["decode_time_ms"] = 99
    st["transcript"].insert(
        -1, {"t_ms": 1.0, "kind": "metrics", "data": {"latency_first_token_ms": 5, "tokens_out": 3}}
    )
    a.scenarios[0].evidence["streams"][0]["transcript"].insert(
        -1, {"t_ms": 2.0, "kind": "metrics", "data": {"latency_first_token_ms": 9, "tokens_out": 3}}
    )
    n, diffs = compare(a, b)
    assert n == 2 and diffs == []


def test_token_status_and_missing_differences_are_reported() -> None:
    a = f.results()
    b = copy.deepcopy(a)
    b.scenarios[0].evidence["streams"][0]["transcript"][2]["data"]["t"] = "XX"
    b.scenarios[1].status = "fail"
    b.scenarios[1].failed_requirements = ["ADAPT-3001"]
    extra = f.scenario("only in replay")
    b.scenarios.append(extra)
    _, diffs = compare(a, b)
    got = {(d.scenario.split(" :: ")[0], d.what) for d in diffs}
    assert got == {
        ("llamacpp", "events"),
        ("vllm", "status"),
        ("vllm", "failed_requirements"),
        ("llamacpp", "extra"),
    }
    ev = next(d for d in diffs if d.what == "events")
    assert "first difference at event 2" in ev.detail and '"XX"' in ev.detail
    _, missing = compare(b, a)
    assert any(d.what == "missing" for d in missing)


def test_retry_after_is_a_promise_not_a_measurement() -> None:
    ev1 = f.evidence()
    ev1["streams"][0]["transcript"][-1] = {
        "t_ms": 1,
        "kind": "error",
        "data": {"code": "POOL_UNAVAILABLE", "retry_after_ms": 1000},
    }
    ev2 = copy.deepcopy(ev1)
    ev2["streams"][0]["transcript"][-1]["data"]["retry_after_ms"] = 2000
    assert normalise_events(ev1) != normalise_events(ev2)


def test_params_come_from_results_checked(tmp_path: Path) -> None:
    res = f.results()
    res.target["requirements"] = ["ADAPT-3001"]
    res.write(tmp_path / "results.json")
    p = replay_params(tmp_path)
    assert p == {
        "only": ["llamacpp", "vllm"],
        "requirements": ["ADAPT-3001"],
        "level": "should",
        "scope": "all",
        "select": sorted({s.nodeid.split("::", 1)[-1] for s in res.scenarios}),
        "seed": 7,
    }
    # the recorded selection may narrow level and scope; the seed is the run's; nothing else
    # of run_suite (pytest_args, adapter spec, URLs, env names) is taken
    (tmp_path / "run_config.json").write_text(
        json.dumps(
            {
                "run_suite": {
                    "only": ["tgi"],
                    "seed": 1,
                    "level": "must",
                    "scope": "adapter",
                    "pytest_args": ["-p", "evil"],
                    "orchestrator_token_env": "HOME",
                }
            }
        )
    )
    p = replay_params(tmp_path)
    assert p["only"] == ["llamacpp", "vllm"] and p["seed"] == 7
    assert p["level"] == "must" and p["scope"] == "adapter"
    assert not {"pytest_args", "orchestrator_token_env", "adapter"} & set(p)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    env["LLORCH_PROOF_DIR"] = str(cwd / "pb")
    return subprocess.run(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd, env=env, check=False,
    )  # fmt: skip


def test_run_then_replay_is_identical(tmp_path: Path) -> None:
    run = _cli("run", "--only", "llamacpp", "--requirement", "HTU-1003", "--seed", "11",
               "-j", "1", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    bundles = list((tmp_path / "pb" / "conformance").glob("*"))
    assert "proof bundle:" in run.stdout
    (bundle,) = bundles
    assert _cli("verify", str(bundle), cwd=tmp_path).returncode == 0
    cfg = json.loads((bundle / "run_config.json").read_text())
    assert cfg["run_suite"]["seed"] == 11 and cfg["run_suite"]["only"] == ["llamacpp"]
    replay = _cli("replay", str(bundle), cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    assert "identical" in replay.stdout and "0 scenario" not in replay.stdout


def test_no_bundle_flag(tmp_path: Path) -> None:
    from argparse import Namespace

    from llorch_conformance.reports import bundle_run

    res = f.results()
    args = Namespace(fail_on="must", no_bundle=True, proof_dir=str(tmp_path / "pb"))
    assert bundle_run(args, res, {"seed": 7}) == 0
    assert not (tmp_path / "pb").exists()


def test_run_hook_folds_the_audit_into_the_exit_code(tmp_path: Path) -> None:
    import base64
    from argparse import Namespace

    from llorch_conformance.reports import bundle_run

    secret = "s3cr3t-token-xyz-0123"
    ev = f.evidence(
        logs=[
            {"level": "ERROR", "logger": "a", "message": base64.b64encode(secret.encode()).decode()}
        ]
    )
    leaky = f.results(f.scenario("leaks", ev=ev))
    args = Namespace(
        fail_on="must",
        no_bundle=False,
        proof_dir=str(tmp_path / "a"),
        secret=[secret],
        sign_key=None,
        screenshot=False,
    )
    assert bundle_run(args, leaky, {"seed": 7}) == 1  # adapter leaked: conformance failure
    args.proof_dir = str(tmp_path / "b")
    args.secret = []
    harness = f.results(f.scenario("ok", ev=f.evidence(notes={"x": "AKIAABCDEFGHIJKLMNOP"})))
    assert bundle_run(args, harness, {"seed": 7}) == 1  # evidence files are the adapter's
    cfg_leak = f.results()
    cfg_leak.target["note"] = "AKIAABCDEFGHIJKLMNOP"  # written by the harness into run_config.json
    args.proof_dir = str(tmp_path / "c")
    assert bundle_run(args, cfg_leak, {"seed": 7}) == 2
