"""The redaction audit fails the run on a secret, naming file and line; it never just warns."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from llorch_conformance.adapters.http_util import mask
from llorch_conformance.conformance.cli import main
from llorch_conformance.reports import (
    RedactionAuditError,
    RedactionLeak,
    audit_text,
    verify_bundle,
    write_bundle,
)

from . import _factory as f

SECRET = "s3cr3t-token-xyz-0123"


def test_patterns_and_configured_forms() -> None:
    text = "\n".join(
        [
            "Authorization: Bearer abcdefghijklmnop1234",
            "Authorization: Bearer ****9f86d0",  # a mask is never a hit
            "key=sk-abcdefghijklmnopqrstu",
            "aws AKIAABCDEFGHIJKLMNOP here",
            "-----BEGIN PRIVATE KEY-----",
            "https://user:hunter22@example.invalid/x",
            '{"token": "Hello", "t": " world", "max_tokens": 8}',  # wire fields, not secrets
            "encoded " + base64.b64encode(SECRET.encode()).decode(),
        ]
    )
    hits = audit_text(text, "f.txt", [SECRET])
    got = {(h.line, h.rule) for h in hits}
    assert got == {
        (1, "authorization-header"),
        (1, "bearer-token"),
        (3, "openai-key"),
        (4, "aws-access-key-id"),
        (5, "private-key"),
        (6, "url-password"),
        (8, "configured-secret:base64"),
    }
    assert all(SECRET not in str(h) and "hunter22" not in str(h) for h in hits)
    assert next(h for h in hits if h.line == 8).masked == mask(SECRET)


def test_a_real_bundle_has_no_false_positives(tmp_path: Path) -> None:
    out = write_bundle(f.all_statuses(), base=tmp_path, secrets=[SECRET])
    audit = json.loads((out.path / "redaction_audit.json").read_text())
    assert audit["hits"] == [] and audit["files_scanned"] > 20


def test_adapter_leak_is_a_conformance_failure(tmp_path: Path) -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    ev = f.evidence(
        logs=[{"level": "ERROR", "logger": "adapter", "message": f"upstream said {encoded}"}]
    )
    res = f.results(f.scenario("leaks", ev=ev))
    with pytest.raises(RedactionLeak) as info:
        write_bundle(res, base=tmp_path, run_id="r", secrets=[SECRET])
    exc = info.value
    assert exc.requirement == "HTU-SEC-1402" and exc.adapters == ["llamacpp"]
    bundle = tmp_path / "conformance" / "r"
    hit = next(h for h in exc.hits if h.file.endswith("evidence.json"))
    assert hit.file == "scenarios/llamacpp/grammar__leaks/evidence.json"
    line = (bundle / hit.file).read_text().splitlines()[hit.line - 1]
    assert "****scrub" in line  # scrubbed in place
    assert all(
        encoded not in p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file()
    )
    record = json.loads((bundle / "redaction_audit.json").read_text())
    assert {h["blamed"] for h in record["hits"]} == {"adapter llamacpp"}
    assert not (bundle / "manifest.json").exists()
    rules = {(p.file, p.rule) for p in verify_bundle(bundle).problems}
    assert ("manifest.json", "layout/required") in rules
    assert (hit.file, "redaction/audit") in rules


def test_harness_written_secret_is_a_harness_error(tmp_path: Path) -> None:
    res = f.results()
    with pytest.raises(RedactionAuditError) as info:
        write_bundle(res, base=tmp_path, run_id="r", config={"note": "AKIAABCDEFGHIJKLMNOP"})
    assert [(h.file, h.rule) for h in info.value.hits] == [("run_config.json", "aws-access-key-id")]
    assert "run_config.json:" in str(info.value)


def test_cli_exit_codes_for_audit_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    ev = f.evidence(logs=[{"level": "ERROR", "logger": "adapter", "message": encoded}])
    results_path = tmp_path / "results.json"
    f.results(f.scenario("leaks", ev=ev)).write(results_path)
    rc = main(
        ["bundle", str(results_path), "--proof-dir", str(tmp_path / "pb"), "--secret", SECRET]
    )
    assert rc == 1
    assert "HTU-SEC-1402" in capsys.readouterr().err


# -- the anchored scan finds exactly what a whole-text scan per pattern finds ----------------

_SECRETS_IN_CORPUS = (
    "Authorization: Bearer abcdefghijklmnop1234",
    "proxy-authorization=basic dXNlcjpwYXNzd29yZA==",
    '"AUTHORIZATION": "token ghp_abcdefghijklmnopqrstuvwxyz0123456789"',
    "bearer ABCDEFGHIJKLMNOPQRSTUV==",
    "x-api-key: k3y-value-123456",
    "X-Api-Key='another-key-value'",
    "sk-abcdefghijklmnopqrstu",
    "task-sk-abcdefghijklmnopqrstu",
    "hf_ABCDEFGHIJKLMNOPQRSTUVWX",
    "github_pat_" + "A1" * 25,
    "gho_" + "x" * 36,
    "xoxb-1234567890-abcdef",
    "AKIAABCDEFGHIJKLMNOP",
    "xASIAABCDEFGHIJKLMNOP",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "https://user:hunter2pass@example.com/x",
    "git+ssh://me:pw1@host",
    "a.b-c+d://u:secretpw@h",
    "HTTP://U:PASSWORD@H",
    "http://u:****9f86d0@h",  # a mask: no hit
    "Authorization: Bearer ****9f86d0",
    "\u212aey x-api-\u212aey: kelvin-sign-key",  # Kelvin sign matches k under IGNORECASE
    "authorızation: dotless-i-value-123",  # dotless i: only the whole-text scan sees it
    "\u0130 bearer abcdefghijklmnopqrstuvwx",  # lower() makes this text longer
    "ftp://a:b@c://d:eee@f",
    "sk-" * 12 + "abcdefghijklmnopqrstuvwx",
)
_FILLER = ('{"kind":"token","t":"task-1"}', "data: [DONE]", "é\n", "://", "bearer", " ", "")


def _whole_text(text: str) -> list[tuple[str, int, int, str]]:
    from llorch_conformance.reports._audit import _PATTERNS

    out = [
        (rule, m.start(), m.end(), m.group("t"))
        for rule, pat in _PATTERNS
        for m in pat.finditer(text)
    ]
    return sorted(out)


def _anchored(text: str) -> list[tuple[str, int, int, str]]:
    from llorch_conformance.reports._audit import pattern_matches

    return sorted((rule, m.start(), m.end(), m.group("t")) for rule, m in pattern_matches(text))


def test_anchored_scan_equals_whole_text_scan_on_a_corpus() -> None:
    """Every secret at the start, middle and end of texts, glued to neighbours or spaced."""
    cases = 0
    for secret in _SECRETS_IN_CORPUS:
        for before in _FILLER:
            for after in _FILLER:
                for sep in ("", " ", "\n"):
                    text = f"{before}{sep}{secret}{sep}{after}"
                    assert _anchored(text) == _whole_text(text), text
                    cases += 1
    joined = "\n".join(_SECRETS_IN_CORPUS)
    assert _anchored(joined) == _whole_text(joined)
    assert len(_whole_text(joined)) >= 20  # the corpus really holds hits
    assert cases > 1000


@pytest.mark.parametrize("seed", range(3))
def test_anchored_scan_equals_whole_text_scan_on_random_mixtures(seed: int) -> None:
    import random

    rng = random.Random(seed)
    pieces = [*_SECRETS_IN_CORPUS, *_FILLER, ":", "@", "/", "-", "_", "A", "a", "\u0131", "\u017f"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert _anchored(text) == _whole_text(text), text


def test_list_files_is_what_rglob_is_file_lists(tmp_path: Path) -> None:
    """Same set and (sorted by parts) the same order as the Path walk it replaces."""
    import os

    from llorch_conformance.reports._audit import list_files

    root, outside = tmp_path / "bundle", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a-b").mkdir()
    (outside / "sub").mkdir(parents=True)
    for p in (root / "a/b/x", root / "a-b/y", root / ".hidden", outside / "o", outside / "sub/z"):
        p.write_text("1")
    os.symlink(outside / "o", root / "link-to-file")
    os.symlink(outside / "sub", root / "link-to-dir")  # not descended, as rglob does not
    os.symlink(root / "missing", root / "broken")
    old = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    assert sorted(list_files(root), key=lambda r: r.split("/")) == old
    assert set(old) == {"a/b/x", "a-b/y", ".hidden", "link-to-file"}


def test_line_numbers_of_many_hits_in_one_text() -> None:
    """Every hit gets its 1-based line (the newlines are listed once per text, not counted from
    the start for each hit): a secret leaked into each record of a transcript, plus patterns."""
    secret = "s3cr3t-value-0123"
    lines = [f'{{"i": {i}, "echo": "{secret if i % 3 == 0 else "x"}"}}' for i in range(3000)]
    lines[7] += " Authorization: Bearer abcdefghijklmnop0123"
    text = "\n".join(lines) + "\n"
    hits = audit_text(text, "events.ndjson", [secret])
    expected = sorted(
        [(i + 1, "configured-secret:raw") for i in range(0, 3000, 3)]
        + [(8, "authorization-header"), (8, "bearer-token")]
    )
    assert sorted((h.line, h.rule) for h in hits) == expected
    assert audit_text("no newline " + secret, "f", [secret])[0].line == 1
