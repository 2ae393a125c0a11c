"""The declaration table: complete for every (requirement, @needs capability) pair of the features."""

from __future__ import annotations

import re
from pathlib import Path

from llorch_conformance.conformance import get_requirement, is_known
from llorch_conformance.conformance._catalogue import ID_PATTERN, Level
from llorch_conformance.conformance._declarations import (
    DECLARABLE,
    DECLARATION_RULES,
    declaration_allowed,
    declaration_rule,
)

_FEATURES = Path(__file__).resolve().parents[2] / "features"


def _feature_pairs() -> set[tuple[str, str]]:
    """(requirement, capability) for every scenario tagged with both (tag lines only)."""
    pairs: set[tuple[str, str]] = set()
    for path in _FEATURES.rglob("*.feature"):
        for line in path.read_text("utf-8").splitlines():
            tags = re.findall(r"@(\S+)", line.strip()) if line.strip().startswith("@") else []
            needs = [t.split(":", 1)[1] for t in tags if t.startswith("needs:")]
            ids = [t for t in tags if ID_PATTERN.match(t)]
            pairs |= {(i, n) for i in ids for n in needs}
    return pairs


def test_every_pair_the_features_produce_is_decided_explicitly() -> None:
    pairs = _feature_pairs()
    assert pairs, "no @needs: scenario found: the feature parser is broken"
    listed = {(r.requirement, r.capability) for r in DECLARATION_RULES}
    missing = sorted(pairs - listed)
    assert not missing, f"add these to conformance._declarations.DECLARATION_RULES: {missing}"


def test_the_table_is_well_formed() -> None:
    seen: set[tuple[str, str]] = set()
    for rule in DECLARATION_RULES:
        assert is_known(rule.requirement), rule
        assert rule.capability in DECLARABLE, rule
        assert rule.why, rule
        assert (rule.requirement, rule.capability) not in seen, f"duplicate {rule}"
        seen.add((rule.requirement, rule.capability))


def test_the_issue_13_musts_cannot_be_declared_away() -> None:
    assert not declaration_allowed("WA-INT-3002", "cancel")
    assert not declaration_allowed("ADAPT-3002", "deadline")
    assert not declaration_allowed("ADAPT-3005", "deadline")
    assert not declaration_allowed("HTU-SEC-1401", "tls")
    assert declaration_allowed("ADAPT-3000", "cancel")  # best-effort in seed 000
    assert declaration_allowed("OC-ADAPT-5001a", "unsupported:metrics_scrape")


def test_defaults_follow_the_level() -> None:
    must = declaration_rule("WA-INT-3001", "cancel")
    assert get_requirement("WA-INT-3001").level is Level.MUST and not must.allowed
    should = declaration_rule("OC-ADAPT-5001a", "retries")
    assert should.allowed and "SHOULD" in should.why
    assert not declaration_allowed("NOT-A-1", "cancel")


# -- the vocabulary (adapters.api.Capability) ------------------------------------------------
def test_one_vocabulary_feeds_the_table_the_tags_and_the_contract() -> None:
    from llorch_conformance.adapters.api import Capability
    from llorch_conformance.steps._plugin import KNOWN_NEEDS

    assert set(DECLARABLE) == set(KNOWN_NEEDS) == {c.value for c in Capability}
    assert {n for _, n in _feature_pairs()} <= set(DECLARABLE)


def test_declared_unsupported_takes_members_names_and_the_prefixed_form() -> None:
    from llorch_conformance.adapters.api import Capabilities, Capability

    caps = Capabilities(
        engine="vllm",
        engine_version="0.6.3",
        declared_unsupported=(Capability.CANCEL, "tls", "unsupported:retries"),
    )
    assert "cancel" in caps.declared_unsupported and Capability.TLS in caps.declared_unsupported
    as_json = caps.to_dict()["declared_unsupported"]
    assert as_json == ["cancel", "tls", "unsupported:retries"]
    assert all(type(x) is str for x in as_json)


def test_an_unknown_declaration_is_a_clear_usage_error() -> None:
    import pytest

    from llorch_conformance.adapters.api import Capabilities, UsageError

    for bad in ("cancle", "unsupported:gpu", ""):
        with pytest.raises(UsageError) as err:
            Capabilities(engine="vllm", engine_version="1", declared_unsupported=("cancel", bad))
        msg = str(err.value)
        assert repr(bad) in msg and "known: cancel, api_key, tls" in msg, msg
        assert "\n" not in msg
