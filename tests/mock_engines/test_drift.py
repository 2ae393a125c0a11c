"""The drift check's grading rules, its metrics validation and its command line, without a live engine.

The comparisons run on hand-built exchanges (each rule of the module docstring once); the
command line is driven against a mock standing in for the "real" engine, so the whole path —
discovery, probes on both sides, report files, exit code — runs over real sockets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llorch_conformance.conformance.cli import main
from llorch_conformance.conformance.real import (
    Cassette,
    Exchange,
    check_exposition,
    compare_cassettes,
)
from llorch_conformance.mock_engines import run_mock_engine
from llorch_conformance.mock_engines._cassette import Chunk


def _ex(
    label: str,
    status: int,
    body: bytes | str,
    ctype: str | None = "application/json",
) -> Exchange:
    data = body.encode() if isinstance(body, str) else body
    headers = [("content-type", ctype)] if ctype else []
    return Exchange(
        method="GET",
        path="/x",
        status=status,
        response_headers=headers,
        chunks=[Chunk(0.0, data)] if data else [],
        complete=True,
        label=label,
    )


def _compare(real: Exchange, mock: Exchange) -> list[tuple[str, str, str]]:
    rc = Cassette("vllm", [real], engine_version="real 1")
    mc = Cassette("vllm", [mock], engine_version="mock 1")
    return [(i.severity, i.kind, i.path) for i in compare_cassettes(rc, mc).items]


def test_status_and_media_type_differences_are_critical() -> None:
    items = _compare(
        _ex("p", 400, '{"error":{"type":"BadRequestError","code":400}}'),
        _ex("p", 200, "data: {}\n\n", "text/event-stream"),
    )
    assert ("critical", "status", "status") in items
    assert ("critical", "media_type", "content-type") in items
    # another status is another resource: no key-set noise on top
    assert all(kind in ("status", "media_type") for _, kind, _ in items)


def test_missing_keys_are_major_extra_keys_minor_and_adapter_paths_critical() -> None:
    items = _compare(
        _ex("p", 200, '{"object":"x","usage":{"prompt_tokens":1},"metrics":null,"a":1}'),
        _ex("p", 200, '{"usage":{"prompt_tokens":1},"a":1,"extra":true}'),
    )
    assert ("critical", "missing_in_mock", "object") in items
    assert ("major", "missing_in_mock", "metrics") in items
    assert ("minor", "extra_in_mock", "extra") in items


def test_json_type_and_error_type_strings() -> None:
    items = _compare(
        _ex("p", 400, '{"error":{"message":"m","type":"Bad Request","param":null,"code":400}}'),
        _ex(
            "p", 400, '{"error":{"message":"m","type":"BadRequestError","param":null,"code":"400"}}'
        ),
    )
    assert ("critical", "value", "error.type") in items
    assert ("critical", "value", "error.code") in items
    assert ("critical", "type", "error.code") in items


def test_sse_terminator_and_prefix() -> None:
    frame = '{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}'
    items = _compare(
        _ex("s", 200, f"data: {frame}\n\ndata: [DONE]\n\n", "text/event-stream"),
        _ex("s", 200, f"data:{frame}\n\n", "text/event-stream"),
    )
    assert ("critical", "framing", "sse.prefix") in items
    assert ("critical", "framing", "sse.last_frame") in items
    assert ("critical", "framing", "sse.frames[done]") in items


def test_content_type_parameters_are_minor() -> None:
    items = _compare(
        _ex("p", 200, "{}", "application/json"),
        _ex("p", 200, "{}", "application/json; charset=utf-8"),
    )
    assert items == [("minor", "media_type", "content-type")]


_HIST_OK = """# HELP t_seconds Time.
# TYPE t_seconds histogram
t_seconds_bucket{le="0.1",m="a"} 1.0
t_seconds_bucket{le="+Inf",m="a"} 2.0
t_seconds_count{m="a"} 2.0
t_seconds_sum{m="a"} 0.3
# HELP c_total Count.
# TYPE c_total counter
c_total{m="a"} 3.0
"""
_HIST_NO_BUCKETS = """# HELP t_seconds Time.
# TYPE t_seconds histogram
t_seconds_count{m="a"} 2.0
t_seconds_sum{m="a"} 0.3
"""


def test_check_exposition() -> None:
    fams, problems = check_exposition(_HIST_OK)
    assert fams == {"t_seconds": "histogram", "c": "counter"} and problems == []
    fams, problems = check_exposition(_HIST_NO_BUCKETS)
    assert fams == {"t_seconds": "histogram"}
    assert problems == ["t_seconds: histogram without buckets (m=a)"]
    _, problems = check_exposition("this is no exposition\n")
    assert problems and problems[0].startswith("unparsable exposition")


def test_metrics_drift() -> None:
    tp = "text/plain; version=0.0.4"
    items = _compare(_ex("m", 200, _HIST_OK, tp), _ex("m", 200, _HIST_NO_BUCKETS, tp))
    assert ("critical", "metrics", "exposition") in items
    assert ("major", "metrics", "c") in items  # family missing in the mock
    items = _compare(_ex("m", 200, _HIST_NO_BUCKETS, tp), _ex("m", 200, _HIST_OK, tp))
    assert ("minor", "metrics", "c") in items  # extra family
    assert not [i for i in items if i[0] == "critical"]  # the real engine's own invalidity


def test_drift_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["drift", "--dialect", "tgi", "--engine-url", "http://127.0.0.1:1", "--out", "x"])
    assert rc == 2
    assert "drift needs a real engine" in capsys.readouterr().err
    rc = main(["drift", "--dialect", "vllm", "--engine-url", "127.0.0.1:1"])
    assert rc == 2
    assert "--engine-url must be an http(s) URL" in capsys.readouterr().err


@pytest.mark.parametrize("dialect", ["vllm", "triton"])
def test_drift_cli_mock_against_itself_agrees(
    dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path over real sockets: a mock as the "real" engine, discovered and probed."""
    with run_mock_engine(dialect, seed=3, model="served-name", ctx_size=256) as eng:
        rc = main(
            ["drift", "--dialect", dialect, "--engine-url", eng.base_url, "--out", str(tmp_path)]
        )
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((tmp_path / "drift-report.json").read_text())
    assert data["dialect"] == dialect
    assert data["counts"]["critical"] == 0
    assert data["real_version"] and data["mock_version"]
    assert data["deployment"]["model"] == "served-name"
    if dialect == "vllm":
        assert data["deployment"]["ctx_size"] == 256
    assert (tmp_path / "real.cassette.json").is_file()
    assert (tmp_path / "drift-report.md").read_text().startswith(f"# Drift report: {dialect}")


def test_drift_cli_exits_1_on_critical_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An "engine" that answers every generation with 503 drifts critically from the mock."""
    with run_mock_engine("vllm", seed=3, faults=["http.503"]) as eng:
        rc = main(
            ["drift", "--dialect", "vllm", "--engine-url", eng.base_url, "--out", str(tmp_path)]
        )
    out = capsys.readouterr().out
    assert rc == 1
    assert "CRITICAL chat status: real=503 mock=200" in out
    data = json.loads((tmp_path / "drift-report.json").read_text())
    assert data["counts"]["critical"] > 0
