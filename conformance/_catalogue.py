"""The requirement catalogue: every normative ID once, with text, level, source and owning layer.

Wire facts and wording come from ``reference/llama-orch-contracts.md`` (a digest of
veighnsche/llama-orch at the commits its §0 names) and ``seeds/`` (the original specs); the text
below is ours, condensed from those tables. Levels follow the RFC-2119 word of the source; where
the source mixes levels in one ID (e.g. ADAPT-3005 "MUST time-bound, SHOULD retry"), the ID
carries the strongest level and the text says which part is weaker.

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


@dataclass(frozen=True, slots=True)
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


_M, _S, _Y = Level.MUST, Level.SHOULD, Level.MAY
_AD, _HU, _AH, _OR, _WK, _HA = (
    Layer.ADAPTER,
    Layer.HTTP_UTIL,
    Layer.ADAPTER_HOST,
    Layer.ORCHESTRATOR,
    Layer.WORKER,
    Layer.HARNESS,
)

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

_HOST = None  # built: adapters.host; proven by features/host
_ORCH = None  # built: adapters.orchestrator; proven by features/orchestrator
_WREG = None  # built: POST /v1/workers/register; proven by features/orchestrator/registration
_PROXY = "proxy auth"
_PB = None  # built: reports (ProofBundle, write_bundle); proven by features/proof_bundle
_WKRP = None  # built: mock_engines.rbee, adapters.rbee_worker, conformance.rbee

# (id, level, layer, text, source, pending)
_ROWS: tuple[tuple[str, Level, Layer, str, str, str | None], ...] = (
    # -- worker adapters ------------------------------------------------------------------
    (
        "ADAPT-3000",
        _M,
        _AD,
        "Implement WorkerAdapter: health{live,ready} (ready implies dispatchable), props{slots_total?,slots_free?}, submit streaming started → token* → end (metrics optional), best-effort cancel, a stable engine_version equal to the engine's own (before and after a submit). submit forwards the task as asked: prompt (or chat messages), max_tokens, seed, stop sequences and engine parameters reach the engine unchanged.",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3001",
        _M,
        _AD,
        "Token events use TokenEvent{kind,data} with kinds started, token, metrics, end, error; token data is {t: string, i: index}; end's tokens_out and decode_time_ms are non-negative integers and tokens_out equals the token events delivered (on every ending, cancelled included); metrics carry numbers where the contract says numbers.",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3002",
        _M,
        _AD,
        "Errors are mapped to the WorkerError taxonomy (deadline, pool unavailable, decode timeout, reset, adapter, internal).",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3003",
        _M,
        _AD,
        "Determinism signals (engine_version, seed, sampler profile) are propagated in started/end frames or logs.",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3004",
        _M,
        _AD,
        "Metrics and logs carry the README_LLM fields (job_id, session_id, engine, engine_version, pool_id, replica_id, queue_position, predicted_start_ms, tokens_in, tokens_out, decode_time_ms) where the adapter knows them, with true values: the task's ids, the engine's name and version, tokens_out = tokens delivered, tokens_in = the engine's prompt token count, non-negative numbers.",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3005",
        _M,
        _AD,
        "Network requests are time-bounded (MUST); idempotent operations SHOULD be retried with caps and jitter.",
        _SRC_WA,
        None,
    ),
    (
        "ADAPT-3101",
        _S,
        _AD,
        "HTTP adapters adopt the shared low-allocation incremental decoder; cancel is best effort by closing the body or the engine's cancel API.",
        _SRC_SSE,
        None,
    ),
    (
        "WA-INT-3001",
        _M,
        _AD,
        "A deterministic upstream stream is observed as exactly started, token*, [metrics], end with nothing after; token i strictly increasing from 0.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3002",
        _M,
        _AD,
        "Cancel of an in-flight task: no token after cancel() returns; the stream ends with end {stop_reason: cancelled} (an error ending fails) within 500 ms of cancel() returning, and cancel() returns within 1 s; resources released, the upstream connection closed. (The bound: the contracts name a cancel-ack window and prompt propagation without a number; the reference orchestrator honours a cancel at its next stream pull, 10-30 ms apart; 500 ms adds scheduling slack and stays far below the scenarios' 3 s stall.)",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3003",
        _M,
        _AD,
        "429 + Retry-After / 503 / timeout before the first byte: capped jittered retries via http-util; the final error is retriable=true with retry_after_ms when known.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3004",
        _M,
        _AD,
        "Permanent 4xx: no retry; the correct code (e.g. INVALID_PARAMS) with retriable=false.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3005",
        _M,
        _AD,
        "Clients are built via http-util; no Authorization value appears in logs.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3006",
        _M,
        _AD,
        "Same inputs + seed + sampler profile, two runs: byte-identical token streams.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3007",
        _M,
        _AD,
        "On completion, logs include job_id, session_id, engine, engine_version, tokens_out, decode_time_ms, with values that match the task, the engine and the delivered tokens.",
        _SRC_WAI,
        None,
    ),
    (
        "WA-INT-3008",
        _M,
        _AD,
        "A mid-stream upstream error is surfaced as a terminal error event {code, retriable, retry_after_ms?} (the payload of the orchestrator's SSE error frame).",
        _SRC_WAI,
        None,
    ),
    # -- http util --------------------------------------------------------------------------
    (
        "HTU-1001",
        _M,
        _HU,
        "Client defaults: connect 5 s, request 30 s, HTTP/2 with HTTP/1.1 fallback, pooled keep-alive, TLS verification on.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-1002",
        _M,
        _HU,
        "Capped full-jitter retries for idempotent operations only: base 100 ms ×2, cap 2 s, 4 attempts in all.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-1003",
        _M,
        _HU,
        "Stream decoding preserves started → token* → end with low allocation, whatever the chunking of the bytes.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-1004",
        _M,
        _HU,
        "Authorization, X-API-Key and token patterns are redacted (****<fp6>); no raw secret at info/error level.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-1005",
        _Y,
        _HU,
        "Optional bearer injection: a configured token is sent as Authorization: Bearer; none is sent when none is configured (explicit config, see HTU-EXP-1101).",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-EXP-1101",
        _M,
        _HU,
        "Adapters pass configuration explicitly; the HTTP layer does not read the environment.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-EXP-1102",
        _M,
        _HU,
        "Only idempotent operations are retried; 400/401 are mapped directly without retry.",
        _SRC_HTU,
        None,
    ),
    ("HTU-EXP-1103", _M, _HU, "Retry jitter is seedable for tests.", _SRC_HTU, None),
    ("HTU-EXP-1104", _M, _HU, "Secrets are redacted before info/error logging.", _SRC_HTU, None),
    (
        "HTU-EXP-1105",
        _M,
        _HU,
        "Clients come from the public builders; TLS verification is off only when a test asks for it.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-EXP-1106",
        _M,
        _HU,
        "Errors follow the mapping table and include retriable and retry_after_ms.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-PERF-1301",
        _M,
        _HU,
        "Clients are shared and reused (connection reuse across requests).",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-PERF-1302",
        _M,
        _HU,
        "The decoder avoids per-token allocations and buffers boundedly (no whole-body buffering).",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-SEC-1401",
        _M,
        _HU,
        "TLS on by default; proxies only when configured explicitly.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-SEC-1402",
        _M,
        _HU,
        "Secrets are never logged: no log record carries a secret-shaped value unredacted (any bearer token, API-key header or pair, URL credentials, sk-/hf_ keys: the redactor's own patterns), whoever's secret it is.",
        _SRC_HTU,
        None,
    ),
    ("HTU-ERR-4001", _M, _HU, "Error messages are formatted redacted.", _SRC_HTU, None),
    (
        "HTU-ERR-4002",
        _M,
        _HU,
        "A stable mapping from upstream status/condition to error class and retriability.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-ERR-4003",
        _M,
        _HU,
        "The error envelope to adapters is {code, message, retriable, retry_after_ms?}; the message is short and secret-free.",
        _SRC_HTU,
        None,
    ),
    (
        "HTU-ERR-4004",
        _M,
        _HU,
        "retriable and retry_after_ms are preserved when surfaced into the stream's error event.",
        _SRC_HTU,
        None,
    ),
    # -- per-engine adapters ------------------------------------------------------------------
    (
        "OC-ADAPT-5001",
        _M,
        _AD,
        "llama.cpp: health, properties (slots), completion (SSE) and cancel against the native API.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5001a",
        _S,
        _AD,
        "llama.cpp: Prometheus /metrics scrape (optional for MVP, SHOULD before v1.0).",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5002",
        _M,
        _AD,
        "llama.cpp: OpenAI-compatible endpoints used internally are not exposed.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5010",
        _M,
        _AD,
        "llama.cpp: detokenization and sampler profiles normalised within a replica set.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5011",
        _S,
        _AD,
        "llama.cpp: report engine_version and model_digest (MVP may use a static string).",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5020",
        _M,
        _AD,
        "vLLM: health, properties, completion, cancel, metrics against the OpenAI-compatible server.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5021",
        _M,
        _AD,
        "vLLM: OpenAI endpoints stay internal; the public surface is the WorkerAdapter/OrchQueue.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5030",
        _M,
        _AD,
        "vLLM: report engine_version and sampler/profile versions.",
        _SRC_ENG,
        None,
    ),
    (
        "OC-ADAPT-5040",
        _M,
        _AD,
        "TGI: use /generate(_stream), /info, /health; OpenAI-compat optional and internal.",
        _SRC_ENG,
        None,
    ),
    ("OC-ADAPT-5050", _M, _AD, "TGI: capture engine_version and model info.", _SRC_ENG, None),
    (
        "OC-ADAPT-5060",
        _M,
        _AD,
        "Triton: HTTP/gRPC infer, health/metadata/stats; optional OpenAI frontends internal.",
        _SRC_ENG,
        None,
    ),
    ("OC-ADAPT-5070", _M, _AD, "Triton: report engine_version / trtllm_version.", _SRC_ENG, None),
    (
        "OC-ADAPT-OAI-6000",
        _M,
        _AD,
        "OpenAI: implement health, props, submit, cancel, engine_version.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6001",
        _M,
        _AD,
        "OpenAI: submit maps to the Chat/Completions (or Responses) API with streaming; deltas become token events.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6002",
        _M,
        _AD,
        "OpenAI: bounded timeouts; capped jittered retries for idempotent calls.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6003",
        _M,
        _AD,
        "OpenAI: OpenAI endpoints are never exposed publicly.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6010",
        _M,
        _AD,
        "OpenAI: engine_version is the upstream model/version string (SHOULD include model_digest).",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6011",
        _M,
        _AD,
        "OpenAI: ordering started → token* → end; token boundaries follow upstream deltas.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6020",
        _M,
        _AD,
        "OpenAI: API keys redacted; headers not logged at error level.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6021",
        _M,
        _AD,
        "OpenAI: egress limited; TLS verification on; proxies explicit.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6030",
        _S,
        _AD,
        "OpenAI: log retry/backoff; map upstream codes to WorkerError.",
        _SRC_OAI,
        None,
    ),
    (
        "OC-ADAPT-OAI-6031",
        _S,
        _AD,
        "OpenAI: capture latency and token counts; logs carry README_LLM fields.",
        _SRC_OAI,
        None,
    ),
    (
        "ORCH-3054",
        _M,
        _AD,
        "llama.cpp adapter: health, props, SSE completion, cancel, metrics.",
        _SRC_ROOT,
        None,
    ),
    (
        "ORCH-3055",
        _M,
        _AD,
        "vLLM adapter: reports the engine version; OpenAI paths internal.",
        _SRC_ROOT,
        None,
    ),
    ("ORCH-3056", _M, _AD, "TGI adapter: /generate and /info.", _SRC_ROOT, None),
    ("ORCH-3057", _M, _AD, "Triton adapter: health, metadata, infer, metrics.", _SRC_ROOT, None),
    (
        "ORCH-3058",
        _M,
        _AD,
        "The mock adapter remains and supports fault injection.",
        _SRC_ROOT,
        None,
    ),
    # -- adapter host + shared http util (proposal) ---------------------------------------------
    (
        "ORCH-3600",
        _M,
        _AH,
        "Adapter-host registry keyed by (pool_id, replica_id) with bind/rebind hooks.",
        _SRC_AHP,
        _HOST,
    ),
    (
        "ORCH-3601",
        _M,
        _AH,
        "Adapter-host facade submit/cancel/health/props; prompt cancel propagation.",
        _SRC_AHP,
        _HOST,
    ),
    (
        "ORCH-3602",
        _M,
        _AH,
        "Adapter-host capped jittered retries and a circuit breaker; consistent WorkerError mapping.",
        _SRC_AHP,
        _HOST,
    ),
    (
        "ORCH-3603",
        _S,
        _AH,
        "Adapter-host capability snapshot cache per pool/adapter feeding /v1/capabilities.",
        _SRC_AHP,
        _HOST,
    ),
    (
        "ORCH-3604",
        _M,
        _AH,
        "Adapter-host narration with actor=adapter-host, action=submit|cancel, target=engine and ids.",
        _SRC_AHP,
        _HOST,
    ),
    (
        "ORCH-3610",
        _M,
        _HU,
        "Shared client builder: keep-alive, HTTP/2 preferred, TLS verification on, pool sizes, per-request timeouts.",
        _SRC_AHP,
        None,
    ),
    (
        "ORCH-3611",
        _M,
        _HU,
        "Retry/backoff helpers with jitter and idempotency gating; low-allocation streaming decode.",
        _SRC_AHP,
        None,
    ),
    (
        "ORCH-3612",
        _S,
        _HU,
        "Adapters adopt the shared client and helpers (per-adapter overrides via config).",
        _SRC_AHP,
        None,
    ),
    (
        "ORCH-3613",
        _M,
        _HU,
        "Secrets (API keys, tokens) are redacted by default logging.",
        _SRC_AHP,
        None,
    ),
    (
        "ORCH-3620",
        _M,
        _AD,
        "adapter-api stays the canonical trait boundary; no network hop between caller and adapter.",
        _SRC_AHP,
        None,
    ),
    (
        "AH-1001",
        _M,
        _AH,
        "Registry bind/rebind (pool_id, replica_id) → adapter on preload/reload/drain; rebind atomic for callers.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1002",
        _M,
        _AH,
        "Facade submit(pool_id, TaskRequest) → stream, cancel, health, props.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1003",
        _M,
        _AH,
        "submit propagates X-Correlation-Id (or generates a UUIDv4) to adapters and the log context.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1004",
        _M,
        _AH,
        "submit/cancel race-free: no tokens after the cancel-ack window.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1005",
        _M,
        _AH,
        "Adapter errors mapped to the WorkerError taxonomy with advisory retriable, retry_after_ms?.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1006",
        _S,
        _AH,
        "Per-pool timeout/retry overrides wrapping adapter calls via http-util.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-1007",
        _M,
        _AH,
        "A valid pin pool_id routes there, skipping placement; an invalid pin fails with INVALID_PARAMS.",
        _SRC_AH,
        _HOST,
    ),
    ("AH-2001", _M, _AH, "Host logs carry the README_LLM fields.", _SRC_AH, _HOST),
    (
        "AH-2002",
        _M,
        _AH,
        "Short redacted human narration at submit, stream start/end, cancel, errors.",
        _SRC_AH,
        _HOST,
    ),
    (
        "AH-2003",
        _S,
        _AH,
        "Counters (requests, cancels, retries) and histograms (first token, decode).",
        _SRC_AH,
        _HOST,
    ),
    # -- orchestrator SSE ----------------------------------------------------------------------
    (
        "SSE-1001",
        _M,
        _OR,
        "SSE is streamed incrementally with bounded memory, flushed per event.",
        _SRC_SSE,
        _ORCH,
    ),
    (
        "SSE-1002",
        _M,
        _OR,
        "Order started → token* → [metrics]* → end; no tokens after cancel.",
        _SRC_SSE,
        _ORCH,
    ),
    (
        "SSE-1003",
        _M,
        _OR,
        "Per-task cancellation end to end; client disconnect SHOULD count as cancel.",
        _SRC_SSE,
        _ORCH,
    ),
    (
        "SSE-1004",
        _M,
        _OR,
        "Bounded channel; metrics MAY be dropped under pressure, tokens MUST NOT.",
        _SRC_SSE,
        _ORCH,
    ),
    (
        "SSE-1005",
        _S,
        _OR,
        "Prefer HTTP/2 with HTTP/1.1 fallback without behaviour change.",
        _SRC_SSE,
        _ORCH,
    ),
    (
        "ORCH-3406",
        _M,
        _OR,
        "After stream start, failures emit event: error {code, retriable, retry_after_ms?, message?}.",
        _SRC_G,
        _ORCH,
    ),
    ("ORCH-3407", _M, _OR, "After error the stream terminates (no token/metrics).", _SRC_G, _ORCH),
    (
        "ORCH-3408",
        _M,
        _OR,
        "Pre-stream errors use HTTP status; established streams stay 200 and carry SSE error.",
        _SRC_G,
        _ORCH,
    ),
    (
        "ORCH-3409",
        _M,
        _OR,
        "code ∈ ErrorKind; SSEError extended additively with retriable, retry_after_ms?.",
        _SRC_G,
        _ORCH,
    ),
    # -- determinism -------------------------------------------------------------------------------
    (
        "OC-TEST-7001",
        _M,
        _AD,
        "Byte-exact token streams across replicas with fixed seeds.",
        _SRC_DET,
        None,
    ),
    (
        "OC-TEST-7002",
        _M,
        _AD,
        "Engine-specific determinism settings are applied (temperature 0, top_p 1, explicit seed, single slot).",
        _SRC_DET,
        None,
    ),
    (
        "OC-TEST-7003",
        _M,
        _HA,
        "The determinism seed corpus has at least 64 stable seeds.",
        _SRC_DET,
        None,
    ),
    # -- metrics -----------------------------------------------------------------------------------
    (
        "OC-METRICS-7101",
        _M,
        _OR,
        "Metric names/labels conform to ci/metrics.lint.json.",
        _SRC_MET,
        _ORCH,
    ),
    (
        "OC-METRICS-7102",
        _M,
        _OR,
        "Label cardinality budgets documented and enforced.",
        _SRC_MET,
        _ORCH,
    ),
    (
        "OC-METRICS-7110",
        _S,
        _OR,
        "SSE metrics frames carry additive planning fields on_time_probability, queue_depth, kv_warmth.",
        _SRC_MET,
        _ORCH,
    ),
    # -- minimal auth ------------------------------------------------------------------------------
    ("AUTH-1001", _M, _OR, "Accept one static Bearer token when configured.", _SRC_AUTH, _ORCH),
    (
        "AUTH-1002",
        _M,
        _OR,
        "Refuse to start on a non-loopback bind without a token.",
        _SRC_AUTH,
        _ORCH,
    ),
    ("AUTH-1003", _M, _OR, "Worker registration requires a valid token.", _SRC_AUTH, _WREG),
    (
        "AUTH-1004",
        _M,
        _OR,
        "AUTH_OPTIONAL=true lets loopback skip auth; others present the token.",
        _SRC_AUTH,
        _ORCH,
    ),
    ("AUTH-1005", _M, _OR, "No roles; a single privilege level.", _SRC_AUTH, _ORCH),
    (
        "AUTH-1006",
        _Y,
        _OR,
        "Proxy-injected Authorization may be trusted when TRUST_PROXY_AUTH=true.",
        _SRC_AUTH,
        _PROXY,
    ),
    ("AUTH-1007", _M, _OR, "Token comparison is timing-safe.", _SRC_AUTH, _ORCH),
    (
        "AUTH-1008",
        _M,
        _OR,
        "Logs say identity=localhost or identity=token:<fp6>, never the full token.",
        _SRC_AUTH,
        _ORCH,
    ),
    # -- proof bundles -----------------------------------------------------------------------------
    (
        "PB-1001",
        _M,
        _HA,
        "Bundles live under <base>/<type>/<run_id>/ with fixed type directory names.",
        _SRC_PB,
        _PB,
    ),
    (
        "PB-1002",
        _M,
        _HA,
        "Honour LLORCH_RUN_ID; else a timestamp-sha id; never fail without git.",
        _SRC_PB,
        _PB,
    ),
    ("PB-1003", _M, _HA, "LLORCH_PROOF_DIR overrides the base directory.", _SRC_PB, _PB),
    (
        "PB-1004",
        _M,
        _HA,
        "Streams as NDJSON, configs as pretty JSON, summaries as Markdown, timings as CSV.",
        _SRC_PB,
        _PB,
    ),
    (
        "PB-1005",
        _M,
        _HA,
        "Writer API: for_type, root, ensure_dir, append_ndjson, write_json, write_markdown, seeds().record.",
        _SRC_PB,
        _PB,
    ),
    (
        "PB-1006",
        _M,
        _HA,
        "Parents created; NDJSON appends with trailing newline; JSON/Markdown overwrite.",
        _SRC_PB,
        _PB,
    ),
    (
        "PB-1007",
        _M,
        _HA,
        "The writer does no redaction; callers redact before writing.",
        _SRC_PB,
        _PB,
    ),
    ("PB-1008", _M, _HA, "Errors are results, never crashes on normal IO.", _SRC_PB, _PB),
    ("PB-1009", _Y, _HA, "No multi-writer atomicity is promised.", _SRC_PB, _PB),
    (
        "PB-1010",
        _M,
        _HA,
        "Fixed test-type map (unit, integration, contract, bdd, determinism, home-profile-smoke, e2e-haiku).",
        _SRC_PB,
        _PB,
    ),
    ("PB-1011", _M, _HA, "Linux paths.", _SRC_PB, _PB),
    (
        "PB-1012",
        _M,
        _HA,
        "Autogenerated markers on every artifact (header line, NDJSON meta record, .json.meta sibling).",
        _SRC_PB,
        _PB,
    ),
    # -- rbee worker contract (IDs assigned here) ---------------------------------------------------
    ("WKR-1001", _M, _WK, 'GET /health answers 200 text/plain "ok".', _SRC_WKR, _WKRP),
    (
        "WKR-1002",
        _M,
        _WK,
        "GET /info answers WorkerInfo{id, model_id, device, port, status, implementation, version}, all required.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1003",
        _M,
        _WK,
        "POST /v1/infer (stream false) answers InferResponse{text, tokens_generated, duration_ms}.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1004",
        _M,
        _WK,
        'POST /v1/infer with stream true answers SSE data: {"token": ...} frames then data: [DONE].',
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1005",
        _M,
        _WK,
        "Bad requests answer 400 and busy/not-ready 503, both with Error{error}.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1006",
        _M,
        _WK,
        "InferRequest limits: prompt required, max_tokens 1..4096, temperature 0.0..2.0, stream default false.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1007",
        _M,
        _WK,
        "A heartbeat WorkerHeartbeat{worker, timestamp RFC3339 UTC} is POSTed to the queen's /v1/worker-heartbeat every 30 s.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1008",
        _M,
        _WK,
        "After 90 s without a heartbeat (strictly older than the timeout) the queen marks the worker unavailable.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1009",
        _M,
        _WK,
        "Status follows starting → ready → busy → ready and stopped on graceful shutdown; wire values are lowercase.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1010",
        _M,
        _WK,
        "A worker is available for routing exactly when its status is ready or busy.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1011",
        _S,
        _WK,
        "An oversized request body is refused with 400 (or 413) and an Error{error} body; the worker keeps serving.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1012",
        _M,
        _WK,
        "While the queen is unreachable the worker keeps serving and retries heartbeats with capped jittered backoff; it is registered again once the queen is back.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1013",
        _M,
        _WK,
        "A graceful shutdown (SIGTERM or stop) reports stopping, refuses new inference with 503 and sends a final heartbeat with status stopped.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1014",
        _M,
        _WK,
        "The queen acknowledges a heartbeat with HeartbeatAck{status ok|error, message}; an invalid heartbeat gets error and is not registered.",
        _SRC_WKR,
        _WKRP,
    ),
    (
        "WKR-1015",
        _S,
        _WK,
        'An inference failure before the first token is an HTTP error (400/503/500 with Error{error}); after it, one data: {"error", "code", "retriable"} frame and no data: [DONE].',
        _SRC_WKR,
        _WKRP,
    ),
)

CATALOGUE: tuple[Requirement, ...] = tuple(
    Requirement(rid, level, layer, text, source, pending)
    for rid, level, layer, text, source, pending in _ROWS
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
