"""Catalogue integrity and the coverage rule: every ID has a scenario or a visible reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pytest_bdd.parser import FeatureParser

from llorch_conformance.conformance import (
    CATALOGUE,
    PENDING_COMPONENTS,
    Level,
    get_requirement,
    is_known,
)
from llorch_conformance.conformance._catalogue import ID_PATTERN
from llorch_conformance.conformance._targets import KNOWN_DIALECTS
from llorch_conformance.features import AREAS, feature_files, features_root
from llorch_conformance.steps._plugin import KNOWN_NEEDS

_OUR_PLAIN_TAGS = {"per-run", "black-box"}


def _scenarios() -> list[tuple[Path, str, set[str]]]:
    out = []
    for path in feature_files():
        feature = FeatureParser(str(path.parent), path.name).parse()
        for name, sc in feature.scenarios.items():
            out.append((path, name, set(sc.tags) | set(feature.tags)))
    return out


def test_ids_are_unique_and_well_formed() -> None:
    ids = [r.id for r in CATALOGUE]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicate IDs: {dupes}"
    bad = [i for i in ids if not ID_PATTERN.match(i)]
    assert not bad, f"IDs outside the pattern: {bad}"
    for r in CATALOGUE:
        assert r.text.strip() and r.source.strip(), r.id
        assert isinstance(r.level, Level)


@pytest.mark.parametrize(
    ("prefix", "lo", "hi"),
    [
        ("ADAPT", 3000, 3005),
        ("WA-INT", 3001, 3008),
        ("HTU", 1001, 1005),
        ("HTU-EXP", 1101, 1106),
        ("HTU-ERR", 4001, 4004),
        ("ORCH", 3054, 3058),
        ("ORCH", 3600, 3604),
        ("ORCH", 3610, 3613),
        ("AH", 1001, 1007),
        ("AH", 2001, 2003),
        ("SSE", 1001, 1005),
        ("ORCH", 3406, 3409),
        ("OC-TEST", 7001, 7003),
        ("AUTH", 1001, 1008),
        ("PB", 1001, 1012),
    ],
)
def test_every_issue_range_is_in_the_catalogue(prefix: str, lo: int, hi: int) -> None:
    missing = [f"{prefix}-{n}" for n in range(lo, hi + 1) if not is_known(f"{prefix}-{n}")]
    assert not missing, f"catalogue lacks {missing}"


def test_named_ids_of_the_issue_are_present() -> None:
    named = [
        "ADAPT-3101", "HTU-PERF-1301", "HTU-PERF-1302", "HTU-SEC-1401", "HTU-SEC-1402",
        "OC-ADAPT-5001", "OC-ADAPT-5070", "OC-ADAPT-OAI-6000", "OC-ADAPT-OAI-6031", "ORCH-3620",
        "OC-METRICS-7101", "OC-METRICS-7102", "OC-METRICS-7110",
    ]  # fmt: skip
    assert [n for n in named if not is_known(n)] == []


def test_pending_ids_name_a_known_component() -> None:
    for r in CATALOGUE:
        if r.pending is not None:
            assert r.pending in PENDING_COMPONENTS, r.id


def test_unknown_id_lookup_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown requirement ID 'NOPE-0000'"):
        get_requirement("NOPE-0000")


def test_features_ship_as_package_data() -> None:
    root = features_root()
    assert (root / "__init__.py").exists()
    for area in AREAS:
        assert (root / area / "__init__.py").exists(), f"features/{area} is not a package"
    assert len(feature_files()) >= 10


def test_every_tag_is_ours_and_every_id_tag_is_known() -> None:
    problems = []
    for path, name, tags in _scenarios():
        for tag in tags:
            if ID_PATTERN.match(tag):
                if not is_known(tag):
                    problems.append(f"{path.name}: {name!r} tags unknown ID {tag}")
            elif tag.startswith("needs:"):
                if tag[len("needs:") :] not in KNOWN_NEEDS:
                    problems.append(f"{path.name}: {name!r} needs an unknown capability @{tag}")
            elif tag.startswith("dialect:"):
                if tag[len("dialect:") :] not in KNOWN_DIALECTS:
                    problems.append(f"{path.name}: {name!r} names an unknown dialect @{tag}")
            elif tag not in _OUR_PLAIN_TAGS:
                problems.append(f"{path.name}: {name!r} has an unknown tag @{tag}")
        if not any(ID_PATTERN.match(t) for t in tags):
            problems.append(f"{path.name}: {name!r} proves no requirement (no ID tag)")
    assert not problems, "\n".join(problems)


def test_every_catalogue_id_has_a_scenario_or_a_pending_layer() -> None:
    tagged = {t for _, _, tags in _scenarios() for t in tags}
    uncovered = [r.id for r in CATALOGUE if r.pending is None and r.id not in tagged]
    assert not uncovered, f"IDs without a scenario (and no pending layer): {uncovered}"
    pending_but_tagged = [r.id for r in CATALOGUE if r.pending is not None and r.id in tagged]
    assert not pending_but_tagged, (
        f"IDs marked pending although scenarios prove them: {pending_but_tagged}"
    )


def test_scenario_names_are_unique() -> None:
    names = Counter(name for _, name, _ in _scenarios())
    assert [n for n, c in names.items() if c > 1] == []


def test_coverage_rule_catches_an_unknown_tag(tmp_path: Path) -> None:
    """The rule above can fail: a feature naming an unknown ID is found by the same parser."""
    (tmp_path / "bad.feature").write_text(
        "Feature: bad\n\n  @ADAPT-9999\n  Scenario: uses an unknown ID\n    Given nothing\n",
        "utf-8",
    )
    feature = FeatureParser(str(tmp_path), "bad.feature").parse()
    tags = {t for sc in feature.scenarios.values() for t in sc.tags}
    assert "ADAPT-9999" in tags and ID_PATTERN.match("ADAPT-9999") and not is_known("ADAPT-9999")
