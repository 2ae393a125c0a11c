"""Black-box checks of an rbee worker: only its HTTP API and the heartbeats it sends to our queen.

One check = one async function ``(WorkerProbe) -> CheckResult`` naming the WKR IDs it proves.
The same functions back the Gherkin steps (``steps/_worker.py``, against the bridge and the
mock worker) and the ``worker-check`` target runner (against any worker URL), so a rule is
written once.

What "bad input" is comes from :mod:`adapters.rbee_worker` (the InferRequest validator); what the
checks accept where the contract is vague, and why:

* ``/health`` must be status 200, ``text/plain``, body ``ok`` (surrounding whitespace allowed).
* ``/info``: all seven WorkerInfo fields with their types; ``status`` in the lowercase vocabulary
  (``stopping`` accepted although the OpenAPI enum omits it). ``device`` and ``implementation``
  are non-empty strings; values outside the OpenAPI enums are noted in the evidence, not failed
  (the Rust types are ``String`` and the README says "e.g.").
* Streaming: every SSE event is a default (``message``) event; every data line before the last
  is a JSON object with a string ``token``; the last is ``[DONE]``; nothing follows it.
* Bad input must be 400 with a JSON ``{"error": string}``; an oversized body (WKR-1011) may be
  400 or 413 (the HTTP-native answer), and the worker must still answer ``/health`` afterwards.
* Busy (WKR-1005/1009): the check holds up to ``max_concurrency`` streams open; a 503 with
  ``{error}`` proves the rule, ``/info`` must say ``busy`` while saturated and ``ready`` once the
  streams are closed. A worker that says ``busy`` yet serves one more request fails. A worker that
  never reaches busy with that many streams cannot be judged black-box: ``skipped``.
* Heartbeats (WKR-1007) need the worker to point at the harness's mock queen. The gap between two
  beats may be at most ``interval × 1.5 + 0.5 s``; the timestamp must be RFC 3339 UTC and within
  ``max_skew_s`` of the queen's clock; the worker in the heartbeat must be the one ``/info`` shows.
* Queen down (WKR-1012): the queen's port is closed for ``2 × interval``; meanwhile the worker must
  keep answering ``/health`` and inference; after the queen is back a heartbeat must arrive within
  ``interval + backoff cap + grace``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.to_thread
import httpx

from llorch_conformance.adapters.http_util import SSEDecoder, verifying_context
from llorch_conformance.adapters.rbee_worker import (
    MAX_TOKENS_LIMIT,
    WORKER_INFO_FIELDS,
    BadInferRequest,
    InferResponse,
    WorkerInfo,
    WorkerStatus,
    parse_rfc3339_utc,
)

__all__ = [
    "BAD_INPUT_CASES",
    "CHECKS",
    "CheckResult",
    "WorkerProbe",
    "check_bad_input",
    "check_busy",
    "check_health",
    "check_heartbeat",
    "check_infer_json",
    "check_infer_stream",
    "check_info",
    "check_oversized",
    "check_queen_down",
    "parse_worker_sse",
]

Status = Literal["pass", "fail", "unsupported", "skipped", "error"]

_DEVICE_ENUM = ("CPU-0", "GPU-0", "GPU-1", "GPU-2", "GPU-3")
_IMPL_ENUM = (
    "llm-worker-rbee",
    "llama-cpp-adapter",
    "vllm-adapter",
    "ollama-adapter",
    "comfyui-adapter",
)


@dataclass
class CheckResult:
    """Outcome of one check; ``failed`` names the IDs the worker missed."""

    name: str
    title: str
    requirements: list[str]
    status: Status = "pass"
    message: str = ""
    failed: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def fail(self, ids: list[str] | str, message: str) -> CheckResult:
        ids = [ids] if isinstance(ids, str) else ids
        self.status = "fail"
        for i in ids:
            if i not in self.failed:
                self.failed.append(i)
        self.message = f"{self.message}; {message}" if self.message else message
        return self

    def skip(self, message: str) -> CheckResult:
        self.status = "skipped"
        self.message = message
        return self

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerProbe:
    """Where the worker is and how patient to be. ``queen`` is a :class:`mock_engines.rbee.MockQueen`
    the worker sends heartbeats to (``None``: heartbeat checks are skipped)."""

    base_url: str
    queen: Any = None
    heartbeat_interval_s: float = 30.0
    request_timeout_s: float = 30.0
    max_concurrency: int = 8
    oversize_bytes: int = 4 << 20
    max_skew_s: float = 5.0
    grace_s: float = 2.0
    prompt: str = "Say hello to the queen"
    max_tokens: int = 8
    hold_max_tokens: int = 256
    worker_id: str | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"),
            timeout=self.request_timeout_s,
            verify=verifying_context(),
            trust_env=False,
            follow_redirects=False,
        )


def _short(resp: httpx.Response, limit: int = 300) -> dict[str, Any]:
    text = resp.content[:limit].decode("utf-8", "replace")
    return {
        "status": resp.status_code,
        "content_type": resp.headers.get("content-type", ""),
        "body": text,
    }


def _error_body(resp: httpx.Response) -> str | None:
    """``None`` when the body is a JSON ``{"error": string}``, else what is wrong."""
    if "json" not in resp.headers.get("content-type", ""):
        return f"content-type {resp.headers.get('content-type', '')!r} is not JSON"
    try:
        body = resp.json()
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return 'body is not {"error": string}'
    return None


# -- WKR-1001 -----------------------------------------------------------------------------------
async def check_health(probe: WorkerProbe) -> CheckResult:
    res = CheckResult("health", 'GET /health answers 200 text/plain "ok"', ["WKR-1001"])
    async with probe.client() as c:
        r = await c.get("/health")
    res.evidence["response"] = _short(r)
    if r.status_code != 200:
        return res.fail("WKR-1001", f"GET /health answered {r.status_code}, expected 200")
    ctype = r.headers.get("content-type", "")
    if not ctype.startswith("text/plain"):
        res.fail("WKR-1001", f"content-type {ctype!r}, expected text/plain")
    if r.text.strip() != "ok":
        res.fail("WKR-1001", f'body {r.text[:80]!r}, expected "ok"')
    return res


# -- WKR-1002 (+ status vocabulary of WKR-1009) ----------------------------------------------
async def fetch_info(probe: WorkerProbe) -> tuple[httpx.Response, WorkerInfo | None, str | None]:
    async with probe.client() as c:
        r = await c.get("/info")
    if r.status_code != 200:
        return r, None, f"GET /info answered {r.status_code}, expected 200"
    try:
        raw = r.json()
    except ValueError:
        return r, None, "GET /info body is not JSON"
    missing = [f for f in WORKER_INFO_FIELDS if not isinstance(raw, dict) or f not in raw]
    if missing:
        return r, None, f"WorkerInfo misses {', '.join(missing)}"
    try:
        return r, WorkerInfo.from_dict(raw), None
    except BadInferRequest as exc:
        return r, None, f"WorkerInfo: {exc}"


async def check_info(probe: WorkerProbe) -> CheckResult:
    res = CheckResult("info", "GET /info answers a complete WorkerInfo", ["WKR-1002", "WKR-1009"])
    r, info, err = await fetch_info(probe)
    res.evidence["response"] = _short(r, 1000)
    if info is None:
        ids = ["WKR-1002"]
        if err and "status must be one of" in err:
            ids.append("WKR-1009")
        return res.fail(ids, err or "invalid WorkerInfo")
    if "json" not in r.headers.get("content-type", ""):
        res.fail("WKR-1002", "GET /info is not application/json")
    if info.port == 0:
        res.fail("WKR-1002", "WorkerInfo.port is 0")
    notes = []
    if info.device not in _DEVICE_ENUM:
        notes.append(f"device {info.device!r} is outside the OpenAPI enum")
    if info.implementation not in _IMPL_ENUM:
        notes.append(f"implementation {info.implementation!r} is outside the OpenAPI enum")
    if info.status is WorkerStatus.STOPPING:
        notes.append("status 'stopping' is outside the OpenAPI enum (accepted: Rust enum has it)")
    res.evidence["notes"] = notes
    res.evidence["info"] = info.to_dict()
    probe.worker_id = info.id
    return res


# -- WKR-1003 ----------------------------------------------------------------------------------
async def check_infer_json(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "infer_json", "POST /v1/infer (stream false) answers an InferResponse", ["WKR-1003"]
    )
    body = {"prompt": probe.prompt, "max_tokens": probe.max_tokens}
    async with probe.client() as c:
        r = await c.post("/v1/infer", json=body)
    res.evidence["request"] = body
    res.evidence["response"] = _short(r, 1000)
    if r.status_code != 200:
        return res.fail("WKR-1003", f"answered {r.status_code}, expected 200")
    if "json" not in r.headers.get("content-type", ""):
        return res.fail(
            "WKR-1003", f"content-type {r.headers.get('content-type')!r}, expected application/json"
        )
    try:
        resp = InferResponse.from_dict(r.json())
    except (ValueError, BadInferRequest) as exc:
        return res.fail("WKR-1003", f"not an InferResponse: {exc}")
    if resp.tokens_generated > probe.max_tokens:
        res.fail(
            "WKR-1003",
            f"tokens_generated {resp.tokens_generated} exceeds max_tokens {probe.max_tokens}",
        )
    return res


# -- WKR-1004 ----------------------------------------------------------------------------------
def parse_worker_sse(raw: bytes) -> tuple[list[str], list[str]]:
    """Tokens of a worker stream and the problems found (empty when it follows the contract)."""
    dec = SSEDecoder()
    events = dec.feed(raw) + dec.close()
    problems: list[str] = []
    tokens: list[str] = []
    done_at: int | None = None
    for n, ev in enumerate(events):
        if ev.event != "message":
            problems.append(
                f"frame {n} has 'event: {ev.event}' (the worker API uses data-only frames)"
            )
        if done_at is not None:
            problems.append(f"frame {n} follows data: [DONE]")
            break
        if ev.data == "[DONE]":
            done_at = n
            continue
        try:
            obj = json.loads(ev.data)
        except ValueError:
            problems.append(f"frame {n} data is not JSON: {ev.data[:80]!r}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("token"), str):
            problems.append(f'frame {n} is not {{"token": string}}: {ev.data[:80]!r}')
            continue
        tokens.append(obj["token"])
    if done_at is None:
        problems.append("the stream did not end with data: [DONE]")
    if dec.truncated:
        problems.append("the stream ended inside a frame")
    return tokens, problems


async def check_infer_stream(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "infer_stream",
        'POST /v1/infer (stream true) sends data: {"token"} frames then [DONE]',
        ["WKR-1004"],
    )
    body = {"prompt": probe.prompt, "max_tokens": probe.max_tokens, "stream": True}
    async with probe.client() as c, c.stream("POST", "/v1/infer", json=body) as r:
        raw = await r.aread()
    res.evidence["request"] = body
    res.evidence["status"] = r.status_code
    res.evidence["content_type"] = r.headers.get("content-type", "")
    res.evidence["frames"] = raw[:2000].decode("utf-8", "replace")
    if r.status_code != 200:
        return res.fail("WKR-1004", f"answered {r.status_code}, expected 200")
    if not r.headers.get("content-type", "").startswith("text/event-stream"):
        res.fail(
            "WKR-1004",
            f"content-type {r.headers.get('content-type')!r}, expected text/event-stream",
        )
    tokens, problems = parse_worker_sse(raw)
    res.evidence["tokens"] = len(tokens)
    for p in problems[:5]:
        res.fail("WKR-1004", p)
    if len(tokens) > probe.max_tokens:
        res.fail("WKR-1004", f"{len(tokens)} token frames exceed max_tokens {probe.max_tokens}")
    return res


# -- WKR-1005 / WKR-1006 -----------------------------------------------------------------------
#: (case name, raw body, the rule broken). All must be answered 400 {"error": string}.
BAD_INPUT_CASES: tuple[tuple[str, bytes, str], ...] = (
    ("missing prompt", b'{"max_tokens": 8}', "prompt is required"),
    ("prompt not a string", b'{"prompt": 42}', "prompt is a string"),
    ("prompt null", b'{"prompt": null}', "prompt is a string"),
    ("max_tokens a string", b'{"prompt": "hi", "max_tokens": "ten"}', "max_tokens is an integer"),
    ("max_tokens a float", b'{"prompt": "hi", "max_tokens": 1.5}', "max_tokens is an integer"),
    ("max_tokens 0", b'{"prompt": "hi", "max_tokens": 0}', "max_tokens >= 1"),
    (
        "max_tokens over the limit",
        b'{"prompt": "hi", "max_tokens": %d}' % (MAX_TOKENS_LIMIT + 1),
        "max_tokens <= 4096",
    ),
    ("max_tokens negative", b'{"prompt": "hi", "max_tokens": -1}', "max_tokens is unsigned"),
    ("temperature a string", b'{"prompt": "hi", "temperature": "hot"}', "temperature is a number"),
    ("temperature above 2", b'{"prompt": "hi", "temperature": 2.5}', "temperature <= 2.0"),
    ("temperature negative", b'{"prompt": "hi", "temperature": -0.1}', "temperature >= 0.0"),
    ("stream not a boolean", b'{"prompt": "hi", "stream": "yes"}', "stream is a boolean"),
    ("body not JSON", b"prompt=hi", "the body is JSON"),
    ("body a JSON array", b'["hi"]', "the body is an object"),
)


async def check_bad_input(
    probe: WorkerProbe, cases: tuple[tuple[str, bytes, str], ...] = BAD_INPUT_CASES
) -> CheckResult:
    res = CheckResult(
        "bad_input", "Bad InferRequests are answered 400 {error}", ["WKR-1005", "WKR-1006"]
    )
    seen: list[dict[str, Any]] = []
    async with probe.client() as c:
        for name, raw, rule in cases:
            r = await c.post("/v1/infer", content=raw, headers={"content-type": "application/json"})
            seen.append({"case": name, "rule": rule, **_short(r, 200)})
            if 200 <= r.status_code < 300:
                res.fail("WKR-1006", f"{name}: accepted with {r.status_code} ({rule})")
            elif r.status_code != 400:
                res.fail("WKR-1005", f"{name}: answered {r.status_code}, expected 400")
            else:
                problem = _error_body(r)
                if problem:
                    res.fail("WKR-1005", f"{name}: {problem}")
    res.evidence["cases"] = seen
    return res


# -- WKR-1011 ----------------------------------------------------------------------------------
async def check_oversized(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "oversized",
        "An oversized body is refused 400/413 and the worker keeps serving",
        ["WKR-1011"],
    )
    raw = b'{"prompt": "' + b"x" * probe.oversize_bytes + b'", "max_tokens": 1}'
    async with probe.client() as c:
        try:
            r = await c.post("/v1/infer", content=raw, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:
            # Closing the connection on a too-large body is refusing it, if the worker lives on.
            res.evidence["transport"] = repr(exc)
            r = None
        h = await c.get("/health")
    res.evidence["bytes"] = len(raw)
    if r is not None:
        res.evidence["response"] = _short(r, 200)
        if r.status_code not in (400, 413):
            res.fail(
                "WKR-1011",
                f"a {len(raw)}-byte body was answered {r.status_code}, expected 400 or 413",
            )
        elif r.status_code == 400 and (problem := _error_body(r)):
            res.fail("WKR-1011", problem)
    if h.status_code != 200:
        res.fail("WKR-1011", f"GET /health answered {h.status_code} after the oversized body")
    return res


# -- WKR-1005 busy / WKR-1009 busy→ready -----------------------------------------------------
async def _status(c: httpx.AsyncClient) -> str | None:
    try:
        r = await c.get("/info")
        v = r.json().get("status")
        return v if isinstance(v, str) else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


async def check_busy(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "busy",
        "A saturated worker reports busy, answers 503 {error}, then returns to ready",
        ["WKR-1005", "WKR-1009"],
    )
    body = {"prompt": probe.prompt, "max_tokens": probe.hold_max_tokens, "stream": True}
    held = 0
    statuses: list[str | None] = []
    rejected: httpx.Response | None = None
    # Keep every body iterator alive: a collected iterator closes its stream (and frees the slot).
    iterators: list[Any] = []
    async with probe.client() as c:
        async with AsyncExitStack() as stack:
            for _ in range(probe.max_concurrency + 1):
                status_before = await _status(c)
                statuses.append(status_before)
                r = await stack.enter_async_context(c.stream("POST", "/v1/infer", json=body))
                if r.status_code == 503:
                    await r.aread()
                    rejected = r
                    break
                if r.status_code != 200:
                    await r.aread()
                    return res.fail(
                        "WKR-1005", f"stream {held + 1} answered {r.status_code} before saturation"
                    )
                if status_before == "busy":
                    res.fail("WKR-1005", "the worker said busy yet accepted one more request")
                    break
                # The first bytes prove the request is in flight and holding its slot.
                it = r.aiter_raw()
                iterators.append(it)
                first = await anext(it, b"")
                held += 1
                if b"[DONE]" in first:
                    # Finished at once: it held no slot; try the next (a short stream).
                    continue
            busy_status = await _status(c)
            statuses.append(busy_status)
        res.evidence["held_streams"] = held
        if rejected is not None:
            res.evidence["rejection"] = _short(rejected)
            if problem := _error_body(rejected):
                res.fail("WKR-1005", f"503: {problem}")
            if busy_status != "busy":
                res.fail(
                    "WKR-1009", f"/info says {busy_status!r} while the worker refuses work as busy"
                )
        # After the streams are closed the slots are free again: back to ready (bounded wait).
        after: str | None = None
        with anyio.move_on_after(max(5.0, probe.grace_s)):
            while True:
                after = await _status(c)
                if after == "ready":
                    break
                await anyio.sleep(0.02)
        statuses.append(after)
    res.evidence["statuses"] = statuses
    if res.status == "fail":
        return res
    if rejected is None:
        if "busy" in statuses:
            return res.fail("WKR-1005", "the worker said busy but never refused with 503")
        return res.skip(
            f"could not saturate the worker: {held} streams opened (up to {probe.max_concurrency} "
            "at once) and it never reported busy (not judged)"
        )
    if "busy" not in statuses:
        res.fail("WKR-1009", "busy was never reported")
    if after != "ready":
        res.fail(
            "WKR-1009", f"after the streams closed the status stayed {after!r}, expected ready"
        )
    return res


# -- WKR-1007 ----------------------------------------------------------------------------------
async def _wait_queen(probe: WorkerProbe, predicate: Callable[[Any], Any], within_s: float) -> Any:
    def waiter() -> Any:
        try:
            return probe.queen.state.wait_for(predicate, within_s)
        except TimeoutError:
            return None

    return await anyio.to_thread.run_sync(waiter)


async def check_heartbeat(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "heartbeat",
        "Heartbeats reach the queen every interval with an RFC 3339 UTC timestamp",
        ["WKR-1007"],
    )
    if probe.queen is None:
        return res.skip(
            "no queen to receive heartbeats (give --queen-listen and point the worker at it)"
        )
    if probe.worker_id is None:
        _, info, _ = await fetch_info(probe)
        probe.worker_id = info.id if info is not None else None
    wid = probe.worker_id
    interval = probe.heartbeat_interval_s
    limit = interval * 1.5 + probe.grace_s
    state = probe.queen.state
    start = len(state.journal)

    def beats(s: Any) -> list[Any]:
        return [h for h in s.journal[start:] if wid is None or h.worker_id == wid]

    got = await _wait_queen(probe, lambda s: len(beats(s)) >= 2 and beats(s)[:2], 2 * limit)
    seen = beats(state)
    res.evidence["heartbeats"] = [h.to_dict() for h in seen[:4]]
    res.evidence["interval_s"] = interval
    if not seen:
        return res.fail("WKR-1007", f"no heartbeat from worker {wid!r} within {2 * limit:g} s")
    bad = [h for h in seen if not h.valid]
    if bad:
        return res.fail("WKR-1007", f"the queen rejected a heartbeat: {bad[0].error}")
    if got is None:
        return res.fail(
            "WKR-1007", f"one heartbeat, then none within {limit:g} s (interval {interval:g} s)"
        )
    a, b = got[0], got[1]
    gap = b.t_received - a.t_received
    res.evidence["gap_s"] = round(gap, 3)
    if gap > limit:
        res.fail("WKR-1007", f"{gap:.2f} s between heartbeats, more than {limit:g} s")
    for h in (a, b):
        try:
            ts = parse_rfc3339_utc(h.timestamp)
        except BadInferRequest as exc:
            res.fail("WKR-1007", str(exc))
            continue
        skew = abs((datetime.now(UTC) - ts).total_seconds() - (time.monotonic() - h.t_received))
        if skew > probe.max_skew_s:
            res.fail("WKR-1007", f"timestamp {h.timestamp} is {skew:.1f} s off the queen's clock")
    rec = state.worker(wid) if wid else None
    if rec is not None:
        _, info, _ = await fetch_info(probe)
        if info is not None:
            mine = {k: v for k, v in info.to_dict().items() if k != "status"}
            theirs = {k: v for k, v in rec.info.to_dict().items() if k != "status"}
            if mine != theirs:
                res.fail("WKR-1007", f"heartbeat WorkerInfo {theirs} differs from /info {mine}")
    return res


# -- WKR-1012 ----------------------------------------------------------------------------------
async def check_queen_down(probe: WorkerProbe) -> CheckResult:
    res = CheckResult(
        "queen_down",
        "With the queen down the worker keeps serving and its heartbeats come back",
        ["WKR-1012"],
    )
    if probe.queen is None:
        return res.skip("no queen to take down (give --queen-listen and point the worker at it)")
    queen = probe.queen
    interval = probe.heartbeat_interval_s
    await anyio.to_thread.run_sync(queen.stop)
    down_for = 2 * interval
    served: list[int] = []
    try:
        async with probe.client() as c:
            t_end = time.monotonic() + down_for
            while time.monotonic() < t_end:
                h = await c.get("/health")
                r = await c.post("/v1/infer", json={"prompt": probe.prompt, "max_tokens": 2})
                served.append(h.status_code)
                served.append(r.status_code)
                if h.status_code != 200 or r.status_code not in (200, 503):
                    res.fail(
                        "WKR-1012",
                        f"while the queen was down: /health {h.status_code}, /v1/infer {r.status_code}",
                    )
                    break
                await anyio.sleep(min(0.5, interval / 2))
    finally:
        start = len(queen.state.journal)
        await anyio.to_thread.run_sync(queen.start)
    res.evidence["down_for_s"] = down_for
    res.evidence["statuses_while_down"] = served[:40]
    if 200 not in served:
        res.fail("WKR-1012", "no inference succeeded while the queen was down")
    wid = probe.worker_id
    back_within = 2 * interval + probe.grace_s
    t0 = time.monotonic()
    got = await _wait_queen(
        probe,
        lambda s: any(h.valid and (wid is None or h.worker_id == wid) for h in s.journal[start:]),
        back_within,
    )
    res.evidence["heartbeat_back_after_s"] = round(time.monotonic() - t0, 3) if got else None
    if not got:
        res.fail("WKR-1012", f"no heartbeat within {back_within:g} s after the queen came back")
    return res


Check = Callable[[WorkerProbe], Awaitable[CheckResult]]

#: Every black-box check, in the order the runner performs them (heartbeat checks last: slow).
CHECKS: tuple[tuple[str, Check], ...] = (
    ("health", check_health),
    ("info", check_info),
    ("infer_json", check_infer_json),
    ("infer_stream", check_infer_stream),
    ("bad_input", check_bad_input),
    ("oversized", check_oversized),
    ("busy", check_busy),
    ("heartbeat", check_heartbeat),
    ("queen_down", check_queen_down),
)
