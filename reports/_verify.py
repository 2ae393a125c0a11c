"""``verify_bundle``: is this proof bundle complete, untampered and well-formed?

Rules, each reported with the file it concerns (a reviewer fixes files, not abstractions):

* ``layout/required`` — the files every conformance bundle has (summary, report, manifest, ...);
* ``PB-1012 ...`` — the original checker's header rules (:mod:`reports._checker`);
* ``manifest/hash``, ``manifest/missing``, ``manifest/unlisted``, ``manifest/path`` — every file is
  listed with its SHA-256, nothing listed is missing, nothing on disk is unlisted (a file added
  after the run is tampering too), and no listed path escapes the bundle;
* ``summary/schema`` — ``summary.json`` against the shipped JSON Schema;
* ``attestation/statement`` and ``attestation/subject`` — the in-toto statement exists, has the
  right types and names the manifest's current digest;
* ``attestation/signature`` — when a DSSE envelope is present its payload is the statement; with a
  public key it must verify (and a key given for an unsigned bundle is a problem);
* ``redaction/audit`` — the writer's audit record shows no hit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from ._attest import PREDICATE_TYPE, STATEMENT_TYPE, load_public_key, verify_envelope
from ._bundle import ENVELOPE, MANIFEST, NOT_IN_MANIFEST, STATEMENT, sha256_file
from ._checker import check_headers
from ._summary import validate_summary

__all__ = ["REQUIRED_FILES", "Problem", "VerifyReport", "verify_bundle"]

REQUIRED_FILES: Final = (
    MANIFEST,
    "summary.json",
    "test_report.md",
    "report.html",
    "junit.xml",
    "results.json",
    "requirements.json",
    "environment.json",
    "run_config.json",
    "seeds.txt",
    "timings.csv",
    "error_mapping_table.md",
    "redaction_audit.json",
    STATEMENT,
)


@dataclass(frozen=True)
class Problem:
    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.rule}: {self.message}"


@dataclass
class VerifyReport:
    bundle: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    signature_verified: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, rule: str, message: str) -> None:
        self.problems.append(Problem(file, rule, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "ok": self.ok,
            "files_checked": self.files_checked,
            "signature_verified": self.signature_verified,
            "problems": [p.__dict__ for p in self.problems],
            "notes": self.notes,
        }


def _load_json(report: VerifyReport, root: Path, name: str) -> Any:
    path = root / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        report.add(name, "json/parse", f"not valid JSON ({exc})")
        return None


def _check_manifest(report: VerifyReport, root: Path) -> None:
    manifest = _load_json(report, root, MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        if (root / MANIFEST).is_file():
            report.add(MANIFEST, "manifest/format", "expected an object with a 'files' list")
        return
    listed: set[str] = set()
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            report.add(MANIFEST, "manifest/format", f"bad entry {entry!r}")
            continue
        rel = entry["path"]
        pp = PurePosixPath(rel)
        if pp.is_absolute() or ".." in pp.parts or rel in NOT_IN_MANIFEST:
            report.add(MANIFEST, "manifest/path", f"entry {rel!r} is not a file of this bundle")
            continue
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            report.add(rel, "manifest/missing", "listed in manifest.json but absent")
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            report.add(rel, "manifest/hash", f"SHA-256 {digest[:16]}… differs from the manifest's")
        report.files_checked += 1
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in listed and rel not in NOT_IN_MANIFEST:
            report.add(
                rel, "manifest/unlisted", "file is not in manifest.json (added after the run?)"
            )


def _check_attestation(report: VerifyReport, root: Path, public_key: Any) -> None:
    statement_path = root / STATEMENT
    if not statement_path.is_file():
        return  # reported by layout/required
    statement = _load_json(report, root, STATEMENT)
    if not isinstance(statement, dict):
        return
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        report.add(STATEMENT, "attestation/statement", "not an in-toto v1 test-result statement")
    subjects = statement.get("subject")
    want = sha256_file(root / MANIFEST) if (root / MANIFEST).is_file() else None
    got = None
    if isinstance(subjects, list):
        for s in subjects:
            if (
                isinstance(s, dict)
                and s.get("name") == MANIFEST
                and isinstance(s.get("digest"), dict)
            ):
                got = s["digest"].get("sha256")
    if want is not None and got != want:
        report.add(STATEMENT, "attestation/subject", "subject digest does not match manifest.json")
    env_path = root / ENVELOPE
    if not env_path.is_file():
        if public_key is not None:
            report.add(
                ENVELOPE,
                "attestation/signature",
                "a public key was given but the bundle is not signed",
            )
        return
    envelope = _load_json(report, root, ENVELOPE)
    if not isinstance(envelope, dict):
        return
    if public_key is None:
        import base64

        try:
            payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        except ValueError:
            payload = b""
        if payload != statement_path.read_bytes():
            report.add(
                ENVELOPE, "attestation/signature", "signed payload is not the bundle's statement"
            )
        report.notes.append("signature present but not checked: pass --public-key to verify it")
        return
    ok, payload, reason = verify_envelope(envelope, public_key)
    if not ok:
        report.add(ENVELOPE, "attestation/signature", reason)
    elif payload != statement_path.read_bytes():
        report.add(
            ENVELOPE, "attestation/signature", "signed payload is not the bundle's statement"
        )
    else:
        report.signature_verified = True
        if reason:
            report.notes.append(reason)


def verify_bundle(bundle: str | Path, *, public_key: str | Path | None = None) -> VerifyReport:
    """Check ``bundle`` by every rule above; raises only for a path that is not a directory."""
    from llorch_conformance.adapters.api import UsageError

    root = Path(bundle)
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory (expected <base>/conformance/<run_id>/)")
    if not any((root / n).is_file() for n in ("manifest.json", "summary.json", "results.json")):
        raise UsageError(
            f"{root}: not a proof bundle (no manifest.json, summary.json or results.json; "
            "expected <base>/conformance/<run_id>/)"
        )
    key = load_public_key(public_key) if public_key is not None else None  # unreadable: exit 2
    report = VerifyReport(root)
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            report.add(name, "layout/required", "missing")
    for hp in check_headers(root):
        report.add(hp.file, hp.rule, hp.message)
    _check_manifest(report, root)
    summary = _load_json(report, root, "summary.json")
    if summary is not None:
        for line in validate_summary(summary):
            report.add("summary.json", "summary/schema", line)
    audit = _load_json(report, root, "redaction_audit.json")
    if isinstance(audit, dict) and audit.get("hits"):
        for h in audit["hits"]:
            report.add(
                str(h.get("file")),
                "redaction/audit",
                f"line {h.get('line')}: {h.get('rule')} ({h.get('masked')})",
            )
    _check_attestation(report, root, key)
    return report
