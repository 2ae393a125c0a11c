"""Allure results written directly with ``allure-python-commons`` (no Allure pytest plugin).

Why direct: ``allure-pytest`` and ``allure-pytest-bdd`` cannot both be loaded in one pytest process
(DESIGN.md), yet a bundle wants BDD scenarios and plain tests side by side. The model objects and
the file logger of ``allure-python-commons`` write the standard ``*-result.json`` and attachment
files, so the official Allure renderers read them unchanged.

Status mapping: pass → passed, fail → failed, error → broken, skipped → skipped, unsupported →
skipped with an ``unsupported:`` message and a ``llorch-status=unsupported`` label. Labels:
``parentSuite`` = llorch-conformance, ``suite`` = adapter, ``feature``/``story`` = feature and
scenario (BDD) or module and test (plain), one ``tag`` per requirement ID. ``historyId`` is stable
across runs (adapter + nodeid) so Allure's history and retries views line up.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import Attachment, Label, Parameter, Status, StatusDetails, TestResult

from ._model import ScenarioFiles, adapter_label, feature_label

__all__ = ["AllureCase", "cases_from_scenarios", "write_allure_results"]

_STATUS: Final = {
    "pass": Status.PASSED,
    "fail": Status.FAILED,
    "error": Status.BROKEN,
    "skipped": Status.SKIPPED,
    "unsupported": Status.SKIPPED,
}


@dataclass
class AllureCase:
    """One test for Allure, BDD scenario or plain test alike."""

    full_name: str
    name: str
    status: str  # one of the five llorch statuses
    suite: str
    feature: str
    story: str
    kind: str  # "bdd" | "plain"
    start_ms: int
    stop_ms: int
    message: str = ""
    tags: Sequence[str] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[tuple[str, str, str]] = ()  # (name, mime type, text)


def cases_from_scenarios(
    placed: Sequence[ScenarioFiles],
    start_ms: int,
    attachments: Mapping[str, Sequence[tuple[str, str, str]]],
) -> list[AllureCase]:
    out: list[AllureCase] = []
    t = start_ms
    for p in placed:
        s = p.result
        dur = int(float(s.duration_s) * 1000)
        out.append(
            AllureCase(
                full_name=f"{s.adapter}::{s.nodeid}",
                name=s.scenario,
                status=s.status,
                suite=adapter_label(s.adapter),
                feature=feature_label(s.feature),
                story=s.scenario,
                kind="bdd",
                start_ms=t,
                stop_ms=t + dur,
                message=s.message,
                tags=list(s.requirements),
                parameters={"adapter": s.adapter, "dialect": str(s.dialect)},
                attachments=attachments.get(p.dir, ()),
            )
        )
        t += dur
    return out


def write_allure_results(cases: Iterable[AllureCase], dest: Path, *, clean: bool = False) -> Path:
    """Write one ``<uuid>-result.json`` per case (and its attachments) into ``dest``."""
    logger = AllureFileLogger(str(dest), clean=clean)  # type: ignore[no-untyped-call]
    for c in cases:
        details = None
        if c.message or c.status == "unsupported":
            prefix = (
                "unsupported: "
                if c.status == "unsupported" and not c.message.startswith("unsupported")
                else ""
            )
            details = StatusDetails(message=prefix + c.message)
        labels = [
            Label(name="parentSuite", value="llorch-conformance"),
            Label(name="suite", value=c.suite),
            Label(name="feature", value=c.feature),
            Label(name="story", value=c.story),
            Label(name="framework", value="pytest-bdd" if c.kind == "bdd" else "pytest"),
            Label(name="language", value="python"),
            Label(name="llorch-status", value=c.status),
            *(Label(name="tag", value=t) for t in c.tags),
        ]
        atts = []
        for name, mime, text in c.attachments:
            ext = {"application/x-ndjson": "ndjson", "application/json": "json"}.get(mime, "txt")
            source = f"{uuid.uuid4()}-attachment.{ext}"
            logger.report_attached_data(body=text, file_name=source)  # type: ignore[no-untyped-call]
            atts.append(Attachment(name=name, source=source, type=mime))
        result = TestResult(
            uuid=str(uuid.uuid4()),
            historyId=hashlib.md5(c.full_name.encode("utf-8"), usedforsecurity=False).hexdigest(),
            testCaseId=hashlib.md5(c.full_name.encode("utf-8"), usedforsecurity=False).hexdigest(),
            fullName=c.full_name,
            name=c.name,
            status=_STATUS.get(c.status, Status.UNKNOWN),
            statusDetails=details,
            stage="finished",
            start=c.start_ms,
            stop=c.stop_ms,
            labels=labels,
            parameters=[Parameter(name=k, value=json.dumps(v)) for k, v in c.parameters.items()],
            attachments=atts,
        )
        logger.report_result(result)  # type: ignore[no-untyped-call]
    _meta_siblings(dest)
    return dest


def _meta_siblings(dest: Path) -> None:
    """PB-1012 for the JSON files Allure's logger wrote (Allure's readers ignore ``.meta``)."""
    from ._writer import HEADER

    for path in dest.glob("*.json"):
        meta = path.with_name(path.name + ".meta")
        if not meta.exists():
            meta.write_text(HEADER + "\n", encoding="utf-8")
