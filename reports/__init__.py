"""Proof bundles: the writer (PB-1001..1012), renderers, redaction audit, attestation and verify.

A bundle is what gets attached to a release and reviewed without rerunning anything::

    from llorch_conformance.reports import write_bundle, verify_bundle

    out = write_bundle(results, config={"argv": argv}, secrets=[api_key], sign_key="key.pem")
    report = verify_bundle(out.path, public_key="key.pub")
    assert report.ok, report.problems

Layers: :mod:`reports._writer` is the low-level V1 writer (names, headers, NDJSON/JSON/Markdown/
CSV); ``_render_*`` turn a :class:`conformance.RunResults` into Markdown, HTML, JUnit and Allure;
:mod:`reports._bundle` orchestrates them with the redaction audit, the manifest and the in-toto
attestation; :mod:`reports._verify` checks a bundle; :mod:`reports._replay` reruns one. Every
reader of a bundle goes through :class:`BundleReader` (:mod:`reports._bundle_read`): a bundle is
data — no link, strict bounded JSON, a schema per file — and a malformed one raises
:class:`BundleFormatError` (one line, exit 2). The CLI
commands ``verify`` and ``replay`` live in :mod:`reports._cli`.
"""

from ._attest import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_statement,
    load_private_key,
    load_public_key,
    sign_statement,
    verify_envelope,
)
from ._audit import AuditHit, audit_bundle, audit_text
from ._browser import chromium_path, dump_dom, screenshot_html
from ._bundle import BundleResult, RedactionAuditError, RedactionLeak, write_bundle
from ._bundle_read import BundleFormatError, BundleReader
from ._checker import HeaderProblem, check_headers
from ._failures import FailureCase, FailureGroup, group_failures, render_console
from ._render_allure import AllureCase, write_allure_results
from ._replay import ReplayChoice, ReplayReport, replay_bundle
from ._run_hook import add_run_options, bundle_run
from ._summary import SUMMARY_SCHEMA_ID, summary_schema, validate_summary
from ._verify import Problem, VerifyReport, verify_bundle
from ._writer import HEADER, META_RECORD, BundleError, ProofBundle, TestType, make_run_id, safe_name

__all__ = [
    "HEADER",
    "META_RECORD",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "SUMMARY_SCHEMA_ID",
    "AllureCase",
    "AuditHit",
    "BundleError",
    "BundleFormatError",
    "BundleReader",
    "BundleResult",
    "FailureCase",
    "FailureGroup",
    "HeaderProblem",
    "Problem",
    "ProofBundle",
    "RedactionAuditError",
    "RedactionLeak",
    "ReplayChoice",
    "ReplayReport",
    "TestType",
    "VerifyReport",
    "add_run_options",
    "audit_bundle",
    "audit_text",
    "build_statement",
    "bundle_run",
    "check_headers",
    "chromium_path",
    "dump_dom",
    "group_failures",
    "load_private_key",
    "load_public_key",
    "make_run_id",
    "render_console",
    "replay_bundle",
    "safe_name",
    "screenshot_html",
    "sign_statement",
    "summary_schema",
    "validate_summary",
    "verify_bundle",
    "verify_envelope",
    "write_allure_results",
    "write_bundle",
]
