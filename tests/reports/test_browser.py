"""report.html seen in a real browser: headless Chromium (Debian's package) renders one matrix row
per requirement, and the screenshot lands in the bundle (listed in the manifest)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llorch_conformance.reports import chromium_path, dump_dom, verify_bundle, write_bundle

from . import _factory as f

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
)


def test_report_renders_one_row_per_requirement_and_is_screenshotted(tmp_path: Path) -> None:
    out = write_bundle(f.all_statuses(), base=tmp_path, screenshot=True)
    summary = json.loads((out.path / "summary.json").read_text())
    dom = dump_dom(out.path / "report.html")
    rows = re.findall(r'<tr class="req-row" data-req="([^"]+)"', dom)
    assert len(rows) == len(summary["requirements"])
    assert rows == [r["id"] for r in summary["requirements"]]
    # the verdict cells made it into the rendered DOM, linked to the transcripts
    assert re.search(r'data-req="ADAPT-3002".*?<td class="fail">fail <a href="#sc-\d+">', dom, re.S)
    png = out.path / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # a rendered page, not an empty canvas
    manifest = json.loads((out.path / "manifest.json").read_text())
    assert "report.png" in {e["path"] for e in manifest["files"]}
    assert verify_bundle(out.path).ok
