"""Steps for the proof-bundle standard (PB-1001..1012) against the suite's own writers.

Everything happens in a private temporary directory; environment variables the standard is about
(``LLORCH_PROOF_DIR``, ``LLORCH_RUN_ID``, ``GIT_SHA``) are set for the scenario and restored by its
cleanup, so scenarios never see each other's settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_bdd import given, parsers, then, when

from ._context import ScenarioContext

_TOKEN = "pb-secret-token-0123456789abcdef"


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _base(ctx: ScenarioContext) -> Path:
    base = ctx.notes.get("pb_base")
    if base is None:
        raise AssertionError("step order: no private proof directory was set up")
    return Path(str(base))


@given("a private proof directory set through LLORCH_PROOF_DIR")
def private_proof_dir(llorch_ctx: ScenarioContext) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="llorch-pb-"))
    llorch_ctx.notes["pb_base"] = str(tmp)
    old = os.environ.get("LLORCH_PROOF_DIR")
    os.environ["LLORCH_PROOF_DIR"] = str(tmp)

    def restore() -> None:
        if old is None:
            os.environ.pop("LLORCH_PROOF_DIR", None)
        else:
            os.environ["LLORCH_PROOF_DIR"] = old
        shutil.rmtree(tmp, ignore_errors=True)

    llorch_ctx.add_cleanup(restore)


@when(parsers.parse('a bundle of every test type is opened with run id "{run_id}"'))
def open_every_type(llorch_ctx: ScenarioContext, run_id: str) -> None:
    from llorch_conformance.reports import ProofBundle, TestType

    roots = {}
    for tt in TestType:
        roots[tt.value] = str(ProofBundle.for_type(tt, run_id=run_id).root())
    llorch_ctx.notes["pb_roots"] = roots


@then(parsers.parse('each bundle lives under the proof directory, its type, then "{run_id}"'))
def bundle_layout(llorch_ctx: ScenarioContext, run_id: str) -> None:
    base = _base(llorch_ctx)
    roots: dict[str, str] = llorch_ctx.notes["pb_roots"]
    wrong = {t: r for t, r in roots.items() if Path(r) != base / t / run_id or not Path(r).is_dir()}
    llorch_ctx.check(
        not wrong,
        "bundles are not at <LLORCH_PROOF_DIR>/<type>/<run_id>/",
        json.dumps(wrong),
        ids=("PB-1001", "PB-1003"),
    )


@then("the type directories are exactly the fixed map plus conformance")
def type_map(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import TestType

    fixed = {
        "unit",
        "integration",
        "contract",
        "bdd",
        "determinism",
        "home-profile-smoke",
        "e2e-haiku",
    }
    got = {t.value for t in TestType}
    llorch_ctx.check(
        got == fixed | {"conformance"},
        "the test-type map differs from the standard's",
        f"extra {sorted(got - fixed - {'conformance'})}, missing {sorted(fixed - got)}",
        ids=("PB-1010",),
    )
    on_disk = {p.name for p in _base(llorch_ctx).iterdir()}
    llorch_ctx.check(
        on_disk == got, "unexpected type directories", str(sorted(on_disk)), ("PB-1010",)
    )


@then(parsers.parse('a bundle opened with LLORCH_RUN_ID "{rid}" is named "{expected}"'))
def run_id_env(llorch_ctx: ScenarioContext, rid: str, expected: str) -> None:
    from llorch_conformance.reports import ProofBundle, make_run_id

    with _env(LLORCH_RUN_ID=rid):
        pb = ProofBundle.for_type("unit")
        generated = make_run_id()
    llorch_ctx.check(
        pb.run_id == expected, "LLORCH_RUN_ID was not honoured", pb.run_id, ("PB-1002",)
    )
    llorch_ctx.check(
        generated == expected, "make_run_id ignores LLORCH_RUN_ID", generated, ("PB-1002",)
    )


_TS = r"\d{8}-\d{6}"


def _run_id_in(cwd: Path, env: dict[str, str | None]) -> str:
    """make_run_id as a fresh process would compute it, in ``cwd`` (no git there)."""
    code = "from llorch_conformance.reports import make_run_id; print(make_run_id())"
    full = {k: v for k, v in os.environ.items() if k not in env}
    full.update({k: v for k, v in env.items() if v is not None})
    full["GIT_CEILING_DIRECTORIES"] = str(cwd.parent)
    out = subprocess.run(
        [_python(), "-c", code],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"make_run_id crashed: {out.stderr.strip()[-300:]}")
    return out.stdout.strip()


def _python() -> str:
    import sys

    return sys.executable


@then("a bundle opened outside any git checkout gets a timestamp run id")
def run_id_no_git(llorch_ctx: ScenarioContext) -> None:
    cwd = _base(llorch_ctx) / "nogit"
    cwd.mkdir(exist_ok=True)
    rid = _run_id_in(
        cwd,
        {"LLORCH_RUN_ID": None, "GIT_SHA": None, "CI_COMMIT_SHA": None, "GITHUB_SHA": None},
    )
    llorch_ctx.notes["run_id_without_git"] = rid
    llorch_ctx.check(
        re.fullmatch(_TS, rid) is not None,
        "without git the run id is not a YYYYMMDD-HHMMSS timestamp",
        rid,
        ("PB-1002",),
    )


@then("a bundle opened with GIT_SHA set gets a timestamp-sha8 run id")
def run_id_sha(llorch_ctx: ScenarioContext) -> None:
    cwd = _base(llorch_ctx) / "nogit"
    cwd.mkdir(exist_ok=True)
    sha = "0123456789abcdef0123456789abcdef01234567"
    rid = _run_id_in(cwd, {"LLORCH_RUN_ID": None, "GIT_SHA": sha})
    llorch_ctx.check(
        re.fullmatch(_TS + "-01234567", rid) is not None,
        "the run id is not YYYYMMDD-HHMMSS-<sha8>",
        rid,
        ("PB-1002",),
    )


@then("every bundle path is an absolute POSIX path")
def posix_paths(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import ProofBundle

    pb = ProofBundle.for_type("unit", run_id="posix")
    p = pb.path("a/b/c.md").resolve()
    llorch_ctx.check(
        p.is_absolute() and "\\" not in str(p) and str(p).startswith("/"),
        "bundle paths are not absolute POSIX paths",
        str(p),
        ("PB-1011",),
    )


@when("the writer appends two stream records, writes a config twice, a summary and timings")
def write_formats(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import ProofBundle

    pb = ProofBundle.for_type("bdd", run_id="formats")
    pb.append_ndjson("streams/events", {"kind": "token", "i": 0})
    pb.append_ndjson("streams/events", {"kind": "token", "i": 1})
    pb.write_json("config/run", {"first": True, "n": 1})
    pb.write_json("config/run", {"second": True})
    pb.write_markdown("summary.md", "Summary\n\nall good")
    pb.write_csv("timings", ["scenario", "ttft_ms"], [["a", 1.5], ["b", None]])
    llorch_ctx.notes["pb_root"] = str(pb.root())


def _root(ctx: ScenarioContext) -> Path:
    return Path(str(ctx.notes["pb_root"]))


@then("the stream is NDJSON with the meta record first and a newline after every record")
def ndjson_ok(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import META_RECORD

    path = _root(llorch_ctx) / "streams" / "events.ndjson"
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    records = [json.loads(line) for line in lines if line]
    llorch_ctx.check(
        raw.endswith("\n"), "the NDJSON file does not end with a newline", "", ("PB-1006",)
    )
    llorch_ctx.check(
        records and records[0] == META_RECORD,
        "the NDJSON stream does not start with the meta record",
        raw[:200],
        ("PB-1012",),
    )
    llorch_ctx.check(
        records[1:] == [{"kind": "token", "i": 0}, {"kind": "token", "i": 1}],
        "appends were not kept in order, one record per line",
        raw[:300],
        ("PB-1004", "PB-1006"),
    )


@then("the config is pretty JSON, overwritten, with a header sibling")
def json_ok(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import HEADER

    path = _root(llorch_ctx) / "config" / "run.json"
    text = path.read_text(encoding="utf-8")
    llorch_ctx.check(
        json.loads(text) == {"second": True}, "write_json did not overwrite", text, ("PB-1006",)
    )
    llorch_ctx.check("\n  " in text, "the JSON is not pretty-printed", text, ("PB-1004",))
    meta = path.with_name("run.json.meta")
    llorch_ctx.check(
        meta.exists() and meta.read_text(encoding="utf-8").startswith(HEADER),
        "no .json.meta sibling with the header line",
        str(meta),
        ("PB-1012",),
    )


@then("the summary is Markdown and the timings are CSV, both starting with the header line")
def md_csv_ok(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import HEADER

    md = (_root(llorch_ctx) / "summary.md").read_text(encoding="utf-8")
    csv_text = (_root(llorch_ctx) / "timings.csv").read_text(encoding="utf-8")
    llorch_ctx.check(
        md.startswith(HEADER + "\n"), "Markdown lacks the header line", md[:80], ("PB-1012",)
    )
    llorch_ctx.check(
        csv_text.startswith(HEADER + "\nscenario,ttft_ms\n") and "a,1.5\n" in csv_text,
        "timings are not CSV under the header line",
        csv_text[:120],
        ("PB-1004", "PB-1012"),
    )


@then("nested names got their parent directories")
def parents_ok(llorch_ctx: ScenarioContext) -> None:
    root = _root(llorch_ctx)
    llorch_ctx.check(
        (root / "streams").is_dir() and (root / "config").is_dir(),
        "parents of nested names were not created",
        str(sorted(p.name for p in root.iterdir())),
        ("PB-1006",),
    )


@then(
    "the writer has for_type, root, ensure_dir, append_ndjson, write_json, write_markdown "
    "and seeds().record"
)
def writer_api(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import ProofBundle

    missing = [
        n
        for n in (
            "for_type",
            "root",
            "ensure_dir",
            "append_ndjson",
            "write_json",
            "write_markdown",
            "seeds",
        )
        if not callable(getattr(ProofBundle, n, None))
    ]
    llorch_ctx.check(not missing, "the writer API lacks methods", str(missing), ("PB-1005",))


@then("seeds().record appends a labelled seed line under the header")
def seeds_record(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import HEADER, ProofBundle

    tmp = Path(tempfile.mkdtemp(prefix="llorch-pb-seeds-"))
    llorch_ctx.add_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
    pb = ProofBundle.for_type("determinism", base=tmp, run_id="seeds")
    pb.seeds().record(42, "first")
    path = pb.seeds().record(7)
    text = path.read_text(encoding="utf-8")
    llorch_ctx.check(
        text.startswith(HEADER) and "42" in text and "first" in text and "7" in text,
        "seeds().record did not write labelled seed lines under the header",
        text[:200],
        ("PB-1005",),
    )


@then("text given to the low-level writer is stored as given")
def no_redaction_low_level(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import ProofBundle

    pb = ProofBundle.for_type("unit", run_id="raw")
    line = f"Authorization: Bearer {_TOKEN}"
    path = pb.write_markdown("raw.md", line)
    llorch_ctx.check(
        line in path.read_text(encoding="utf-8"),
        "the low-level writer changed the caller's text (it must not redact; callers do)",
        "",
        ("PB-1007",),
    )


def _small_results(*, secret: str | None = None, failing: bool = False) -> Any:
    from llorch_conformance.conformance import RunResults, ScenarioResult

    events = [
        {"kind": "started", "data": {}},
        {"kind": "token", "data": {"t": "hi", "i": 0}},
        {"kind": "end", "data": {"tokens_out": 1, "decode_time_ms": 1}},
    ]
    logs = [f"Authorization: Bearer {secret}"] if secret else []
    scen = ScenarioResult(
        nodeid="features/x.feature::pb",
        feature="Proof bundle probe",
        scenario="A probe scenario",
        adapter="mock",
        dialect="mock",
        requirements=["ADAPT-3001"],
        status="fail" if failing else "pass",
        duration_s=0.01,
        message="ADAPT-3001: probe failure" if failing else "",
        failed_requirements=["ADAPT-3001"] if failing else [],
        evidence={"streams": [{"transcript": events}], "logs": logs},
    )
    return RunResults(run_id="pb-probe", seed=0, target={"adapters": ["mock"]}, scenarios=[scen])


@then("a conformance bundle of evidence holding a bearer token never contains the token")
def caller_redacts(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import write_bundle

    with _env(LLORCH_RUN_ID=None):
        out = write_bundle(_small_results(secret=_TOKEN), base=_base(llorch_ctx), run_id="redact")
    leaks = [
        str(p.relative_to(out.path))
        for p in Path(out.path).rglob("*")
        if p.is_file() and _TOKEN.encode() in p.read_bytes()
    ]
    llorch_ctx.check(not leaks, "the bearer token reached bundle files", str(leaks), ("PB-1007",))


@then("a bad file name is refused with a harness error naming it")
def bad_names(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.api import HarnessError
    from llorch_conformance.reports import ProofBundle

    pb = ProofBundle.for_type("unit", run_id="names")
    for bad in ("../escape.md", "", "/abs.md", "a/../../b.md"):
        try:
            pb.write_markdown(bad, "x")
        except HarnessError as exc:
            llorch_ctx.check(
                bad == "" or bad in str(exc) or repr(bad) in str(exc),
                "the error does not name the bad file name",
                str(exc),
                ("PB-1008",),
            )
            continue
        except Exception as exc:  # anything else is a crash, not a result
            llorch_ctx.fail("a bad name crashed the writer", f"{bad!r}: {exc!r}", ("PB-1008",))
        llorch_ctx.fail("a bad file name was accepted", repr(bad), ("PB-1008",))


@then("a base directory that cannot be created is a harness error, not an OSError")
def bad_base(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.api import HarnessError
    from llorch_conformance.reports import ProofBundle

    blocker = _base(llorch_ctx) / "not-a-dir"
    blocker.write_text("a file where a directory should be", encoding="utf-8")
    try:
        ProofBundle.for_type("unit", base=blocker, run_id="x")
    except HarnessError as exc:
        llorch_ctx.notes["error"] = str(exc)
        return
    except OSError as exc:
        llorch_ctx.fail("an I/O failure escaped as a bare OSError", repr(exc), ("PB-1008",))
    llorch_ctx.fail("a bundle was opened under a file", str(blocker), ("PB-1008",))


@then("two writers of the same run both append to one stream and both records are kept")
def two_writers(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import ProofBundle

    a = ProofBundle.for_type("integration", run_id="shared")
    b = ProofBundle.for_type("integration", run_id="shared")
    a.append_ndjson("log", {"writer": "a"})
    path = b.append_ndjson("log", {"writer": "b"})
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    llorch_ctx.check(
        {"writer": "a"} in records and {"writer": "b"} in records,
        "a second writer of the same run lost records",
        str(records),
        ("PB-1009",),
    )


@when("a conformance bundle of a small failing run is written")
def write_failing(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import write_bundle

    with _env(LLORCH_RUN_ID=None):
        out = write_bundle(_small_results(failing=True), base=_base(llorch_ctx), run_id="failing")
    llorch_ctx.notes["pb_bundle"] = str(out.path)
    llorch_ctx.notes["pb_exit"] = out.exit_code


@then("the bundle was written although the run failed")
def written_on_failure(llorch_ctx: ScenarioContext) -> None:
    path = Path(str(llorch_ctx.notes["pb_bundle"]))
    llorch_ctx.check(
        llorch_ctx.notes["pb_exit"] == 1 and (path / "summary.json").exists(),
        "a failing run did not get a complete bundle",
        f"exit {llorch_ctx.notes['pb_exit']}, files {sorted(p.name for p in path.iterdir())[:12]}",
        ("PB-1004",),
    )


@then("every artifact carries its autogenerated marker and the bundle verifies")
def markers_and_verify(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.reports import check_headers, verify_bundle

    path = Path(str(llorch_ctx.notes["pb_bundle"]))
    problems = check_headers(path)
    llorch_ctx.check(
        not problems,
        "artifacts without their autogenerated marker",
        "; ".join(str(p) for p in list(problems)[:5]),
        ("PB-1012",),
    )
    report = verify_bundle(path)
    llorch_ctx.check(
        report.ok,
        "the bundle does not verify",
        "; ".join(f"{p.file}: {p.rule}: {p.message}" for p in report.problems[:5]),
        ("PB-1012",),
    )
