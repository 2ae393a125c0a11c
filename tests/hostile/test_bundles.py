"""Hostile proof bundles (issue 16 items 1, 2, 12, 13): a bundle is data, never code.

A corpus of malicious bundles, generated here from one honest bundle, goes through ``verify``,
``diff``, ``matrix`` and ``replay`` as command lines (``_cli_batch.py``: one interpreter per
batch, each case through the CLI's ``main``; the replay of a real run goes through the real
console process). Every case must end with exit 2 and ONE line naming the file (or with the
command's own verdict, 0/1, where the command does not read what was broken) — never a
traceback, a hang, a write outside the temporary directories, a network connection (a local
listening socket must see none) or a sentinel secret from the environment anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llorch_conformance.reports import write_bundle
from llorch_conformance.reports._bundle_read import MAX_JSON_BYTES
from tests.hostile._figures import HostileFigures
from tests.reports import _factory as f

SECRET_ENV = "LLORCH_HOSTILE_BUNDLE_SECRET"
SECRET = f"sentinel-{uuid.uuid4().hex}"
TOKEN = f"tokensentinel-{uuid.uuid4().hex}"  # the default token variable's value
BATCH = Path(__file__).with_name("_cli_batch.py")

#: The JSON files each command reads (everything else it only scans as part of the tree).
GATE_READS = {"summary.json", "environment.json", "requirements.json", "run_config.json",
              "results.json"}  # fmt: skip
READS: dict[str, set[str]] = {
    "verify": GATE_READS | {"manifest.json", "redaction_audit.json",
                            "attestation/statement.intoto.json"},
    "diff": GATE_READS,
    "matrix": GATE_READS,
    "replay": {"results.json", "run_config.json"},
}  # fmt: skip
JSON_FILES = sorted(READS["verify"])


class Listener:
    """A local listening socket that records every connection (there must be none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    self.seen.append(conn.recv(65536))
                except OSError:
                    self.seen.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Lab:
    root: Path
    good: Path  # an untouched honest bundle (the other side of diff/matrix)
    pristine: Path  # copied for each variant
    outside: Path  # a folder outside every bundle: link targets, markers of executed code
    work: Path  # the commands' working directory
    listener: Listener
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("hostile-bundles")
    config = {"argv": ["run"], "run_suite": {"only": ["llamacpp", "vllm"], "level": "should",
              "requirements": [], "seed": 7, "scope": "all", "adapter": None}}  # fmt: skip
    good = write_bundle(f.results(), base=root / "good", run_id="good", config=config).path
    pristine = write_bundle(
        f.results(), base=root / "pristine", run_id="pristine", config=config
    ).path
    outside, work, tmp, home = (root / n for n in ("outside", "work", "tmp", "home"))
    for d in (outside, work, tmp, home):
        d.mkdir()
    listener = Listener()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")
    }
    env.update({SECRET_ENV: SECRET, "LLORCH_API_TOKEN": TOKEN, "TMPDIR": str(tmp),
                "HOME": str(home), "LLORCH_PROOF_DIR": str(tmp / "pb"), "NO_COLOR": "1"})  # fmt: skip
    yield Lab(root, good, pristine, outside, work, listener, env)
    listener.close()


# -- variants --------------------------------------------------------------------------------

Mutate = Callable[[Path, "Lab"], None]


@dataclass
class Variant:
    id: str
    mutate: Mutate
    names: str  # text the one error line must contain (the file concerned)
    commands: dict[str, int | str]  # command -> 2, or "judged" (its own verdict 0/1)
    extra: list[str] = field(default_factory=list)  # more replay arguments
    inside_cwd: bool = False  # run the command from inside the bundle folder


def _json_edit(rel: str, edit: Callable[[Any], Any]) -> Mutate:
    def go(b: Path, _lab: Lab) -> None:
        p = b / rel
        p.write_text(json.dumps(edit(json.loads(p.read_text("utf-8")))), "utf-8")

    return go


def _text_edit(rel: str, edit: Callable[[str], str | bytes]) -> Mutate:
    def go(b: Path, _lab: Lab) -> None:
        p = b / rel
        out = edit(p.read_text("utf-8"))
        p.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8", "surrogatepass"))

    return go


def _append_member(text: str, member: str) -> str:
    """``{..., member}``: one more member at the end of a JSON object's text."""
    body = text.rstrip().removesuffix("}").rstrip()
    return body + ("" if body.endswith("{") else ",") + member + "}"


def _first_key(text: str) -> str:
    return next(iter(json.loads(text)))


def _sparse(rel: str, size: int) -> Mutate:
    def go(b: Path, _lab: Lab) -> None:
        with open(b / rel, "r+b") as fh:
            fh.truncate(size)

    return go


JSON_BOMBS: dict[str, Callable[[str], Mutate]] = {
    "deep-100k": lambda r: _text_edit(r, lambda t: "[" * 100_000 + "]" * 100_000),
    "deep-200-in-field": lambda r: _text_edit(
        r, lambda t: _append_member(t, '"deep": ' + "[" * 200 + "]" * 200)
    ),
    "int-5000-digits": lambda r: _text_edit(r, lambda t: _append_member(t, '"n": ' + "9" * 5000)),
    "int-1e30": lambda r: _text_edit(r, lambda t: _append_member(t, '"n": ' + "1" + "0" * 30)),
    "nan": lambda r: _text_edit(r, lambda t: _append_member(t, '"n": NaN, "m": -Infinity')),
    "float-overflow": lambda r: _text_edit(r, lambda t: _append_member(t, '"n": 1e999')),
    "duplicate-key": lambda r: _text_edit(
        r, lambda t: _append_member(t, json.dumps(_first_key(t)) + ': "dup"')
    ),
    "non-utf8": lambda r: _text_edit(
        r, lambda t: _append_member(t, '"s": "\udcff"').encode("utf-8", "surrogateescape")
    ),
    "lone-surrogate": lambda r: _text_edit(r, lambda t: _append_member(t, '"s": "\\ud800"')),
    "truncated": lambda r: _text_edit(r, lambda t: t[: len(t) // 2]),
    "top-is-list": lambda r: _text_edit(r, lambda t: "[]"),
    "empty": lambda r: _text_edit(r, lambda t: ""),
    "utf8-bom": lambda r: _text_edit(r, lambda t: "\ufeff" + t),
    "huge-sparse": lambda r: _sparse(r, MAX_JSON_BYTES + 1),
}


def _set(path: list[Any], value: Any) -> Callable[[Any], Any]:
    def edit(doc: Any) -> Any:
        node = doc
        for k in path[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return doc

    return edit


_DELETE = object()

#: (file, where, value): wrong types, missing fields, names that leave the bundle.
SCHEMA_BREAKS: list[tuple[str, list[Any], Any]] = [
    ("summary.json", ["verdicts"], "all green"),
    ("summary.json", ["verdicts", 0, "status"], _DELETE),
    ("summary.json", ["run_id"], "../../x"),
    ("summary.json", ["run_id"], _DELETE),
    ("summary.json", ["counts"], "many"),
    ("summary.json", ["exit_code"], 7),
    ("summary.json", ["suite_version"], 5),
    ("results.json", ["run_id"], _DELETE),
    ("results.json", ["run_id"], "../../escape"),
    ("results.json", ["seed"], "7"),
    ("results.json", ["scenarios"], {}),
    ("results.json", ["scenarios", 0, "status"], "green"),
    ("results.json", ["scenarios", 0, "requirements"], [1, 2]),
    ("results.json", ["scenarios", 0, "evidence"], []),
    ("results.json", ["scenarios", 0, "nodeid"], 5),
    ("results.json", ["target", "targets"], "all"),
    ("run_config.json", ["run_suite"], ["-p", "evil"]),
    ("run_config.json", ["run_suite", "requirements"], [1]),
    ("run_config.json", ["run_suite", "level"], "maybe"),
    ("environment.json", ["adapters"], {"llamacpp": {}}),
    ("environment.json", ["adapters", 0, "name"], 5),
    ("requirements.json", ["catalogue"], _DELETE),
    ("requirements.json", ["catalogue", 0, "id"], 5),
    ("manifest.json", ["files"], {}),
    ("manifest.json", ["files", 0, "path"], "../../outside/secret.txt"),
    ("manifest.json", ["files", 0, "path"], "/etc/passwd"),
    ("manifest.json", ["files", 0, "path"], "scenarios\\..\\..\\x"),
    ("manifest.json", ["files", 0, "path"], "manifest.json"),
    ("manifest.json", ["files", 0, "sha256"], "zz"),
    ("redaction_audit.json", ["hits"], "none"),
    ("attestation/statement.intoto.json", ["subject"], {"name": "manifest.json"}),
]


def _link(name: str, target: Callable[[Path, Lab], str]) -> Mutate:
    def go(b: Path, lab: Lab) -> None:
        p = b / name
        to = target(b, lab)  # first: it may copy the entry the link replaces
        if p.exists() or p.is_symlink():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        os.symlink(to, p)

    return go


def _copy_out(b: Path, lab: Lab, rel: str) -> str:
    """An identical copy of ``rel`` outside the bundle (same content, same hash)."""
    dst = lab.outside / f"{b.name}-{rel.replace('/', '_')}"
    if (b / rel).is_dir():
        shutil.copytree(b / rel, dst)
    else:
        shutil.copy2(b / rel, dst)
    return str(dst)


def _hardlink_out(rel: str) -> Mutate:
    def go(b: Path, lab: Lab) -> None:
        out = Path(_copy_out(b, lab, rel))
        (b / rel).unlink()
        os.link(out, b / rel)

    return go


def _write(rel: str | bytes, data: bytes = b"x\n") -> Mutate:
    def go(b: Path, _lab: Lab) -> None:
        if isinstance(rel, bytes):
            with open(os.path.join(os.fsencode(b), rel), "wb") as fh:
                fh.write(data)
        else:
            (b / rel).parent.mkdir(parents=True, exist_ok=True)
            (b / rel).write_bytes(data)

    return go


def _fifo(b: Path, _lab: Lab) -> None:
    os.mkfifo(b / "stream.ndjson")


def _not_a_dir(b: Path, _lab: Lab) -> None:
    shutil.rmtree(b)
    b.write_text("not a bundle\n")


def _missing(b: Path, _lab: Lab) -> None:
    shutil.rmtree(b)


def _conftest(b: Path, lab: Lab) -> None:
    marker = lab.outside / f"pwned-{b.name}"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    for name in ("conftest.py", "sitecustomize.py", "pytest.py", "evil_plugin.py"):
        (b / name).write_text(code)
    (b / "pytest.ini").write_text("[pytest]\naddopts = -p evil_plugin\n")
    cfg = json.loads((b / "run_config.json").read_text())
    cfg["run_suite"]["pytest_args"] = [str(b), "-p", "evil_plugin", "--rootdir", str(b)]
    (b / "run_config.json").write_text(json.dumps(cfg))


ALL2 = {"verify": 2, "diff": 2, "matrix": 2, "replay": 2}


def _targets(targets: list[dict[str, Any]], run_suite: dict[str, Any] | None = None) -> Mutate:
    def go(b: Path, lab: Lab) -> None:
        res = json.loads((b / "results.json").read_text())
        text = json.dumps(targets).replace("LISTENER", lab.listener.url)
        res["target"]["targets"] = json.loads(text)
        (b / "results.json").write_text(json.dumps(res))
        if run_suite is not None:
            cfg = json.loads((b / "run_config.json").read_text())
            cfg["run_suite"] = json.loads(
                json.dumps(run_suite).replace("LISTENER", lab.listener.url)
            )
            (b / "run_config.json").write_text(json.dumps(cfg))

    return go


def _builtin(**kw: Any) -> dict[str, Any]:
    return {"name": "llamacpp", "dialect": "llamacpp", "origin": "builtin", "spec": "",
            "engine_url": None, **kw}  # fmt: skip


ORCH = {"name": "orchestrator", "dialect": "orchestrator", "origin": "orchestrator",
        "spec": "LISTENER", "engine_url": "LISTENER", "orchestrator_url": "LISTENER",
        "orchestrator_pool": "default", "token_env": SECRET_ENV}  # fmt: skip
ORCH_SUITE = {"orchestrator_url": "LISTENER", "orchestrator_token_env": SECRET_ENV,
              "pytest_args": ["-p", "evil_plugin"]}  # fmt: skip


def _results_edit(edit: Callable[[Any], Any]) -> Mutate:
    return _json_edit("results.json", edit)


def variants() -> list[Variant]:
    out: list[Variant] = []
    for rel in JSON_FILES:
        for bomb, make in JSON_BOMBS.items():
            # only the commands that read the file: another command's verdict on a bundle it
            # does not read broken is its ordinary work (and a replay would run the suite)
            cmds: dict[str, int | str] = {c: 2 for c, reads in READS.items() if rel in reads}
            out.append(Variant(f"{rel}:{bomb}", make(rel), rel, cmds))
    for rel, where, value in SCHEMA_BREAKS:
        cmds = {c: 2 for c, reads in READS.items() if rel in reads}
        what = "delete" if value is _DELETE else json.dumps(value)[:20]
        out.append(Variant(f"{rel}:{'/'.join(map(str, where))}={what}",
                           _json_edit(rel, _set(where, value)), rel, cmds))  # fmt: skip
    # links and odd files: every reader refuses the whole bundle
    out += [
        Variant("symlink results.json -> identical copy outside",
                _link("results.json", lambda b, lab: _copy_out(b, lab, "results.json")),
                "results.json", ALL2),
        Variant("symlink report.html -> identical copy outside",
                _link("report.html", lambda b, lab: _copy_out(b, lab, "report.html")),
                "report.html", ALL2),
        Variant("symlinked scenarios/ -> copy outside",
                _link("scenarios", lambda b, lab: _copy_out(b, lab, "scenarios")),
                "scenarios", ALL2),
        Variant("symlink to /etc/passwd", _link("passwd.txt", lambda b, lab: "/etc/passwd"),
                "passwd.txt", ALL2),
        Variant("dangling symlink", _link("gone.json", lambda b, lab: "/nonexistent/x"),
                "gone.json", ALL2),
        Variant("symlink loop", _link("loop", lambda b, lab: "loop"), "loop", ALL2),
        Variant("symlink inside -> inside", _link("copy.json", lambda b, lab: "results.json"),
                "copy.json", ALL2),
        Variant("hardlink results.json <-> outside", _hardlink_out("results.json"),
                "results.json", ALL2),
        Variant("FIFO in the bundle", _fifo, "stream.ndjson", ALL2),
        Variant("file name with a newline", _write("evil\nverify: OK.md"), "evil?verify", ALL2),
        Variant("file name not UTF-8", _write(b"bad\xff.txt"), "not UTF-8", ALL2),
        Variant("directories 20 deep", _write("/".join(["d"] * 20) + "/x.txt"), "d/d/d", ALL2),
        Variant("not a directory", _not_a_dir, "not a directory", ALL2),
        Variant("missing", _missing, "not a directory", ALL2),
        Variant("conftest.py, sitecustomize, pytest.ini shipped", _conftest, "",
                {"verify": "judged", "diff": "judged", "matrix": "judged"}),
    ]  # fmt: skip
    # replay: what a bundle may never choose
    rp = {"replay": 2}
    out += [
        Variant("engine_url recorded", _targets([_builtin(engine_url="LISTENER")]),
                "--allow-bundle-url", rp),
        Variant("orchestrator URL + token env", _targets([ORCH], ORCH_SUITE),
                "--allow-bundle-url", rp),
        Variant("orchestrator URL allowed, token env not named", _targets([ORCH], ORCH_SUITE),
                "--orchestrator-token-env", rp, ["--allow-bundle-url"]),
        Variant("vendor spec os:system", _targets([_builtin(origin="vendor", spec="os:system")]),
                "--adapter", rp),
        Variant("entry-point spec", _targets([_builtin(origin="entry-point", spec="evil")]),
                "--adapter", rp),
        Variant("vendor dialect not ours",
                _targets([_builtin(origin="vendor", spec="x:y", dialect="../evil")]),
                "dialect", rp, ["--adapter", "no_such_module_llorch:factory"]),
        Variant("built-in name unknown", _targets([_builtin(name="evil")]), "evil", rp),
        Variant("built-in name path", _targets([_builtin(name="../../x")]), "../../x", rp),
        Variant("target kind unknown", _targets([_builtin(origin="shell")]), "shell", rp),
        Variant("no targets", _targets([]), "targets", rp),
        Variant("requirement unknown",
                _json_edit("run_config.json", _set(["run_suite", "requirements"], ["ZZZ-9999"])),
                "ZZZ-9999", rp),
        Variant("scope not ours",
                _json_edit("run_config.json", _set(["run_suite", "scope"], "../../etc")),
                "scope", rp),
        Variant("nodeid with control characters",
                _results_edit(_set(["scenarios", 0, "nodeid"], "a::b\x1b[2J\nverify: OK")),
                "nodeid", rp),
        Variant("seed negative", _results_edit(_set(["seed"], -1)), "seed", rp),
        Variant("a worker check's bundle",
                _results_edit(_set(["target"], {"kind": "worker",
                                                "worker_url": "http://127.0.0.1:9"})),
                "worker", rp),
        Variant("adapter label with a path",
                _targets([_builtin(origin="vendor", spec="x:y")], {"adapter_name": "../x"}),
                "adapter_name", rp, ["--adapter", "no_such_module_llorch:factory"]),
        Variant("run from inside the bundle", lambda b, lab: None, "outside the bundle", rp,
                inside_cwd=True),
    ]  # fmt: skip
    return out


def _argv(command: str, v: Path, lab: Lab, extra: list[str]) -> list[str]:
    return {
        "verify": ["verify", str(v)],
        "diff": ["diff", str(v), str(lab.good)],
        "matrix": ["matrix", str(v), str(lab.good)],
        "replay": ["replay", str(v), *extra],
    }[command]


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == skip:
            dirs[:] = []
            continue
        for n in files:
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def _run_batch(lab: Lab, jobs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    jobs_path, out_path = lab.root / f"{name}-jobs.json", lab.root / f"{name}-out.json"
    jobs_path.write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, str(BATCH), str(jobs_path), str(out_path)],
        capture_output=True, text=True, timeout=300, cwd=lab.work, env=lab.env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(out_path.read_text())
    return results


def _check(variant: Variant, command: str, r: dict[str, Any]) -> str | None:
    """Why this result breaks the rules, or None."""
    where = f"{variant.id!r} {command}"
    if r["rc"] == "traceback":
        return f"{where}: traceback\n{r['traceback'][-1500:]}"
    if "Traceback" in r["err"] + r["out"]:
        return f"{where}: a traceback was printed"
    want = variant.commands[command]
    if want == "judged":
        return None if r["rc"] in (0, 1) else f"{where}: exit {r['rc']}: {r['err'][-500:]}"
    lines = [ln for ln in r["err"].splitlines() if ln.strip()]
    if r["rc"] != 2:
        return f"{where}: exit {r['rc']} (want 2): {r['out'][-300:]} {r['err'][-300:]}"
    if len(lines) != 1:
        return f"{where}: {len(lines)} lines on stderr (want one): {r['err'][-600:]}"
    if variant.names not in lines[0]:
        return f"{where}: the line does not name {variant.names!r}: {lines[0]}"
    return None


def _corpus(lab: Lab, chosen: list[Variant], name: str) -> tuple[int, float]:
    """Build every variant, run every (variant, command) in one batch, check all rules."""
    jobs: list[dict[str, Any]] = []
    index: dict[str, tuple[Variant, str]] = {}
    for i, v in enumerate(chosen):
        path = lab.root / name / f"v{i:03d}"
        shutil.copytree(lab.pristine, path, symlinks=True)
        v.mutate(path, lab)
        for command in v.commands:
            job_id = f"{i}:{command}"
            index[job_id] = (v, command)
            job: dict[str, Any] = {"id": job_id, "argv": _argv(command, path, lab, v.extra)}
            if v.inside_cwd:
                job["cwd"] = str(path)
            jobs.append(job)
    before = _snapshot(lab.root, lab.root / "tmp")
    connections_before = len(lab.listener.seen)
    results = _run_batch(lab, jobs, name)
    problems = [p for r in results if (p := _check(*index[r["id"]], r))]
    assert not problems, f"{len(problems)} of {len(results)} cases broke the rules:\n" + (
        "\n".join(problems[:15])
    )
    # nothing ran: no marker of executed bundle code, no file written or changed outside tmp
    assert not list(lab.outside.glob("pwned-*"))
    after = _snapshot(lab.root, lab.root / "tmp")
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)
                     and not p.endswith(("-jobs.json", "-out.json")))  # fmt: skip
    assert changed == [], changed[:10]
    # no network contact, and no sentinel secret anywhere in what the commands said
    assert len(lab.listener.seen) == connections_before, lab.listener.seen
    said = json.dumps(results)
    assert SECRET not in said and TOKEN not in said
    return len(results), max(r["seconds"] for r in results)


@pytest.mark.parametrize("half", [0, 1], ids=["first-files", "last-files"])
def test_malformed_files_are_one_line_and_exit_2(
    lab: Lab, hostile_figures: HostileFigures, half: int
) -> None:
    """Item 12: bombs and wrong types in each JSON file of a bundle, through every reader of
    that file (two halves by file, so that two workers share the corpus)."""
    files = set(JSON_FILES[half::2])
    chosen = [v for v in variants() if ":" in v.id and v.id.split(":", 1)[0] in files]
    assert len(chosen) >= 60
    cases, worst = _corpus(lab, chosen, f"files{half}")
    hostile_figures.record("bundles: malformed files", cases, worst_latency_s=worst)


def test_links_odd_files_and_replay_choices_are_refused(
    lab: Lab, hostile_figures: HostileFigures
) -> None:
    """Items 13, 1, 2: links in or out, FIFOs, odd names; what a bundle may not choose for
    replay (URLs, env names, specs, unknown names, IDs, scopes, the working directory)."""
    chosen = [v for v in variants() if not (":" in v.id and v.id.split(":", 1)[0] in JSON_FILES)]
    cases, worst = _corpus(lab, chosen, "tree")
    hostile_figures.record("bundles: links, names, replay choices", cases, worst_latency_s=worst)


def test_writer_never_writes_through_a_link(tmp_path: Path) -> None:
    """Item 13, writer side: a bundle directory, a subdirectory or a file that is a link."""
    from llorch_conformance.reports import BundleError

    outside = tmp_path / "outside"
    outside.mkdir()
    base = tmp_path / "pb"
    (base / "conformance").mkdir(parents=True)
    os.symlink(outside, base / "conformance" / "r1")
    with pytest.raises(BundleError, match="symbolic link"):
        write_bundle(f.results(), base=base, run_id="r1")
    assert list(outside.iterdir()) == []
    # a previous bundle of the same run id whose files were swapped for links to outside files
    out = write_bundle(f.results(), base=base, run_id="r2").path
    victim = outside / "victim.txt"
    victim.write_text("keep me\n")
    (out / "seeds.txt").unlink()
    os.symlink(victim, out / "seeds.txt")
    (out / "junit.xml").unlink()
    os.link(victim, out / "junit.xml")
    write_bundle(f.results(), base=base, run_id="r2")
    assert victim.read_text() == "keep me\n"
    assert not (out / "seeds.txt").is_symlink() and os.stat(out / "junit.xml").st_nlink == 1


def test_the_writer_records_only_what_its_readers_accept(tmp_path: Path) -> None:
    """Evidence nested 5000 deep, a 10**5000 integer, NaN: the bundle is written and verifies."""
    from llorch_conformance.reports import verify_bundle

    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    ev = f.evidence(notes={"deep": deep, "huge": 10**5000, "nan": float("nan"), "s": "\ud800"})
    out = write_bundle(f.results(f.scenario("odd evidence", ev=ev)), base=tmp_path)
    assert verify_bundle(out.path).ok


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llorch_conformance", *args],
        capture_output=True, text=True, timeout=240, cwd=cwd, env=env, check=False,
    )  # fmt: skip


def test_replay_of_a_real_run_never_runs_bundle_code(
    lab: Lab, hostile_figures: HostileFigures
) -> None:
    """Item 1 end to end, through the console: a real bundle that ships conftest.py, a plugin
    and pytest.ini and asks (run_config.json) for pytest arguments pointing at itself. Replay
    reruns the recorded selection — identical — and none of the shipped code runs."""
    env = dict(lab.env)
    run = _cli(["run", "--only", "llamacpp", "--requirement", "HTU-1003", "--seed", "5",
                "-j", "1", "--no-progress", "--proof-dir", str(lab.root / "real")],
               lab.work, env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    (bundle,) = (lab.root / "real" / "conformance").iterdir()
    _conftest(bundle, lab)
    replay = _cli(["replay", str(bundle)], lab.work, env)
    assert replay.returncode == 0, replay.stdout[-1500:] + replay.stderr[-1500:]
    assert "identical" in replay.stdout and "0 scenario(s)" not in replay.stdout
    assert not list(lab.outside.glob("pwned-*")), "bundle code ran"
    assert SECRET not in replay.stdout + replay.stderr
    hostile_figures.record("bundles: replay of a real run with shipped code", 1)


def test_replay_sends_no_secret_to_a_bundle_url(lab: Lab, hostile_figures: HostileFigures) -> None:
    """Item 2 through the console: the recorded URL is refused; allowed with the flag, the
    request carries no token unless the user names the variable."""
    b = lab.root / "orch"
    shutil.copytree(lab.pristine, b, symlinks=True)
    _targets([ORCH], ORCH_SUITE)(b, lab)
    seen = len(lab.listener.seen)
    refused = _cli(["replay", str(b)], lab.work, lab.env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--allow-bundle-url" in refused.stderr and len(lab.listener.seen) == seen
    # consent to the URL (and an unset variable named for the token): contacted, no secret
    allowed = _cli(["replay", str(b), "--allow-bundle-url", "--orchestrator-token-env",
                    "LLORCH_HOSTILE_UNSET"], lab.work, lab.env)  # fmt: skip
    assert allowed.returncode == 2, allowed.stderr[-1000:]
    assert "Traceback" not in allowed.stderr
    sent = b"".join(lab.listener.seen[seen:])
    assert sent, "the allowed URL was not contacted"
    assert SECRET.encode() not in sent and TOKEN.encode() not in sent
    assert b"authorization" not in sent.lower()
    hostile_figures.record("bundles: replay URL consent", 2)
