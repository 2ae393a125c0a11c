"""The CI gate for adapter changes: ``diff``, waivers, the compatibility matrix, the run gate.

Why under ``reports``: proof bundles are the gate's only input, and it reads them with the
bundle layer's own readers (``reports._model.stream_timings``); ``reports`` already sits above
``conformance``, so the gate adds no new import direction. ``conformance`` reaches it only
lazily from ``run`` (``--baseline``/``--waivers``).

Public API::

    from llorch_conformance.reports.gate import load_bundle, diff_views, TimingPolicy, load_waivers
    report = diff_views(load_bundle(base), load_bundle(new),
                        policy=TimingPolicy(max_regression_pct=20), waivers=load_waivers(f))
    print(render_gate_markdown(report)); sys.exit(report.exit_code)

    matrix = build_matrix([load_bundle(p) for p in paths]); render_matrix_html(matrix)
"""

from ._diff import FailOn, GateReport, IdentityChange, StatusChange, diff_views
from ._matrix import (
    Matrix,
    MatrixEntry,
    build_matrix,
    can_i_deploy,
    render_matrix_html,
    render_matrix_markdown,
)
from ._render import render_gate_markdown
from ._run_gate import GatePlan, add_gate_options, add_policy_options, finish_gate, prepare_gate
from ._timing import (
    MIN_P99_SAMPLES,
    TimingChange,
    TimingMode,
    TimingPolicy,
    compare_timings,
    robust_spread,
)
from ._view import (
    TIMING_METRICS,
    AdapterInfo,
    BundleView,
    catalogue_digest,
    current_catalogue_digest,
    load_bundle,
)
from ._waivers import (
    WAIVER_SCHEMA,
    Waiver,
    WaiverOutcome,
    apply_waivers,
    load_waivers,
    parse_waivers,
)

__all__ = [
    "MIN_P99_SAMPLES",
    "TIMING_METRICS",
    "WAIVER_SCHEMA",
    "AdapterInfo",
    "BundleView",
    "FailOn",
    "GatePlan",
    "GateReport",
    "IdentityChange",
    "Matrix",
    "MatrixEntry",
    "StatusChange",
    "TimingChange",
    "TimingMode",
    "TimingPolicy",
    "Waiver",
    "WaiverOutcome",
    "add_gate_options",
    "add_policy_options",
    "apply_waivers",
    "build_matrix",
    "can_i_deploy",
    "catalogue_digest",
    "compare_timings",
    "current_catalogue_digest",
    "diff_views",
    "finish_gate",
    "load_bundle",
    "load_waivers",
    "parse_waivers",
    "prepare_gate",
    "render_gate_markdown",
    "render_matrix_html",
    "render_matrix_markdown",
    "robust_spread",
]
