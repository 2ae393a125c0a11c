"""The requirement catalogue: every normative ID once, with text, level, source and owning layer.

Wire facts and wording come from ``reference/llama-orch-contracts.md`` (a digest of
veighnsche/llama-orch at the commits its §0 names) and ``seeds/`` (the original specs); the text
below is ours, condensed from those tables. Levels follow the RFC-2119 word of the source; where
the source mixes levels in one ID (e.g. ADAPT-3005 "MUST time-bound, SHOULD retry"), the ID
carries the strongest level and the text says which part is weaker.

Why keyword rows: each requirement is one ``Requirement(id=..., level=..., layer=...,
source=..., text=...)`` (like Gateway API's named conformance tests), so a row reads on its own
and a new field cannot shift the others; the class takes keywords only.

Why ``pending``: the catalogue lists IDs whose owning layer the suite cannot prove yet. They stay
in the catalogue so no ID is silently dropped, and each names its component in
``PENDING_COMPONENTS`` with the reason (today: PB-* — the writer exists in ``reports/`` with its
own tests, but no conformance scenario; AUTH-1003 — the facade has no worker-registration route;
AUTH-1006 — proxy-injected auth, a MAY, is not implemented). The coverage rule
(tests/conformance) accepts exactly these as uncovered; ``list requirements`` and the run summary
print them as ``not covered (layer not built)`` with that reason.

The rbee worker contract (reference §8, seed 004) has no IDs of its own; the ``WKR-*`` IDs here
are assigned by this harness, one per normative sentence of that contract; WKR-1011..1015 are the
harness's decisions where the contract is silent (body limits, queen down, shutdown, acks, errors
mid-stream). They are proven by ``features/worker`` and the ``worker-check`` target
(``conformance.rbee``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "ID_PATTERN",
    "PENDING_COMPONENTS",
    "Layer",
    "Level",
    "Requirement",
    "get_requirement",
    "is_known",
    "pending_requirements",
]


class Level(StrEnum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


class Layer(StrEnum):
    """Who owns (and must prove) a requirement."""

    ADAPTER = "adapter"
    HTTP_UTIL = "http util"
    ADAPTER_HOST = "adapter host"
    ORCHESTRATOR = "orchestrator"
    ENGINE_MOCK = "engine mock"
    WORKER = "worker"
    HARNESS = "harness"


#: Components not built in this project yet -> why. A requirement with ``pending`` set names one.
PENDING_COMPONENTS: dict[str, str] = {
    "proxy auth": "TRUST_PROXY_AUTH (a MAY) is not implemented by the facade",
}

#: The shape every catalogue ID has; a feature tag of this shape that is not in the catalogue is
#: an error (tests/conformance/test_catalogue.py).
ID_PATTERN = re.compile(
    r"^(ADAPT|WA-INT|HTU|HTU-EXP|HTU-PERF|HTU-SEC|HTU-ERR|OC-ADAPT|OC-ADAPT-OAI|ORCH|AH|SSE|"
    r"OC-TEST|OC-METRICS|AUTH|PB|WKR)-\d{4}[a-z]?$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    id: str
    level: Level
    layer: Layer
    text: str
    source: str
    pending: str | None = None  # key of PENDING_COMPONENTS when the owning layer is not built

    def to_dict(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "level": self.level.value,
            "layer": self.layer.value,
            "text": self.text,
            "source": self.source,
            "pending": self.pending,
        }


_SRC_WA = "worker-adapters spec 00_worker_adapters.md (seed 000)"
_SRC_WAI = "worker-adapters 33_INTEGRATION.md"
_SRC_HTU = "http-util spec + BDD features (reference §2.4/2.5)"
_SRC_ENG = ".specs/40..44 per-engine adapter specs (reference §4.2)"
_SRC_OAI = ".specs/44 OpenAI adapter spec (reference §4.2)"
_SRC_ROOT = ".specs/00_llama-orch.md §4 (reference §4.2)"
_SRC_AHP = "proposal adapter-host + http-util (seed 002)"
_SRC_AH = "adapter-host/.specs/00_adapter_host.md (reference §3.2)"
_SRC_SSE = "proposal token-streaming-and-cancel-robustness (reference §4.7)"
_SRC_G = "proposal close-home-profile-gaps (reference §4.8)"
_SRC_DET = ".specs/70-determinism-suite.md (reference §4.4)"
_SRC_MET = ".specs/71-metrics-contract.md (reference §4.3)"
_SRC_AUTH = ".specs/11_min_auth_hooks.md + 12_auth-min-hardening.md (reference §4.6)"
_SRC_PB = ".proof_bundle standard V1 (reference §6.1)"
_SRC_WKR = (
    "rbee worker-contract README + worker-api.yaml (seed 004, reference §8); IDs by this harness"
)

#: Key of :data:`PENDING_COMPONENTS` for the proxy-auth requirement (its layer is not built).
_PROXY_AUTH = "proxy auth"

#: Every requirement once, built by keyword (one row per ID, grouped by source as the reference
#: is): ``id``, ``level`` (the RFC-2119 word), ``layer`` (who must prove it), ``source`` and the
#: condensed ``text``; ``pending`` names a :data:`PENDING_COMPONENTS` entry where the owning layer
#: is not built. Order is the catalogue's (``list requirements`` and the reports keep it).
CATALOGUE: tuple[Requirement, ...] = (
    # -- worker adapters ------------------------------------------------------------------
    Requirement(
        id="ADAPT-3000",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Implement WorkerAdapter: health{live,ready} (ready implies dispatchable), props{slots_total?,slots_free?}, submit streaming started → token* → end (metrics optional), best-effort cancel, a stable engine_version equal to the engine's own (before and after a submit). submit forwards the task as asked: prompt (or chat messages), max_tokens, seed, stop sequences and engine parameters reach the engine unchanged.",
    ),
    Requirement(
        id="ADAPT-3001",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Token events use TokenEvent{kind,data} with kinds started, token, metrics, end, error; token data is {t: string, i: index}; end's tokens_out and decode_time_ms are non-negative integers and tokens_out equals the token events delivered (on every ending, cancelled included); metrics carry numbers where the contract says numbers.",
    ),
    Requirement(
        id="ADAPT-3002",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Errors are mapped to the WorkerError taxonomy (deadline, pool unavailable, decode timeout, reset, adapter, internal).",
    ),
    Requirement(
        id="ADAPT-3003",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Determinism signals (engine_version, seed, sampler profile) are propagated in started/end frames or logs.",
    ),
    Requirement(
        id="ADAPT-3004",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Metrics and logs carry the README_LLM fields (job_id, session_id, engine, engine_version, pool_id, replica_id, queue_position, predicted_start_ms, tokens_in, tokens_out, decode_time_ms) where the adapter knows them, with true values: the task's ids, the engine's name and version, tokens_out = tokens delivered, tokens_in = the engine's prompt token count, non-negative numbers.",
    ),
    Requirement(
        id="ADAPT-3005",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WA,
        text="Network requests are time-bounded (MUST); idempotent operations SHOULD be retried with caps and jitter.",
    ),
    Requirement(
        id="ADAPT-3101",
        level=Level.SHOULD,
        layer=Layer.ADAPTER,
        source=_SRC_SSE,
        text="HTTP adapters adopt the shared low-allocation incremental decoder; cancel is best effort by closing the body or the engine's cancel API.",
    ),
    Requirement(
        id="WA-INT-3001",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="A deterministic upstream stream is observed as exactly started, token*, [metrics], end with nothing after; token i strictly increasing from 0.",
    ),
    Requirement(
        id="WA-INT-3002",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="Cancel of an in-flight task: no token after cancel() returns; the stream ends with end {stop_reason: cancelled} (an error ending fails) within 500 ms of cancel() returning, and cancel() returns within 1 s; resources released, the upstream connection closed. (The bound: the contracts name a cancel-ack window and prompt propagation without a number; the reference orchestrator honours a cancel at its next stream pull, 10-30 ms apart; 500 ms adds scheduling slack and stays far below the scenarios' 3 s stall.)",
    ),
    Requirement(
        id="WA-INT-3003",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="429 + Retry-After / 503 / timeout before the first byte: capped jittered retries via http-util; the final error is retriable=true with retry_after_ms when known.",
    ),
    Requirement(
        id="WA-INT-3004",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="Permanent 4xx: no retry; the correct code (e.g. INVALID_PARAMS) with retriable=false.",
    ),
    Requirement(
        id="WA-INT-3005",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="Clients are built via http-util; no Authorization value appears in logs.",
    ),
    Requirement(
        id="WA-INT-3006",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="Same inputs + seed + sampler profile, two runs: byte-identical token streams.",
    ),
    Requirement(
        id="WA-INT-3007",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="On completion, logs include job_id, session_id, engine, engine_version, tokens_out, decode_time_ms, with values that match the task, the engine and the delivered tokens.",
    ),
    Requirement(
        id="WA-INT-3008",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_WAI,
        text="A mid-stream upstream error is surfaced as a terminal error event {code, retriable, retry_after_ms?} (the payload of the orchestrator's SSE error frame).",
    ),
    # -- http util --------------------------------------------------------------------------
    Requirement(
        id="HTU-1001",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Client defaults: connect 5 s, request 30 s, HTTP/2 with HTTP/1.1 fallback, pooled keep-alive, TLS verification on.",
    ),
    Requirement(
        id="HTU-1002",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Capped full-jitter retries for idempotent operations only: base 100 ms ×2, cap 2 s, 4 attempts in all.",
    ),
    Requirement(
        id="HTU-1003",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Stream decoding preserves started → token* → end with low allocation, whatever the chunking of the bytes.",
    ),
    Requirement(
        id="HTU-1004",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Authorization, X-API-Key and token patterns are redacted (****<fp6>); no raw secret at info/error level.",
    ),
    Requirement(
        id="HTU-1005",
        level=Level.MAY,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Optional bearer injection: a configured token is sent as Authorization: Bearer; none is sent when none is configured (explicit config, see HTU-EXP-1101).",
    ),
    Requirement(
        id="HTU-EXP-1101",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Adapters pass configuration explicitly; the HTTP layer does not read the environment.",
    ),
    Requirement(
        id="HTU-EXP-1102",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Only idempotent operations are retried; 400/401 are mapped directly without retry.",
    ),
    Requirement(
        id="HTU-EXP-1103",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Retry jitter is seedable for tests.",
    ),
    Requirement(
        id="HTU-EXP-1104",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Secrets are redacted before info/error logging.",
    ),
    Requirement(
        id="HTU-EXP-1105",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Clients come from the public builders; TLS verification is off only when a test asks for it.",
    ),
    Requirement(
        id="HTU-EXP-1106",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Errors follow the mapping table and include retriable and retry_after_ms.",
    ),
    Requirement(
        id="HTU-PERF-1301",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Clients are shared and reused (connection reuse across requests).",
    ),
    Requirement(
        id="HTU-PERF-1302",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="The decoder avoids per-token allocations and buffers boundedly (no whole-body buffering).",
    ),
    Requirement(
        id="HTU-SEC-1401",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="TLS on by default; proxies only when configured explicitly.",
    ),
    Requirement(
        id="HTU-SEC-1402",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Secrets are never logged: no log record carries a secret-shaped value unredacted (any bearer token, API-key header or pair, URL credentials, sk-/hf_ keys: the redactor's own patterns), whoever's secret it is.",
    ),
    Requirement(
        id="HTU-ERR-4001",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="Error messages are formatted redacted.",
    ),
    Requirement(
        id="HTU-ERR-4002",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="A stable mapping from upstream status/condition to error class and retriability.",
    ),
    Requirement(
        id="HTU-ERR-4003",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="The error envelope to adapters is {code, message, retriable, retry_after_ms?}; the message is short and secret-free.",
    ),
    Requirement(
        id="HTU-ERR-4004",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_HTU,
        text="retriable and retry_after_ms are preserved when surfaced into the stream's error event.",
    ),
    # -- per-engine adapters ------------------------------------------------------------------
    Requirement(
        id="OC-ADAPT-5001",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="llama.cpp: health, properties (slots), completion (SSE) and cancel against the native API.",
    ),
    Requirement(
        id="OC-ADAPT-5001a",
        level=Level.SHOULD,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="llama.cpp: Prometheus /metrics scrape (optional for MVP, SHOULD before v1.0).",
    ),
    Requirement(
        id="OC-ADAPT-5002",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="llama.cpp: OpenAI-compatible endpoints used internally are not exposed.",
    ),
    Requirement(
        id="OC-ADAPT-5010",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="llama.cpp: detokenization and sampler profiles normalised within a replica set.",
    ),
    Requirement(
        id="OC-ADAPT-5011",
        level=Level.SHOULD,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="llama.cpp: report engine_version and model_digest (MVP may use a static string).",
    ),
    Requirement(
        id="OC-ADAPT-5020",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="vLLM: health, properties, completion, cancel, metrics against the OpenAI-compatible server.",
    ),
    Requirement(
        id="OC-ADAPT-5021",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="vLLM: OpenAI endpoints stay internal; the public surface is the WorkerAdapter/OrchQueue.",
    ),
    Requirement(
        id="OC-ADAPT-5030",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="vLLM: report engine_version and sampler/profile versions.",
    ),
    Requirement(
        id="OC-ADAPT-5040",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="TGI: use /generate(_stream), /info, /health; OpenAI-compat optional and internal.",
    ),
    Requirement(
        id="OC-ADAPT-5050",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="TGI: capture engine_version and model info.",
    ),
    Requirement(
        id="OC-ADAPT-5060",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="Triton: HTTP/gRPC infer, health/metadata/stats; optional OpenAI frontends internal.",
    ),
    Requirement(
        id="OC-ADAPT-5070",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ENG,
        text="Triton: report engine_version / trtllm_version.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6000",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: implement health, props, submit, cancel, engine_version.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6001",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: submit maps to the Chat/Completions (or Responses) API with streaming; deltas become token events.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6002",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: bounded timeouts; capped jittered retries for idempotent calls.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6003",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: OpenAI endpoints are never exposed publicly.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6010",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: engine_version is the upstream model/version string (SHOULD include model_digest).",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6011",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: ordering started → token* → end; token boundaries follow upstream deltas.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6020",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: API keys redacted; headers not logged at error level.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6021",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: egress limited; TLS verification on; proxies explicit.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6030",
        level=Level.SHOULD,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: log retry/backoff; map upstream codes to WorkerError.",
    ),
    Requirement(
        id="OC-ADAPT-OAI-6031",
        level=Level.SHOULD,
        layer=Layer.ADAPTER,
        source=_SRC_OAI,
        text="OpenAI: capture latency and token counts; logs carry README_LLM fields.",
    ),
    Requirement(
        id="ORCH-3054",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ROOT,
        text="llama.cpp adapter: health, props, SSE completion, cancel, metrics.",
    ),
    Requirement(
        id="ORCH-3055",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ROOT,
        text="vLLM adapter: reports the engine version; OpenAI paths internal.",
    ),
    Requirement(
        id="ORCH-3056",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ROOT,
        text="TGI adapter: /generate and /info.",
    ),
    Requirement(
        id="ORCH-3057",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ROOT,
        text="Triton adapter: health, metadata, infer, metrics.",
    ),
    Requirement(
        id="ORCH-3058",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_ROOT,
        text="The mock adapter remains and supports fault injection.",
    ),
    # -- adapter host + shared http util (proposal) ---------------------------------------------
    Requirement(
        id="ORCH-3600",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AHP,
        text="Adapter-host registry keyed by (pool_id, replica_id) with bind/rebind hooks.",
    ),
    Requirement(
        id="ORCH-3601",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AHP,
        text="Adapter-host facade submit/cancel/health/props; prompt cancel propagation.",
    ),
    Requirement(
        id="ORCH-3602",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AHP,
        text="Adapter-host capped jittered retries and a circuit breaker; consistent WorkerError mapping.",
    ),
    Requirement(
        id="ORCH-3603",
        level=Level.SHOULD,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AHP,
        text="Adapter-host capability snapshot cache per pool/adapter feeding /v1/capabilities.",
    ),
    Requirement(
        id="ORCH-3604",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AHP,
        text="Adapter-host narration with actor=adapter-host, action=submit|cancel, target=engine and ids.",
    ),
    Requirement(
        id="ORCH-3610",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_AHP,
        text="Shared client builder: keep-alive, HTTP/2 preferred, TLS verification on, pool sizes, per-request timeouts.",
    ),
    Requirement(
        id="ORCH-3611",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_AHP,
        text="Retry/backoff helpers with jitter and idempotency gating; low-allocation streaming decode.",
    ),
    Requirement(
        id="ORCH-3612",
        level=Level.SHOULD,
        layer=Layer.HTTP_UTIL,
        source=_SRC_AHP,
        text="Adapters adopt the shared client and helpers (per-adapter overrides via config).",
    ),
    Requirement(
        id="ORCH-3613",
        level=Level.MUST,
        layer=Layer.HTTP_UTIL,
        source=_SRC_AHP,
        text="Secrets (API keys, tokens) are redacted by default logging.",
    ),
    Requirement(
        id="ORCH-3620",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_AHP,
        text="adapter-api stays the canonical trait boundary; no network hop between caller and adapter.",
    ),
    Requirement(
        id="AH-1001",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Registry bind/rebind (pool_id, replica_id) → adapter on preload/reload/drain; rebind atomic for callers.",
    ),
    Requirement(
        id="AH-1002",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Facade submit(pool_id, TaskRequest) → stream, cancel, health, props.",
    ),
    Requirement(
        id="AH-1003",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="submit propagates X-Correlation-Id (or generates a UUIDv4) to adapters and the log context.",
    ),
    Requirement(
        id="AH-1004",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="submit/cancel race-free: no tokens after the cancel-ack window.",
    ),
    Requirement(
        id="AH-1005",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Adapter errors mapped to the WorkerError taxonomy with advisory retriable, retry_after_ms?.",
    ),
    Requirement(
        id="AH-1006",
        level=Level.SHOULD,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Per-pool timeout/retry overrides wrapping adapter calls via http-util.",
    ),
    Requirement(
        id="AH-1007",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="A valid pin pool_id routes there, skipping placement; an invalid pin fails with INVALID_PARAMS.",
    ),
    Requirement(
        id="AH-2001",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Host logs carry the README_LLM fields.",
    ),
    Requirement(
        id="AH-2002",
        level=Level.MUST,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Short redacted human narration at submit, stream start/end, cancel, errors.",
    ),
    Requirement(
        id="AH-2003",
        level=Level.SHOULD,
        layer=Layer.ADAPTER_HOST,
        source=_SRC_AH,
        text="Counters (requests, cancels, retries) and histograms (first token, decode).",
    ),
    # -- orchestrator SSE ----------------------------------------------------------------------
    Requirement(
        id="SSE-1001",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_SSE,
        text="SSE is streamed incrementally with bounded memory, flushed per event.",
    ),
    Requirement(
        id="SSE-1002",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_SSE,
        text="Order started → token* → [metrics]* → end; no tokens after cancel.",
    ),
    Requirement(
        id="SSE-1003",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_SSE,
        text="Per-task cancellation end to end; client disconnect SHOULD count as cancel.",
    ),
    Requirement(
        id="SSE-1004",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_SSE,
        text="Bounded channel; metrics MAY be dropped under pressure, tokens MUST NOT.",
    ),
    Requirement(
        id="SSE-1005",
        level=Level.SHOULD,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_SSE,
        text="Prefer HTTP/2 with HTTP/1.1 fallback without behaviour change.",
    ),
    Requirement(
        id="ORCH-3406",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_G,
        text="After stream start, failures emit event: error {code, retriable, retry_after_ms?, message?}.",
    ),
    Requirement(
        id="ORCH-3407",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_G,
        text="After error the stream terminates (no token/metrics).",
    ),
    Requirement(
        id="ORCH-3408",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_G,
        text="Pre-stream errors use HTTP status; established streams stay 200 and carry SSE error.",
    ),
    Requirement(
        id="ORCH-3409",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_G,
        text="code ∈ ErrorKind; SSEError extended additively with retriable, retry_after_ms?.",
    ),
    # -- determinism -------------------------------------------------------------------------------
    Requirement(
        id="OC-TEST-7001",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_DET,
        text="Byte-exact token streams across replicas with fixed seeds.",
    ),
    Requirement(
        id="OC-TEST-7002",
        level=Level.MUST,
        layer=Layer.ADAPTER,
        source=_SRC_DET,
        text="Engine-specific determinism settings are applied (temperature 0, top_p 1, explicit seed, single slot).",
    ),
    Requirement(
        id="OC-TEST-7003",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_DET,
        text="The determinism seed corpus has at least 64 stable seeds.",
    ),
    # -- metrics -----------------------------------------------------------------------------------
    Requirement(
        id="OC-METRICS-7101",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_MET,
        text="Metric names/labels conform to ci/metrics.lint.json.",
    ),
    Requirement(
        id="OC-METRICS-7102",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_MET,
        text="Label cardinality budgets documented and enforced.",
    ),
    Requirement(
        id="OC-METRICS-7110",
        level=Level.SHOULD,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_MET,
        text="SSE metrics frames carry additive planning fields on_time_probability, queue_depth, kv_warmth.",
    ),
    # -- minimal auth ------------------------------------------------------------------------------
    Requirement(
        id="AUTH-1001",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="Accept one static Bearer token when configured.",
    ),
    Requirement(
        id="AUTH-1002",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="Refuse to start on a non-loopback bind without a token.",
    ),
    Requirement(
        id="AUTH-1003",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="Worker registration requires a valid token.",
    ),
    Requirement(
        id="AUTH-1004",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="AUTH_OPTIONAL=true lets loopback skip auth; others present the token.",
    ),
    Requirement(
        id="AUTH-1005",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="No roles; a single privilege level.",
    ),
    Requirement(
        id="AUTH-1006",
        level=Level.MAY,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        pending=_PROXY_AUTH,
        text="Proxy-injected Authorization may be trusted when TRUST_PROXY_AUTH=true.",
    ),
    Requirement(
        id="AUTH-1007",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="Token comparison is timing-safe.",
    ),
    Requirement(
        id="AUTH-1008",
        level=Level.MUST,
        layer=Layer.ORCHESTRATOR,
        source=_SRC_AUTH,
        text="Logs say identity=localhost or identity=token:<fp6>, never the full token.",
    ),
    # -- proof bundles -----------------------------------------------------------------------------
    Requirement(
        id="PB-1001",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Bundles live under <base>/<type>/<run_id>/ with fixed type directory names.",
    ),
    Requirement(
        id="PB-1002",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Honour LLORCH_RUN_ID; else a timestamp-sha id; never fail without git.",
    ),
    Requirement(
        id="PB-1003",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="LLORCH_PROOF_DIR overrides the base directory.",
    ),
    Requirement(
        id="PB-1004",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Streams as NDJSON, configs as pretty JSON, summaries as Markdown, timings as CSV.",
    ),
    Requirement(
        id="PB-1005",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Writer API: for_type, root, ensure_dir, append_ndjson, write_json, write_markdown, seeds().record.",
    ),
    Requirement(
        id="PB-1006",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Parents created; NDJSON appends with trailing newline; JSON/Markdown overwrite.",
    ),
    Requirement(
        id="PB-1007",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="The writer does no redaction; callers redact before writing.",
    ),
    Requirement(
        id="PB-1008",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Errors are results, never crashes on normal IO.",
    ),
    Requirement(
        id="PB-1009",
        level=Level.MAY,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="No multi-writer atomicity is promised.",
    ),
    Requirement(
        id="PB-1010",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Fixed test-type map (unit, integration, contract, bdd, determinism, home-profile-smoke, e2e-haiku).",
    ),
    Requirement(
        id="PB-1011",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Linux paths.",
    ),
    Requirement(
        id="PB-1012",
        level=Level.MUST,
        layer=Layer.HARNESS,
        source=_SRC_PB,
        text="Autogenerated markers on every artifact (header line, NDJSON meta record, .json.meta sibling).",
    ),
    # -- rbee worker contract (IDs assigned here) ---------------------------------------------------
    Requirement(
        id="WKR-1001",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text='GET /health answers 200 text/plain "ok".',
    ),
    Requirement(
        id="WKR-1002",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="GET /info answers WorkerInfo{id, model_id, device, port, status, implementation, version}, all required.",
    ),
    Requirement(
        id="WKR-1003",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="POST /v1/infer (stream false) answers InferResponse{text, tokens_generated, duration_ms}.",
    ),
    Requirement(
        id="WKR-1004",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text='POST /v1/infer with stream true answers SSE data: {"token": ...} frames then data: [DONE].',
    ),
    Requirement(
        id="WKR-1005",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="Bad requests answer 400 and busy/not-ready 503, both with Error{error}.",
    ),
    Requirement(
        id="WKR-1006",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="InferRequest limits: prompt required, max_tokens 1..4096, temperature 0.0..2.0, stream default false.",
    ),
    Requirement(
        id="WKR-1007",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="A heartbeat WorkerHeartbeat{worker, timestamp RFC3339 UTC} is POSTed to the queen's /v1/worker-heartbeat every 30 s.",
    ),
    Requirement(
        id="WKR-1008",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="After 90 s without a heartbeat (strictly older than the timeout) the queen marks the worker unavailable.",
    ),
    Requirement(
        id="WKR-1009",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="Status follows starting → ready → busy → ready and stopped on graceful shutdown; wire values are lowercase.",
    ),
    Requirement(
        id="WKR-1010",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="A worker is available for routing exactly when its status is ready or busy.",
    ),
    Requirement(
        id="WKR-1011",
        level=Level.SHOULD,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="An oversized request body is refused with 400 (or 413) and an Error{error} body; the worker keeps serving.",
    ),
    Requirement(
        id="WKR-1012",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="While the queen is unreachable the worker keeps serving and retries heartbeats with capped jittered backoff; it is registered again once the queen is back.",
    ),
    Requirement(
        id="WKR-1013",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="A graceful shutdown (SIGTERM or stop) reports stopping, refuses new inference with 503 and sends a final heartbeat with status stopped.",
    ),
    Requirement(
        id="WKR-1014",
        level=Level.MUST,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text="The queen acknowledges a heartbeat with HeartbeatAck{status ok|error, message}; an invalid heartbeat gets error and is not registered.",
    ),
    Requirement(
        id="WKR-1015",
        level=Level.SHOULD,
        layer=Layer.WORKER,
        source=_SRC_WKR,
        text='An inference failure before the first token is an HTTP error (400/503/500 with Error{error}); after it, one data: {"error", "code", "retriable"} frame and no data: [DONE].',
    ),
)

_BY_ID = {r.id: r for r in CATALOGUE}


def is_known(rid: str) -> bool:
    return rid in _BY_ID


def get_requirement(rid: str) -> Requirement:
    """The catalogue entry for ``rid``; ``KeyError`` with a readable message when unknown."""
    try:
        return _BY_ID[rid]
    except KeyError:
        raise KeyError(f"unknown requirement ID {rid!r}") from None


def pending_requirements() -> tuple[Requirement, ...]:
    """IDs whose owning layer is not built yet (each names its component in ``pending``)."""
    return tuple(r for r in CATALOGUE if r.pending is not None)
