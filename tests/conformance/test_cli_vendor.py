"""Issue 15, the command line a vendor meets: explain, argument hygiene, pre-flight, scopes,
--collect-only, subcommand help. Black-box through the CLI (subprocess), each test fails when
its feature breaks."""

from __future__ import annotations

import json
import socket
import time

import pytest

from llorch_conformance.conformance.cli import build_parser

from ._cli import run_cli

_VENDOR = ("--adapter", "broken_adapters:drop_last_token", "--dialect", "llamacpp")


def _one_line_exit_2(proc: object, needle: str) -> None:
    rc = proc.returncode  # type: ignore[attr-defined]
    err = proc.stderr  # type: ignore[attr-defined]
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]


# -- explain ---------------------------------------------------------------------------------
def test_explain_prints_text_level_source_guidance_and_proving_scenarios() -> None:
    proc = run_cli("explain", "WA-INT-3002", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("WA-INT-3002 (MUST, adapter layer)")
    assert "cancel-ack window" in out  # the catalogue text
    assert "source: worker-adapters 33_INTEGRATION.md" in out
    assert "how to meet it:" in out and "common failures:" in out
    # the scenarios come from the feature tags, with file and line
    assert "Cancel in flight stops tokens and closes the upstream connection" in out
    assert "features/cancel/cancel.feature:" in out


def test_explain_json_lists_every_scenario_tagged_with_the_id() -> None:
    from llorch_conformance.features import feature_files

    proc = run_cli("explain", "ADAPT-3005", "--format", "json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["id"] == "ADAPT-3005" and data["level"] == "MUST"
    tagged = sum(
        line.split().count("@ADAPT-3005")
        for f in feature_files()
        for line in f.read_text("utf-8").splitlines()
        if line.strip().startswith("@")
    )
    assert len(data["scenarios"]) == tagged > 0
    assert data["scopes"] == ["adapter"]


def test_explain_self_check_ids_say_they_are_not_in_vendor_reports() -> None:
    proc = run_cli("explain", "PB-1001", timeout=60)
    assert proc.returncode == 0
    assert "judged in scope: suite" in proc.stdout


def test_explain_unknown_id_is_one_line_with_close_matches() -> None:
    proc = run_cli("explain", "WA-INT-302", timeout=60)
    _one_line_exit_2(proc, "'WA-INT-302' is not a catalogue ID; did you mean WA-INT-3002")


def test_every_catalogue_id_has_guidance() -> None:
    from llorch_conformance.conformance._catalogue import CATALOGUE
    from llorch_conformance.conformance._guide import guidance_for

    generic = guidance_for("NOPE-0000", "nonsense").how
    for r in CATALOGUE:
        g = guidance_for(r.id, r.layer.value)
        assert g.how and (g.how != generic or r.layer.value == "adapter"), r.id


# -- argument hygiene and pre-flight ---------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--only", "mock", *_VENDOR], "--only restricts the built-in adapters"),
        (["--level", "must", "--fail-on", "should"], "--fail-on should can never apply"),
        (["-j", "0"], "--jobs must be at least 1"),
        ([*_VENDOR, "--worker-url", "http://127.0.0.1:9"], "--adapter, --dialect do not apply"),
        (["--only", "mock", "--dialect", "mock"], "--only and --dialect"),
        (["-x", "--maxfail", "3"], "--maxfail 3 contradicts it"),
        (["--maxfail", "0"], "--maxfail must be at least 1"),
        (["--adapter-name", "acme"], "--adapter-name names a vendor adapter"),
        (["--orchestrator-pool", "p1"], "only apply with --orchestrator-url"),
        (["--collect-only", "--baseline", "x"], "--collect-only runs nothing"),
        (["--keep", "0"], "--keep must be at least 1"),
        (["--out", "a", "--proof-dir", "b"], "name the one output root: give one"),
        (["--worker-url", "http://127.0.0.1:9", "--scope", "adapter"], "contradicts it"),
    ],
)
def test_contradictory_flags_are_one_line_exit_2(args: list[str], needle: str) -> None:
    _one_line_exit_2(run_cli("run", *args, timeout=60), needle)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("flag", "extra", "what"),
    [
        ("--engine-url", ["--dialect", "llamacpp"], "cannot reach the engine"),
        ("--worker-url", [], "cannot reach the worker"),
        ("--orchestrator-url", [], "cannot reach the orchestrator"),
    ],
)
def test_unreachable_urls_are_refused_before_any_scenario(
    flag: str, extra: list[str], what: str
) -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    t0 = time.monotonic()
    proc = run_cli("run", flag, url, *extra, "--no-progress", timeout=60)
    elapsed = time.monotonic() - t0
    _one_line_exit_2(proc, f"{flag} {url}: {what}")
    assert "scenarios" not in proc.stderr  # no scenario started ("running N scenarios")
    print(f"{flag}: refused in {elapsed:.1f} s")  # informative only; never asserted


def test_every_subcommand_help_describes_its_arguments() -> None:
    """Each sub-command and each of its options/positionals has a help text."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    helps = {c.dest: c.help for c in sub._choices_actions}  # type: ignore[union-attr]
    missing: list[str] = []
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        if not helps.get(name):
            missing.append(f"{name}: no one-line help")
        missing += [
            f"{name} {'/'.join(a.option_strings) or a.dest}"
            for a in p._actions
            if a.dest != "help" and not a.help
        ]
    assert not missing, missing


# -- scopes and --collect-only ---------------------------------------------------------------
def _collected(*args: str) -> list[list[str]]:
    proc = run_cli("run", *args, "--collect-only", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    end = next(i for i, line in enumerate(lines) if "scenario(s) selected" in line)
    return [line.split(None, 2) for line in lines[:end]]


def test_vendor_run_defaults_to_the_adapter_scope_without_self_checks() -> None:
    rows = _collected(*_VENDOR)
    ids = {rid for row in rows for rid in row[1].split(",")}
    adapters = {row[0] for row in rows}
    assert rows and "drop_last_token" in adapters
    assert "-" not in adapters  # no pseudo-adapter column of not-applicable skips
    for prefix in ("PB-", "AUTH-", "WKR-", "AH-", "SSE-"):
        assert not [i for i in ids if i.startswith(prefix)], prefix
    # the http_util self-checks (features/http_util, per-run) are not in it either
    assert not [r for r in rows if "shared client builder" in r[2]]
    everything = _collected(*_VENDOR, "--scope", "all")
    assert len(everything) > len(rows)
    all_ids = {rid for row in everything for rid in row[1].split(",")}
    assert {"PB-1001", "WKR-1008"} <= all_ids


@pytest.mark.parametrize(("scope", "prefix"), [("host", "AH-"), ("worker", "WKR-")])
def test_scope_selects_that_layer_only(scope: str, prefix: str) -> None:
    rows = _collected("--only", "llamacpp", "--scope", scope)
    ids = {rid for row in rows for rid in row[1].split(",")}
    assert any(i.startswith(prefix) for i in ids), ids
    assert not [i for i in ids if i.startswith(("PB-", "OC-ADAPT-"))], ids


def test_collect_only_honours_requirement_and_runs_nothing(tmp_path: object) -> None:
    rows = _collected(*_VENDOR, "--requirement", "WA-INT-3002")
    assert rows and all("WA-INT-3002" in r[1].split(",") for r in rows)


def _pytest_collect(*args: str) -> str:
    import os
    import subprocess
    import sys
    import tempfile

    from ._cli import HERE

    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--llorch-suite", *args, "--collect-only", "-q",
             "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-1000:]
    return proc.stdout


def test_the_pytest_plugin_gives_a_vendor_adapter_the_adapter_scope_too() -> None:
    vendor = ("--llorch-adapter", "broken_adapters:drop_last_token", "--llorch-dialect", "llamacpp")
    default = _pytest_collect(*vendor)
    assert "test_cancel_in_flight_stops_tokens" in default
    assert "test_bundles_live_under" not in default
    assert "test_bundles_live_under" in _pytest_collect(*vendor, "--llorch-scope", "all")
