"""Failures a vendor can act on: one block per failing scenario, grouped by root cause.

Why grouping: one bug in an adapter (say, no ``started`` event) trips the check of every
scenario that streams — 30-odd FAIL lines that each name a different requirement. Read as 30
problems they bury the fix; read as one problem with 30 scenarios they point straight at it.

A scenario's *root cause* is, in this order:

1. ``error`` (a harness error): the exception text, numbers masked;
2. a grammar violation in any stream the scenario recorded (``adapters.api.check_stream`` on
   the evidence transcripts; "no terminal event" is left out, since a scenario may stop reading
   on purpose), or one its failure message quotes (the cross-dialect oracle compares recorded
   streams) — when the failed check is about that stream (it names the grammar, the event the
   violation is about, or the violation). A check about something else keeps its own cause, so
   a second, independent bug is not hidden behind the first;
3. otherwise the failed check's title (without the per-scenario fault and budget) and the head
   of its detail, numbers and ids masked, so ``tokens_out=7`` and ``tokens_out=15`` read as one
   cause.

A run-wide scenario whose failure names one target ("acme differs from the task's plan") is
that target's problem. Which requirements a case fails follows the results model's attribution,
and whether a problem fails the run is the model's ``failing()`` — never a second opinion.

Each :class:`FailureCase` carries what the issue asks of a failure block: requirement(s) with
level, scenario name, the injected fault(s) and the budgets (timeouts, deadline, attempts), what
was expected (the failing Then step when the harness recorded it, else the requirement) and
what was seen (the check's detail and the stream's terminal event), a hint, and the evidence
path inside the proof bundle. Groups are numbered from 1: failures that fail the run first,
harness errors and broken streams before other checks, then by size.

Renderers: :func:`render_console` (plain lines; rich markup escaped so ``[metrics]`` survives),
:func:`render_markdown` (``test_report.md``), and :func:`groups_to_json` for ``summary.json``,
which ``report.html`` reads. Nothing here raises on odd evidence: a report must be written on
failure too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from llorch_conformance.adapters.api import TokenEvent, check_stream
from llorch_conformance.conformance import RunResults, ScenarioResult, get_requirement, is_known

from ._model import adapter_label, assign_dirs, feature_label

__all__ = [
    "FailureCase",
    "FailureGroup",
    "group_failures",
    "groups_from_json",
    "groups_to_json",
    "render_console",
    "render_markdown",
]

_ID_PREFIX: Final = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-\d+[a-z]?: ")
_NUM: Final = re.compile(r"(?<![A-Za-z_])-?\d+(?:\.\d+)?")
_HEXID: Final = re.compile(r"\b(?:t|s|job|task)-[0-9a-f]{6,}\b|\b[0-9a-f]{12,}\b")
_SPACES: Final = re.compile(r"\s+")
_OPTIONAL_GRAMMAR: Final = ("the stream is empty", "has no terminal")
#: check_stream's own wording of a violation, as a failure message may quote it.
_GRAMMAR_QUOTE: Final = re.compile(
    r"event #\d+ \(\w+\) comes before 'started'|event #\d+: second 'started'"
    r"|event #\d+ \(\w+\) follows the terminal event #\d+|event #\d+: token index \d+, expected \d+"
)

#: Where docs/writing-an-adapter.md covers a requirement (by ID prefix or exact ID).
_DOC_SECTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("WA-INT-3002", "§3 cancel"),
    ("WA-INT-3003", "§2 retry"),
    ("WA-INT-3005", "§2 api_key, §7 redaction"),
    ("WA-INT-3006", "§9 determinism"),
    ("WA-INT-3007", "§7 logging"),
    ("WA-INT-300", "§4 event stream, §6 error mapping"),
    ("ADAPT-3003", "§4 started, §9 determinism"),
    ("ADAPT-3004", "§7 logging"),
    ("ADAPT-3005", "§2 http/retry, §5 timeouts"),
    ("ADAPT-3002", "§6 error mapping"),
    ("ADAPT-300", "§3 adapter object, §4 event stream"),
    ("HTU-PERF-1301", "§2 http (one pooled client)"),
    ("HTU-EXP-1101", "§2 http (never read the environment)"),
    ("HTU-SEC", "§2 http (verify, proxy)"),
    ("HTU-ERR", "§6 error mapping"),
    ("HTU-100", "§2 http/retry"),
    ("HTU-", "§2 http"),
    ("OC-TEST-700", "§9 determinism"),
    ("OC-ADAPT", "§3 adapter object"),
)

#: Hints keyed by what a failure says (searched in title + detail + terminal event, lowercase).
_HINTS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(p), h)
    for p, h in (
        (
            r"before 'started'|'started' is not the first|second 'started'",
            "yield exactly one `started` event (engine, engine_version, seed, "
            "sampler_profile_version) as the first event, once the engine accepted the request "
            "— before the first token",
        ),
        (
            r"token index|'i' is not|'t' is not",
            "token data is exactly {t: str, i: int}; i counts from 0 by one per token event",
        ),
        (
            r"follows the terminal",
            "stop the generator after `end`/`error`: nothing may follow the terminal event",
        ),
        (
            r"environment's proxy|all connection attempts failed",
            "build the HTTP client from the `http` config only and never from the environment "
            "(httpx: trust_env=False, or adapters.http_util.build_client(http))",
        ),
        (
            r"decode_timeout|before the stall was over|hung",
            "bound every read with http.first_byte_timeout_s / http.inter_chunk_timeout_s "
            "(httpx's read timeout restarts per chunk: use adapters.http_util.aiter_sse) and "
            "end the stream with error DECODE_TIMEOUT, retriable",
        ),
        (
            r"deadline_unmet|deadline",
            "measure deadline_ms from submit; when it runs out end the stream with error "
            "DEADLINE_UNMET, retriable false",
        ),
        (
            r"connections for",
            "build one pooled client per adapter instance (in the constructor) and reuse it, "
            "and read each stream to its end (after [DONE]) before closing it, so its "
            "connection goes back to the pool",
        ),
        (
            r"greedy|seed was not sent|top_p",
            "send the task's seed; for determinism 'strict' send temperature 0 (or top_k 1) "
            "and top_p 1",
        ),
        (
            r"log record",
            "log lifecycle records with the README_LLM fields as structured data "
            "(extra={'llorch': {...}}); pool_id/replica_id come from the factory config",
        ),
        (
            r"api key|authorization|secret|credential",
            "send the key only as Authorization: Bearer; redact it from every log record, "
            "error message and event (adapters.http_util.redact)",
        ),
        (
            r"did not receive what the task asked",
            "forward the task as asked: prompt (or messages when extra.endpoint is 'chat'), "
            "max_tokens, seed, extra.stop as the engine's stop list, extra.engine_params merged "
            "into the request body (TaskRequest.extra)",
        ),
        (
            r"did not go to|generation request went",
            "send the generation to the engine's streaming route the task asks for (vLLM: "
            "/v1/completions, or /v1/chat/completions when extra.endpoint is 'chat') with "
            "stream: true",
        ),
        (
            r"\d+ generation requests?|retr(y|ies|ied)|jitter|retry_after",
            "retry only before the first byte, only retriable conditions, with the `retry` "
            "policy (capped full jitter, seeded; Retry-After when larger)",
        ),
        (
            r"error code is|retriable=|mapping table|did not end with an error|terminal error",
            "map upstream failures with adapters.api.error_for_status / error_for_condition "
            "(the ERROR_MAPPING table)",
        ),
        (
            r"disconnect|cancel",
            "cancel() must close the upstream response (and stop yielding tokens) before it "
            "returns; the stream then ends with end, stop_reason 'cancelled'",
        ),
        (
            r"stop_reason|tokens_out",
            "end carries tokens_out (the token events emitted), decode_time_ms and stop_reason "
            "(eos | length | stop | cancelled)",
        ),
        (
            r"tls|certificate",
            "pass http.verify (a CA path) to your client; never disable verification",
        ),
        (
            r"health",
            "health: live and ready when the engine answers ready; a loading engine is live, not ready",
        ),
    )
)


@dataclass(frozen=True)
class FailureCase:
    """One failing (or erroring) scenario, with everything needed to act on it."""

    adapter: str
    status: str  # "fail" | "error"
    feature: str
    scenario: str
    requirements: tuple[str, ...]
    title: str
    detail: str
    faults: tuple[str, ...]
    budgets: str
    expected: str
    seen: str
    hint: str
    evidence: str
    gating: bool
    nodeid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "status": self.status,
            "feature": self.feature,
            "scenario": self.scenario,
            "requirements": list(self.requirements),
            "title": self.title,
            "detail": self.detail,
            "faults": list(self.faults),
            "budgets": self.budgets,
            "expected": self.expected,
            "seen": self.seen,
            "hint": self.hint,
            "evidence": self.evidence,
            "gating": self.gating,
            "nodeid": self.nodeid,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FailureCase:
        return cls(
            adapter=str(raw.get("adapter", "")),
            status=str(raw.get("status", "fail")),
            feature=str(raw.get("feature", "")),
            scenario=str(raw.get("scenario", "")),
            requirements=tuple(str(r) for r in raw.get("requirements", ())),
            title=str(raw.get("title", "")),
            detail=str(raw.get("detail", "")),
            faults=tuple(str(f) for f in raw.get("faults", ())),
            budgets=str(raw.get("budgets", "")),
            expected=str(raw.get("expected", "")),
            seen=str(raw.get("seen", "")),
            hint=str(raw.get("hint", "")),
            evidence=str(raw.get("evidence", "")),
            gating=bool(raw.get("gating", False)),
            nodeid=str(raw.get("nodeid", "")),
        )


@dataclass(frozen=True)
class FailureGroup:
    """Scenarios that failed for one root cause (numbered from 1 in report order)."""

    number: int
    adapter: str
    cause: str
    cases: tuple[FailureCase, ...]
    hint: str
    gating: bool
    requirements: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "adapter": self.adapter,
            "cause": self.cause,
            "hint": self.hint,
            "gating": self.gating,
            "requirements": list(self.requirements),
            "cases": [c.to_dict() for c in self.cases],
        }


# -- building ---------------------------------------------------------------------------------
def _mask(text: str) -> str:
    text = _HEXID.sub("…", text)
    return _SPACES.sub(" ", _NUM.sub("N", text)).strip()


def _split_message(message: str) -> tuple[str, str]:
    """``"REQ: title — detail"`` (ConformanceFailure) → (title, detail)."""
    msg = _ID_PREFIX.sub("", message.strip(), count=1)
    title, sep, detail = msg.partition(" — ")
    return title.strip(), detail.strip() if sep else ""


@cache
def _fails_every_carried_id() -> bool:
    """Does the results model fail every ID a failed scenario carries, or only the IDs its
    failure names? Asked of the model itself (a one-scenario probe), so the blocks follow its
    attribution rule whichever it is."""
    probe = RunResults(
        run_id="probe",
        seed=0,
        target={},
        scenarios=[
            ScenarioResult(
                nodeid="probe",
                feature="probe",
                scenario="probe",
                adapter="a",
                dialect=None,
                requirements=["ADAPT-3000", "ADAPT-3001"],
                status="fail",
                message="ADAPT-3000: probe",
                failed_requirements=["ADAPT-3000"],
            )
        ],
    )
    try:
        return any(v.requirement == "ADAPT-3001" and v.status == "fail" for v in probe.verdicts())
    except Exception:  # pragma: no cover - a model that cannot fold a probe
        return True


def _level(rid: str) -> str:
    return get_requirement(rid).level.value if is_known(rid) else "?"


def _gating(rids: Iterable[str], fail_on: str) -> bool:
    """Level-based fallback when the run's verdicts cannot be folded."""
    levels = {"MUST"} if fail_on == "must" else {"MUST", "SHOULD"}
    return any(_level(r) in levels or _level(r) == "?" for r in rids)


def _streams(ev: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = ev.get("streams")
    return [s for s in raw if isinstance(s, Mapping)] if isinstance(raw, list) else []


def _transcript(stream: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = stream.get("transcript")
    return [r for r in raw if isinstance(r, Mapping)] if isinstance(raw, list) else []


def grammar_problem(ev: Mapping[str, Any]) -> str | None:
    """The first event-grammar violation of any recorded stream, or ``None``."""
    for st in _streams(ev):
        recs = _transcript(st)
        if not recs or len(recs) >= 400:  # empty, or cut by the evidence limit
            continue
        events = [
            TokenEvent(
                str(r.get("kind")), dict(r["data"]) if isinstance(r.get("data"), Mapping) else {}
            )
            for r in recs
        ]
        for p in check_stream(events):
            if not any(o in p for o in _OPTIONAL_GRAMMAR):
                return p
    return None


def _about_the_stream(text: str, problem: str) -> bool:
    """Did this check fail *because of* the broken stream? Its text names the grammar, the
    event the problem is about (``'started'`` carries the determinism signals, the sampler
    profile, the correlation id), or the problem itself. A check about something else (the
    request body, the logs, the connection count) keeps its own cause, so an independent bug
    is not hidden behind the grammar group."""
    low = text.lower()
    if "grammar" in low or _mask(problem).lower() in _mask(low):
        return True
    quoted = re.findall(r"'(\w+)'", problem)
    return any(q.lower() in low for q in quoted)


def _terminal(ev: Mapping[str, Any]) -> str:
    """The last stream's terminal event in a few words (what the caller saw)."""
    streams = _streams(ev)
    if not streams:
        return ""
    st = streams[-1]
    recs = _transcript(st)
    n_tokens = sum(1 for r in recs if r.get("kind") == "token")
    dur = st.get("duration_ms")
    after = f" after {dur:.0f} ms" if isinstance(dur, int | float) else ""
    if st.get("hung"):
        return f"the stream hung ({n_tokens} tokens){after}"
    if st.get("raised"):
        return f"submit raised {str(st['raised'])[:160]}{after}"
    last = recs[-1] if recs else None
    if last is None:
        return "no event at all"
    kind = last.get("kind")
    data = last.get("data") if isinstance(last.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    if kind == "error":
        bits = [f"code={data.get('code')!r}", f"retriable={data.get('retriable')!r}"]
        if data.get("retry_after_ms") is not None:
            bits.append(f"retry_after_ms={data.get('retry_after_ms')!r}")
        msg = str(data.get("message", ""))[:120]
        return f"error {{{', '.join(bits)}}} after {n_tokens} tokens{after}" + (
            f": {msg!r}" if msg else ""
        )
    if kind == "end":
        keys = ("tokens_out", "decode_time_ms", "stop_reason")
        bits = [f"{k}={data.get(k)!r}" for k in keys if k in data]
        return f"end {{{', '.join(bits)}}} after {n_tokens} tokens{after}"
    return f"last event {kind!r} after {n_tokens} tokens{after} (no terminal event)"


def _budgets(ev: Mapping[str, Any]) -> str:
    b = ev.get("budgets")
    parts: list[str] = []
    if isinstance(b, Mapping):
        for key, label in (
            ("first_byte_timeout_s", "first-byte timeout"),
            ("inter_chunk_timeout_s", "inter-chunk timeout"),
            ("connect_timeout_s", "connect timeout"),
        ):
            v = b.get(key)
            if isinstance(v, int | float):
                parts.append(f"{label} {v:g} s")
        if isinstance(b.get("max_attempts"), int):
            parts.append(f"{b['max_attempts']} attempts")
    req = ev.get("request")
    if isinstance(req, Mapping) and isinstance(req.get("deadline_ms"), int):
        parts.append(f"deadline_ms {req['deadline_ms']}")
    return ", ".join(parts)


def _faults(ev: Mapping[str, Any]) -> tuple[str, ...]:
    """The injected fault specs, each with what it does when the evidence says."""
    raw = ev.get("faults")
    notes = ev.get("fault_descriptions")
    notes = notes if isinstance(notes, Mapping) else {}
    if isinstance(raw, list | tuple):
        return tuple(f"{f} ({notes[str(f)]})" if str(f) in notes else str(f) for f in raw if f)
    return ()


#: What an adapter must do under a fault whose handling vendors most often get wrong (the
#: failure names the fault; this says what the fault means for the event stream).
_FAULT_HINTS: Final[tuple[tuple[str, str], ...]] = (
    (
        "frame.missing_terminal",
        "the body ended without the engine's terminal frame (vLLM/OpenAI: data: [DONE]): an EOF "
        "before it is a reset — end with error WORKER_RESET, retriable, not with end",
    ),
    (
        "http.wrong_content_type",
        "a 200 whose Content-Type is not text/event-stream is a protocol violation: check the "
        "header before reading and end with error INTERNAL, not retriable",
    ),
    (
        "stream.error_event",
        'the engine sent an error frame inside the stream (vLLM: data: {"error": {...}}): end '
        "the stream with one error event carrying the mapped code, never with end",
    ),
    (
        "frame.malformed_json",
        "a frame that is not valid JSON is a protocol violation: end with error INTERNAL, not "
        "retriable (never raise, never skip it silently)",
    ),
    (
        "frame.duplicate_index",
        "a repeated or reordered upstream index must never reach the caller: end with error "
        "INTERNAL",
    ),
    (
        "frame.out_of_order_index",
        "a repeated or reordered upstream index must never reach the caller: end with error "
        "INTERNAL",
    ),
    (
        "midstream.",
        "a connection lost after the first byte is not retried: end with error WORKER_RESET, "
        "retriable, after the tokens already sent",
    ),
    (
        "conn.accept_then_close",
        "a connection closed before any response is a reset: WORKER_RESET, retriable",
    ),
)


def _hint(text: str, rids: Sequence[str], docs: str = "", faults: Sequence[str] = ()) -> str:
    low = text.lower()
    hint = ""
    if "terminal error" in low or "end with an error" in low or "error code" in low:
        hint = next((h for f in faults for fid, h in _FAULT_HINTS if f.startswith(fid)), "")
    hint = hint or next((h for p, h in _HINTS if p.search(low)), "")
    docs = docs or next(
        (sec for rid in rids for prefix, sec in _DOC_SECTIONS if rid.startswith(prefix)), ""
    )
    if docs:
        hint = (
            f"{hint} (docs/writing-an-adapter.md {docs})"
            if hint
            else (f"see docs/writing-an-adapter.md {docs}")
        )
    return hint


def _expected(s: ScenarioResult, rids: Sequence[str]) -> str:
    step = s.evidence.get("failed_step") if isinstance(s.evidence, Mapping) else None
    if isinstance(step, str) and step.strip():
        return step.strip()
    if rids and is_known(rids[0]):
        return f"{rids[0]}: {get_requirement(rids[0]).text}"
    return ""


def _owner(s: ScenarioResult, targets: Sequence[str]) -> str:
    """Whose problem a failure is: its adapter; a run-wide scenario (the cross-dialect oracle)
    whose failure names one target ("acme differs from the task's plan") belongs to that
    target's problems, so one bug of it stays one problem."""
    if s.adapter != "*":
        return s.adapter
    detail = _split_message(s.message)[1]
    named = [t for t in targets if detail.startswith(f"{t} ")]
    return named[0] if len(named) == 1 else s.adapter


def group_failures(
    results: RunResults,
    *,
    bundle_dir: str | Path | None = None,
    fail_on: Literal["must", "should"] = "must",
) -> list[FailureGroup]:
    """Failing and erroring scenarios grouped by root cause (module docstring), numbered from 1.

    ``bundle_dir`` makes evidence paths absolute (the bundle's directory); without it they are
    relative to the bundle root, as the bundle writer places them.
    """
    root = Path(bundle_dir) if bundle_dir is not None else None
    # What fails the run is the results model's call (its folding rules), not ours.
    failing: set[tuple[str, str]] | None
    try:
        verdicts = results.failing(fail_on=fail_on)
        failing = {(v.adapter, v.requirement) for v in verdicts}
        # MUSTs a failing scenario carried and left unproven (no other scenario proved them)
        # fail the run although the failure named another ID: its problem gates too.
        unproven = {(v.adapter, v.requirement) for v in verdicts if getattr(v, "unproven", False)}
    except Exception:  # an odd results file must still render
        failing, unproven = None, set()
    buckets: dict[tuple[str, str, str], list[FailureCase]] = {}
    causes: dict[tuple[str, str, str], str] = {}
    targets = [a for a in results.adapters() if a != "*"]
    for p in assign_dirs(results):
        s = p.result
        if s.status not in ("fail", "error"):
            continue
        where = f"{root / p.dir}/" if root is not None else f"{p.dir}/"
        case, key, cause = _build(s, where, fail_on, failing, unproven)
        k = (_owner(s, targets), key[0], key[1])
        buckets.setdefault(k, []).append(case)
        causes.setdefault(k, cause)
    ordered = sorted(
        buckets.items(),
        key=lambda kv: (
            not any(c.gating for c in kv[1]),
            {"error": 0, "grammar": 1}.get(kv[0][1], 2),  # a broken stream explains most
            -len(kv[1]),
            kv[0][0],
            kv[0][2],
        ),
    )
    out: list[FailureGroup] = []
    for n, (k, cases) in enumerate(ordered, start=1):
        rids: list[str] = []
        for c in cases:
            rids.extend(r for r in c.requirements if r not in rids)
        hints = [c.hint for c in cases if c.hint]
        out.append(
            FailureGroup(
                number=n,
                adapter=k[0],
                cause=causes[k],
                cases=tuple(cases),
                hint=max(set(hints), key=hints.count) if hints else "",
                gating=any(c.gating for c in cases),
                requirements=tuple(rids),
            )
        )
    return out


def _build(
    s: ScenarioResult,
    where: str,
    fail_on: str,
    failing: set[tuple[str, str]] | None = None,
    unproven: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> tuple[FailureCase, tuple[str, str], str]:
    ev: Mapping[str, Any] = s.evidence if isinstance(s.evidence, Mapping) else {}
    # The IDs this failure fails, as the results model attributes them: the ones the check
    # names — and, under a model that fails every ID a failed scenario carries, those too.
    named = list(s.failed_requirements)
    if not named or _fails_every_carried_id():
        rids = tuple(dict.fromkeys([*named, *s.requirements]))
    else:
        rids = tuple(named)
    if s.status == "error":
        title, detail = s.message.strip().split("\n", 1)[0][:300], ""
    else:
        title, detail = _split_message(s.message)
    terminal = _terminal(ev)
    if detail.startswith("terminal:") and terminal:
        # a dump of the terminal event says less than the summary of it; keep what follows it
        detail = detail.split(" — ", 1)[1] if " — " in detail else ""
    shown = detail[:400]
    seen = "; ".join(x for x in (shown, terminal) if x)
    grammar = grammar_problem(ev) if s.status == "fail" else None
    if grammar is None and s.status == "fail":
        # a scenario comparing recorded streams (the cross-dialect oracle) may only quote it
        quoted = _GRAMMAR_QUOTE.search(detail)
        grammar = quoted.group(0) if quoted else None
    if grammar is not None and not _about_the_stream(f"{title} {detail}", grammar):
        grammar = None  # a broken stream, but this check failed for a reason of its own
    if s.status == "error":
        key = ("error", _mask(title)[:160])
        cause = f"harness error: {title}"
    elif grammar is not None:
        key = ("grammar", _mask(grammar))
        cause = f"the stream breaks the event grammar: {grammar}"
    else:
        # The fault and budgets a title may name are per scenario (the block shows them); the
        # rule that broke is the cause.
        rule = title.split(" after the injected fault", 1)[0]
        head = _mask(detail.split(";", 1)[0])[:40]
        key = ("check", f"{_mask(rule)} — {head}" if head else _mask(rule))
        first = detail.split(";", 1)[0].split(": ", 1)[0] if len(detail) > 100 else detail
        first = first if len(first) <= 100 else first[:99] + "…"
        cause = f"{rule} — {first}" if first else rule
    case = FailureCase(
        adapter=s.adapter,
        status=s.status,
        feature=feature_label(s.feature),
        scenario=s.scenario,
        requirements=rids,
        title=title,
        detail=detail,
        faults=_faults(ev),
        budgets=_budgets(ev),
        expected=_expected(s, rids),
        seen=seen,
        hint=_hint(
            f"{cause} {title} {detail}",
            rids,
            "§4 event stream" if key[0] == "grammar" else "",
            tuple(str(f) for f in ev.get("faults", ()) if f)
            if isinstance(ev.get("faults"), list)
            else (),
        ),
        evidence=where,
        gating=s.status == "error"
        or (
            (
                any((s.adapter, r) in failing for r in rids)
                or any((s.adapter, r) in unproven for r in s.requirements)
            )
            if failing is not None
            else _gating(rids, fail_on)
        ),
        nodeid=s.nodeid,
    )
    return case, key, cause


# -- JSON (summary.json) ------------------------------------------------------------------------
def groups_to_json(groups: Sequence[FailureGroup]) -> list[dict[str, Any]]:
    return [g.to_dict() for g in groups]


def groups_from_json(raw: Any) -> list[FailureGroup]:
    """Tolerant reader for ``summary.json``'s ``failure_groups`` (older bundles have none)."""
    out: list[FailureGroup] = []
    if not isinstance(raw, list):
        return out
    for n, g in enumerate(raw, start=1):
        if not isinstance(g, Mapping):
            continue
        cases = tuple(
            FailureCase.from_dict(c) for c in g.get("cases", ()) if isinstance(c, Mapping)
        )
        out.append(
            FailureGroup(
                number=int(g.get("number", n)),
                adapter=str(g.get("adapter", "")),
                cause=str(g.get("cause", "")),
                cases=cases,
                hint=str(g.get("hint", "")),
                gating=bool(g.get("gating", False)),
                requirements=tuple(str(r) for r in g.get("requirements", ())),
            )
        )
    return out


# -- renderers -------------------------------------------------------------------------------
def _req_list(rids: Sequence[str], limit: int = 8) -> str:
    shown = [f"{r} ({_level(r)})" for r in rids[:limit]]
    more = f" and {len(rids) - limit} more" if len(rids) > limit else ""
    return ", ".join(shown) + more


def _case_facts(c: FailureCase) -> list[tuple[str, str, bool]]:
    """What a failing scenario's block says after its name, in the order both renderers show
    it: ``(label, value, is_code)``; the evidence always, the others when known."""
    facts = (
        ("fault", ", ".join(c.faults), True),
        ("budgets", c.budgets, False),
        ("expected", c.expected, False),
        ("seen", c.seen, False),
    )
    return [f for f in facts if f[1]] + [("evidence", c.evidence, True)]


def _case_lines(c: FailureCase, indent: str) -> list[str]:
    lines = [
        f"{indent}scenario : {c.feature} › {c.scenario}",
        f"{indent}fails    : {_req_list(c.requirements)}",
    ]
    lines += [f"{indent}{label:<9}: {value}" for label, value, _code in _case_facts(c)]
    return lines


def render_console(
    groups: Sequence[FailureGroup],
    *,
    console: Any = None,
    max_groups: int = 20,
    max_listed: int = 12,
) -> list[str]:
    """Plain-text failure blocks, failures that gate first; printed to ``console`` if given.

    Each group shows its root cause, how many scenarios it broke and which requirements, a
    hint, the full block of its first scenario and the names of the others. With a rich
    ``console`` every line is printed with markup escaped (``[metrics]`` must survive) and
    without soft wrapping into the middle of a path.
    """
    lines: list[str] = []
    if not groups:
        return lines
    n_cases = sum(len(g.cases) for g in groups)
    gating = [g for g in groups if g.gating]
    lines.append(
        f"{n_cases} failing scenario{'s' if n_cases != 1 else ''} in {len(groups)} "
        f"problem{'s' if len(groups) != 1 else ''} ({len(gating)} failing the run), "
        "grouped by root cause — fix the first one first:"
    )
    for g in groups[:max_groups]:
        n = len(g.cases)
        tag = "FAIL" if g.gating else "FAIL (does not fail the run at this --fail-on)"
        if g.cases and g.cases[0].status == "error":
            tag = "ERROR"
        lines.append("")
        lines.append(
            f"{g.number}. {tag} [{adapter_label(g.adapter)}] {g.cause}"
            f"  — {n} scenario{'s' if n != 1 else ''}"
        )
        lines.append(f"   requirements: {_req_list(g.requirements, 12)}")
        if g.hint:
            lines.append(f"   hint     : {g.hint}")
        lines.extend(_case_lines(g.cases[0], "   "))
        if n > 1:
            lines.append(
                f"   also     : {n - 1} more scenario{'s' if n != 2 else ''} with this cause:"
            )
            for c in g.cases[1 : 1 + max_listed]:
                reqs = ",".join(c.requirements[:3]) + ("…" if len(c.requirements) > 3 else "")
                fault = f" · fault {', '.join(c.faults)}" if c.faults else ""
                lines.append(f"     - {c.feature} › {c.scenario} [{reqs}]{fault}")
            if n - 1 > max_listed:
                lines.append(f"     ... and {n - 1 - max_listed} more (test_report.md lists all)")
    if len(groups) > max_groups:
        lines.append("")
        lines.append(f"... and {len(groups) - max_groups} more problems (see test_report.md)")
    if console is not None:
        from rich.markup import escape

        for line in lines:
            console.print(escape(line), soft_wrap=True, highlight=False)
    return lines


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'").strip()


def render_markdown(groups: Sequence[FailureGroup]) -> list[str]:
    """``test_report.md``'s first section: every failing scenario, grouped by root cause."""
    if not groups:
        return [
            "## Failures",
            "",
            "None: every scenario that ran passed or was declared unsupported.",
        ]
    n_cases = sum(len(g.cases) for g in groups)
    lines = [
        "## Failures, grouped by root cause",
        "",
        f"{n_cases} failing scenarios in {len(groups)} problems; problems that fail the run "
        "come first. Each block: the requirement(s), the scenario, the injected fault and "
        "budgets, what was expected and what was seen, a hint, and the evidence directory.",
    ]
    for g in groups:
        tag = "ERROR" if g.cases and g.cases[0].status == "error" else "FAIL"
        if not g.gating:
            tag += " (not gating)"
        lines += [
            "",
            f"### {g.number}. {tag} `{_md(adapter_label(g.adapter))}` — {_md(g.cause)}",
            "",
            f"{len(g.cases)} scenario(s); requirements {_md(_req_list(g.requirements, 40))}.",
        ]
        if g.hint:
            lines += ["", f"**Hint:** {_md(g.hint)}"]
        for c in g.cases:
            lines += [
                "",
                f"- **{_md(c.feature)} › {_md(c.scenario)}** — fails {_md(_req_list(c.requirements))}",
            ]
            lines += [
                f"  - {label}: `{_md(value)}`" if code else f"  - {label}: {_md(value)}"
                for label, value, code in _case_facts(c)
            ]
    return lines
