"""``verify_bundle``: is this proof bundle complete, untampered and well-formed?

First the bundle must be readable as data (:mod:`reports._bundle_read`): no link of any kind,
no odd file, every JSON file strict, bounded and of its schema, no manifest path leaving the
bundle. A bundle that is not is refused with one line naming the file (:class:`BundleFormatError`,
exit 2) — it cannot be judged. A readable bundle is judged by these rules, each reported with
the file it concerns (a reviewer fixes files, not abstractions; exit 1 when any is broken):

* ``layout/required`` — the files every conformance bundle has (summary, report, manifest, ...);
* ``PB-1012 ...`` — the original checker's header rules (:mod:`reports._checker`);
* ``manifest/hash``, ``manifest/missing``, ``manifest/unlisted`` — every file is listed with its
  SHA-256, nothing listed is missing, nothing on disk is unlisted (a file added after the run is
  tampering too);
* ``attestation/statement`` and ``attestation/subject`` — the in-toto statement exists, has the
  right types and names the manifest's current digest;
* ``attestation/signature`` — when a DSSE envelope is present its payload is the statement; with a
  public key it must verify (and a key given for an unsigned bundle is a problem);
* ``redaction/audit`` — the writer's audit record shows no hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._attest import PREDICATE_TYPE, STATEMENT_TYPE, load_public_key, verify_envelope
from ._bundle import ENVELOPE, MANIFEST, NOT_IN_MANIFEST, STATEMENT
from ._bundle_read import MAX_JSON_BYTES, BundleReader, one_line, rel_parts
from ._checker import check_headers_in

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


def _check_manifest(report: VerifyReport, reader: BundleReader) -> None:
    if not reader.has(MANIFEST):
        return  # reported by layout/required
    manifest = reader.json(MANIFEST, schema="manifest")
    listed: set[str] = set()
    for i, entry in enumerate(manifest["files"]):
        rel = entry["path"]
        try:
            rel_parts(rel)
        except ValueError as exc:
            raise reader.fail(MANIFEST, f"files[{i}].path {one_line(rel, 80)!r} {exc}") from None
        if rel in NOT_IN_MANIFEST:
            raise reader.fail(MANIFEST, f"files[{i}].path {rel!r} cannot be listed in it")
        listed.add(rel)
        if not reader.has(rel):
            report.add(rel, "manifest/missing", "listed in manifest.json but absent")
            continue
        digest = reader.sha256(rel)
        if digest != entry["sha256"]:
            report.add(rel, "manifest/hash", f"SHA-256 {digest[:16]}… differs from the manifest's")
        report.files_checked += 1
    for rel in sorted(reader.files):
        if rel not in listed and rel not in NOT_IN_MANIFEST:
            report.add(
                rel, "manifest/unlisted", "file is not in manifest.json (added after the run?)"
            )


def _check_attestation(report: VerifyReport, reader: BundleReader, public_key: Any) -> None:
    if not reader.has(STATEMENT):
        return  # reported by layout/required
    statement = reader.json(STATEMENT, schema="statement")
    statement_bytes = reader.read_bytes(STATEMENT, MAX_JSON_BYTES)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        report.add(STATEMENT, "attestation/statement", "not an in-toto v1 test-result statement")
    subjects = statement.get("subject")
    want = reader.sha256(MANIFEST) if reader.has(MANIFEST) else None
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
    if not reader.has(ENVELOPE):
        if public_key is not None:
            report.add(
                ENVELOPE,
                "attestation/signature",
                "a public key was given but the bundle is not signed",
            )
        return
    envelope = reader.json(ENVELOPE, schema="envelope")
    if public_key is None:
        import base64

        try:
            payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        except ValueError:
            payload = b""
        if payload != statement_bytes:
            report.add(
                ENVELOPE, "attestation/signature", "signed payload is not the bundle's statement"
            )
        report.notes.append("signature present but not checked: pass --public-key to verify it")
        return
    ok, payload, reason = verify_envelope(envelope, public_key)
    if not ok:
        report.add(ENVELOPE, "attestation/signature", reason)
    elif payload != statement_bytes:
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
        raise UsageError(
            f"{one_line(root)}: not a directory (expected <base>/conformance/<run_id>/)"
        )
    reader = BundleReader(root)  # links, odd files, odd names: one line, exit 2
    if not any(reader.has(n) for n in ("manifest.json", "summary.json", "results.json")):
        raise UsageError(
            f"{one_line(root)}: not a proof bundle (no manifest.json, summary.json or "
            "results.json; expected <base>/conformance/<run_id>/)"
        )
    key = load_public_key(public_key) if public_key is not None else None  # unreadable: exit 2
    report = VerifyReport(root)
    for name in REQUIRED_FILES:
        if not reader.has(name):
            report.add(name, "layout/required", "missing")
    # Readable as data first (before any hashing: a huge file is refused by its size), and
    # what the gate's and replay's readers read must pass their checks too.
    reader.json("summary.json", schema="summary", required=False)
    reader.json("results.json", schema="results", required=False)
    reader.json("run_config.json", schema="run_config", required=False)
    reader.json("environment.json", schema="environment", required=False)
    reader.json("requirements.json", schema="requirements", required=False)
    audit = reader.json("redaction_audit.json", schema="redaction_audit", required=False)
    for hp in check_headers_in(reader):
        report.add(hp.file, hp.rule, hp.message)
    _check_manifest(report, reader)
    for h in audit["hits"] if audit is not None else []:
        report.add(
            one_line(h.get("file"), 120),
            "redaction/audit",
            one_line(f"line {h.get('line')}: {h.get('rule')} ({h.get('masked')})"),
        )
    _check_attestation(report, reader, key)
    return report
