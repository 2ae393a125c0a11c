"""What an implementer needs beside a requirement's text: how to meet it, what usually fails it.

Why a table of its own: the catalogue states *what* the sources require; a vendor reading
``llorch-conformance explain ID`` (or a ``TODO`` the ``init`` scaffold wrote) needs *how* the
suite checks it and the mistakes that make the check fail. Guidance is kept per ID where one ID
has its own pitfalls and per ID family otherwise, so every catalogue ID gets an answer (the
catalogue test checks that no ID falls through).

It is also where a requirement's *scope* is decided from the feature area that proves it
(:data:`AREA_SCOPE`): the areas that test the suite's own code (its HTTP client, bundle writer,
seed corpus) are ``suite`` — they run in the project's own tests and default runs, never in a
vendor's report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AREA_SCOPE",
    "SCOPES",
    "Guidance",
    "area_of",
    "guidance_for",
    "scope_of_area",
]

#: ``--scope`` values: what a run judges. ``all`` includes the suite's self-checks.
SCOPES: Final = ("adapter", "host", "orchestrator", "worker", "all")

#: Feature area (``features/<area>/``) → the scope it belongs to; ``suite`` = self-checks.
AREA_SCOPE: Final[dict[str, str]] = {
    "cancel": "adapter",
    "contract": "adapter",
    "determinism": "adapter",
    "engines": "adapter",
    "errors": "adapter",
    "observability": "adapter",
    "oracle": "adapter",
    "security": "adapter",
    "stream": "adapter",
    "host": "host",
    "orchestrator": "orchestrator",
    "worker": "worker",
    "harness": "suite",
    "http_util": "suite",
    "proof_bundle": "suite",
}


def scope_of_area(area: str) -> str:
    """The scope of a feature area; an unknown area (a vendor's own feature) is ``adapter``."""
    return AREA_SCOPE.get(area, "adapter")


def area_of(path: str) -> str:
    """``.../features/<area>/x.feature`` → ``<area>`` (empty when the path has no such part)."""
    parts = re.split(r"[\\/]", path)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "features" and i + 1 < len(parts) - 1:
            return parts[i + 1]
    return ""


@dataclass(frozen=True)
class Guidance:
    how: str
    failures: tuple[str, ...]


_DOC = "docs/writing-an-adapter.md"

# Per ID (exact) first, then per family (regex on the ID), first match wins.
_BY_ID: Final[dict[str, Guidance]] = {
    "ADAPT-3000": Guidance(
        "Implement every WorkerAdapter method: health() → WorkerHealth(live, ready), props() → "
        "WorkerProps(slots_total, slots_free), capabilities(), engine_version() (stable across "
        "calls), cancel(task_id) and submit(request) as an async iterator that yields started, "
        "then tokens, then exactly one end or error.",
        (
            "submit() is a coroutine instead of an async generator (the harness iterates it)",
            "ready=True while the engine is still loading (ready must imply dispatchable)",
            "engine_version() returns a different string on each call",
        ),
    ),
    "ADAPT-3001": Guidance(
        "Yield TokenEvent(kind, data): kind in started/token/metrics/end/error; a token's data is "
        "{'t': text, 'i': index} with i counting from 0; started carries the task's identity.",
        (
            "no started event before the first token (one missing started fails many scenarios)",
            "token index starting at 1 or repeating after a retry",
            "extra keys or a bare string as token data",
        ),
    ),
    "ADAPT-3002": Guidance(
        "Map every engine or transport failure to a WorkerError with the taxonomy's code "
        "(DEADLINE_UNMET, POOL_UNAVAILABLE, DECODE_TIMEOUT, WORKER_RESET, INVALID_PARAMS, "
        "ADAPTER_ERROR, INTERNAL) — raise it before the stream starts, yield an error event after.",
        (
            "an httpx exception escapes the adapter (reported as a harness error or INTERNAL)",
            "a silent engine ends the stream normally instead of DECODE_TIMEOUT",
            "retriable set on a permanent 4xx",
        ),
    ),
    "ADAPT-3004": Guidance(
        "Log through the 'adapters' logger (or your own) with the README_LLM fields as record "
        "extras: job_id, session_id, engine, engine_version, pool_id, replica_id, tokens_in, "
        "tokens_out, decode_time_ms. pool_id/replica_id come from the factory's config.",
        (
            "the factory ignores pool_id/replica_id, so the records carry none",
            "the fields are formatted into the message text instead of the record's extras",
        ),
    ),
    "ADAPT-3005": Guidance(
        "Build your HTTP client from the 'http' config the harness passes (HttpClientConfig: "
        "connect/first-byte/inter-chunk/total timeouts, TLS verify) and retry idempotent calls "
        "with the 'retry' RetryPolicy (capped, full jitter, seeded).",
        (
            "the factory ignores 'http' and uses library defaults (no first-byte timeout)",
            "retries without a cap or without jitter; retrying a non-idempotent submit",
            "httpx reading proxy settings from the environment (pass trust_env=False)",
        ),
    ),
    "WA-INT-3002": Guidance(
        "cancel(task_id) closes the upstream response (and calls the engine's cancel API when it "
        "has one); the stream ends within the cancel-ack window with no token after it.",
        (
            "cancel only sets a flag checked between tokens (tokens keep flowing)",
            "the upstream connection stays open after cancel",
        ),
    ),
    "WA-INT-3005": Guidance(
        "Create clients through adapters.http_util (or the same rules: TLS on, explicit proxies) "
        "and never log an Authorization header or API key — redact with the shared redactor.",
        ("logging request headers at debug or error level", "an API key inside an exception text"),
    ),
    "WA-INT-3006": Guidance(
        "Send the seed and a greedy/deterministic sampler profile to the engine exactly as the "
        "request asks, and emit tokens exactly as the engine produced them.",
        (
            "the seed is not forwarded (the engine picks its own)",
            "tokens re-split or whitespace-normalised differently between runs",
        ),
    ),
    "WA-INT-3008": Guidance(
        "An upstream failure after started becomes one terminal error event "
        "{code, retriable, retry_after_ms?}; nothing follows it.",
        ("a mid-stream error raises out of the iterator instead of yielding an error event",),
    ),
}

_FAMILIES: Final[tuple[tuple[str, Guidance], ...]] = (
    (
        r"^ADAPT-",
        Guidance(
            "Follow the WorkerAdapter contract (" + _DOC + ").",
            ("an undeclared gap: declare it in Capabilities.declared_unsupported instead",),
        ),
    ),
    (
        r"^WA-INT-300[34]$",
        Guidance(
            "Retry 429/503/timeouts before the first byte with the 'retry' policy (honour "
            "Retry-After); never retry a permanent 4xx; the final error carries retriable and "
            "retry_after_ms.",
            (
                "retrying 400/404/422",
                "ignoring Retry-After",
                "retriable=false on a final 503",
            ),
        ),
    ),
    (
        r"^WA-INT-",
        Guidance(
            "Stream exactly started, token*, [metrics], end; log completion fields (job_id, "
            "session_id, engine, engine_version, tokens_out, decode_time_ms).",
            ("an event after end", "completion log without tokens_out or decode_time_ms"),
        ),
    ),
    (
        r"^OC-ADAPT-OAI-",
        Guidance(
            "Drive the OpenAI Chat/Completions streaming API; deltas become token events; "
            "engine_version is the served model string; API keys never logged; TLS verified.",
            (
                "using the non-streaming endpoint",
                "engine_version left as a constant",
                "the key visible in logs or errors",
            ),
        ),
    ),
    (
        r"^(OC-ADAPT|ORCH-305)",
        Guidance(
            "Use the engine's native API as the engine documents it: health, properties/slots, "
            "streaming completion, "
            "cancel, metrics, and report engine_version from the engine.",
            (
                "calling an endpoint the dialect does not have (404 from the mock engine)",
                "engine_version hard-coded instead of read from the engine",
            ),
        ),
    ),
    (
        r"^OC-TEST-700[12]$",
        Guidance(
            "Apply the engine's determinism settings (temperature 0, top_p 1, explicit seed, one "
            "slot) so two replicas produce byte-identical streams.",
            ("the seed not forwarded", "sampling parameters left to the engine's defaults"),
        ),
    ),
)

#: The rest by owning layer (catalogue ``Layer`` value).
_BY_LAYER: Final[dict[str, Guidance]] = {
    "http util": Guidance(
        "Met by the shared HTTP client (adapters.http_util): adapters that build their clients "
        "with it inherit timeouts, capped jittered retries, redaction and TLS defaults.",
        ("a private httpx client with different defaults",),
    ),
    "adapter host": Guidance(
        "Met by the adapter host (adapters.host): registry, bind/rebind, submit/cancel routing, "
        "and one narration/metrics wrapper around every adapter.",
        ("an adapter that cannot be closed and rebound",),
    ),
    "orchestrator": Guidance(
        "Met by the orchestrator facade (adapters.orchestrator or yours, judged with "
        "--orchestrator-url): task admission, SSE framing, cancel, auth and metrics.",
        ("SSE frames out of order or without the terminal frame", "metric names off-spec"),
    ),
    "worker": Guidance(
        "Met by an rbee worker (judged with --worker-url): its HTTP API, heartbeats to the "
        "queen, lifecycle and shutdown.",
        ("heartbeats missing fields or sent too rarely",),
    ),
    "harness": Guidance(
        "Met by the suite itself (the proof-bundle writer, the seed corpus); no adapter work.",
        (),
    ),
    "engine mock": Guidance("Met by the suite's mock engines; no adapter work.", ()),
}


def guidance_for(rid: str, layer: str) -> Guidance:
    """Guidance for a catalogue ID of ``layer``: its own, else its family's, else its layer's."""
    g = _BY_ID.get(rid)
    if g is not None:
        return g
    if layer == "adapter":
        for pattern, fam in _FAMILIES:
            if re.match(pattern, rid):
                return fam
    return _BY_LAYER.get(layer, _FAMILIES[0][1])
