#!/usr/bin/env bash
# CI gate for an adapter change: run the conformance suite, compare with the release baseline,
# keep the proof bundle as an artifact, print the summary.
#
# usage:  docs/ci/gate.sh [RUN ARGS...]
#         e.g. docs/ci/gate.sh --adapter acme.adapter:acme_llamacpp --dialect llamacpp
#
# environment (all optional):
#   LLORCH          the CLI to call                         (default: llorch-conformance)
#   GATE_OUT        where everything goes                   (default: ./gate-out)
#                   GATE_OUT/bundle   the proof bundle (upload it as the build artifact)
#                   GATE_OUT/results  gate.md (PR comment), gate.json (results.json: in the bundle)
#                   GATE_OUT/run.log  the run's full output
#   BASELINE        the release baseline bundle; unset = release mode: run, verify and keep the
#                   bundle (that bundle becomes the next baseline)
#   MAX_REGRESSION  timing regression threshold in percent  (default: 20)
#   TIMING          gate | warn | off: what a timing regression does (default: warn — shared
#                   CI runners and a baseline made on another machine move timings more than an
#                   adapter change does; use gate on a dedicated runner that also made the
#                   baseline). Status regressions and expired waivers always gate.
#   WAIVERS         YAML file of known failures (cause or requirement(s), adapter, reason, expires)
#   GATE_ARGS       more gate options, e.g. "--spread-k 4 --min-delta-ms 5"
#
# exit: 0 no regression (release mode: every MUST passed), 1 regression, expired waiver or
# (release mode) failing MUST, 2 harness or usage error. The bundle is kept in every case.
set -euo pipefail

LLORCH=${LLORCH:-llorch-conformance}
OUT=${GATE_OUT:-gate-out}
# A run id we know in advance, so the bundle's path is known without parsing output.
export LLORCH_RUN_ID=${LLORCH_RUN_ID:-gate-$(date -u +%Y%m%d-%H%M%S)-$$}

mkdir -p "$OUT"
rm -rf "$OUT/proof" "$OUT/bundle" "$OUT/results"

# One output root per run: the bundle goes to $OUT/proof/conformance/<run id>, the gate's
# reports to $OUT/proof/gate/<run id>.
args=(run --no-progress --out "$OUT/proof")
if [ -n "${BASELINE:-}" ]; then
    args+=(--baseline "$BASELINE" --max-regression "${MAX_REGRESSION:-20}" --timing "${TIMING:-warn}")
fi
if [ -n "${WAIVERS:-}" ]; then
    args+=(--waivers "$WAIVERS")
fi
# GATE_ARGS is split on blanks on purpose (a list of options).
# shellcheck disable=SC2206
extra=(${GATE_ARGS:-})
args+=(${extra[@]+"${extra[@]}"} "$@")

echo "gate: $LLORCH ${args[*]}" >&2
set +e
# $LLORCH may be a command with arguments ("python -m conformance.cli"): split on purpose.
# shellcheck disable=SC2086
$LLORCH "${args[@]}" >"$OUT/run.log" 2>&1
rc=$?
set -e

bundle="$OUT/proof/conformance/$LLORCH_RUN_ID"
if [ -d "$OUT/proof/gate/$LLORCH_RUN_ID" ]; then
    mkdir -p "$OUT/results"
    cp "$OUT/proof/gate/$LLORCH_RUN_ID"/* "$OUT/results/"
fi
if [ -d "$bundle" ]; then
    mv "$bundle" "$OUT/bundle"
    # Integrity of the artifact we keep (manifest hashes, headers, summary schema).
    # shellcheck disable=SC2086
    if ! $LLORCH verify "$OUT/bundle" >"$OUT/verify.log" 2>&1; then
        echo "gate: the proof bundle does not verify (see $OUT/verify.log)" >&2
        [ "$rc" -eq 0 ] && rc=2
    fi
else
    echo "gate: no proof bundle was written (see $OUT/run.log)" >&2
    [ "$rc" -eq 0 ] && rc=2
fi

# The summary: the gate's Markdown when gated, else the run's own report.
summary="$OUT/results/gate.md"
[ -f "$summary" ] || summary="$OUT/bundle/test_report.md"
if [ -f "$summary" ]; then
    cat "$summary"
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        cat "$summary" >>"$GITHUB_STEP_SUMMARY"
    fi
else
    tail -n 30 "$OUT/run.log"
fi
echo "gate: exit $rc; bundle: $OUT/bundle; log: $OUT/run.log" >&2
exit "$rc"
