"""Drift check: the same probe set against a real engine and its mock, compared field by field.

Mocks drift from the engines they copy. This module sends the *same* requests to a live engine
(llama.cpp ``llama-server``, vLLM's OpenAI server, Triton with an LLM model) and to a fresh mock
of that dialect in its default profile, configured like the deployment it stands in for (the
real engine's model name and context size, discovered first — see :func:`discover`). Both
sides are recorded as cassette exchanges (:mod:`mock_engines._cassette`), so the evidence is
replayable, and then compared on what an adapter could notice.

Grading rules (one finding per difference, each with the probe label and a field path):

**critical** — an adapter built against the mock would break on the real engine:

* the HTTP **status** differs, or the response **media type** differs (``application/json``
  vs ``text/plain`` vs ``text/event-stream``);
* the body **kind** differs (JSON vs SSE vs text vs empty);
* **SSE framing**: the ``data:`` prefix style, the kind of the last frame (``[DONE]``, an
  error frame, a final frame, or none), or a whole frame role (``done``, ``error``, ``final``,
  unparsable frames) present on one side only;
* the **error envelope identity**: ``error.type`` or ``error.code`` values differ (adapters map
  those to their error classes);
* the **number of results**: other choice indices (``n``) or another number of prompt results
  (prompt lists) — a parameter the engine honours and the mock ignores shows up here;
* a key the real engine sends is **missing** in the mock, or has another JSON **type**, on a
  path adapters read (:data:`CRITICAL_PATHS`);
* the mock's **metrics exposition is invalid** (``prometheus_client``'s parser refuses it, or a
  histogram lacks its ``_bucket`` series / ``+Inf`` bucket) while the real one is valid;
* a transport error on either side; slots still busy after a client disconnect.

**major** — visible, but only to code that reads beyond the common paths:

* a key the real engine sends is **missing** in the mock, or has another JSON type, elsewhere;
* a metrics **family** of the real engine is missing in the mock or has another type;
* the ``Server`` header present on one side only; behaviours measured over several requests
  (token-count steps, connection close after a stream);
* a frame role other than the critical ones (e.g. the role delta) on one side only.

**minor** — the mock says more than the engine, or says it slightly differently:

* a key **only the mock** sends (extra keys); a metrics family only the mock has;
* the same media type with other parameters (``charset``).

**info** — context, never a failure: ``null`` against a value (values depend on the model),
probes recorded on one side only, the real engine's own invalid exposition, token frames that
one side coalesced into its final frame (chunking depends on timing, never on the wire format).

``run_drift`` exits the CLI with 1 when any critical finding exists. Every report names both
engine versions (the real engine's ``build_info``, ``/version`` or ``/v2`` version and the
mock's) and the deployment the mock imitated.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from llorch_conformance.mock_engines import Cassette, Exchange, record_exchange

__all__ = [
    "CRITICAL_PATHS",
    "DRIFT_DIALECTS",
    "SEVERITIES",
    "Deployment",
    "DriftItem",
    "DriftReport",
    "Probe",
    "check_exposition",
    "compare_cassettes",
    "discover",
    "drift_ok",
    "probe_engine",
    "probe_llamacpp",
    "probe_mock",
    "probes_for",
    "run_drift",
]

SEVERITIES = ("critical", "major", "minor", "info")
#: Dialects with a real engine to hold their mock against.
DRIFT_DIALECTS = ("llamacpp", "vllm", "triton")

#: Paths an adapter (ours or a vendor's) reads; drift there breaks adapters.
CRITICAL_PATHS = frozenset(
    {
        "status",
        "content",
        "stop",
        "tokens_predicted",
        "tokens_evaluated",
        "stop_type",
        "stopping_word",
        "timings",
        "timings.predicted_n",
        "timings.predicted_ms",
        "timings.prompt_n",
        "id_slot",
        "error",
        "error.code",
        "error.message",
        "error.type",
        "total_slots",
        "build_info",
        "default_generation_settings",
        "default_generation_settings.n_ctx",
        "[].id",
        "[].is_processing",
        "[].n_ctx",
        "choices",
        "choices[].delta",
        "choices[].delta.content",
        "choices[].delta.role",
        "choices[].finish_reason",
        "choices[].index",
        "choices[].text",
        "choices[].message.content",
        "usage",
        "usage.completion_tokens",
        "usage.prompt_tokens",
        "usage.total_tokens",
        "object",
        "model",
        "data",
        "data[].id",
        "version",
        "text_output",
        "model_name",
        "finish_reason",
        "num_output_tokens",
        "detail",
    }
)


@dataclass(frozen=True, slots=True)
class DriftItem:
    probe: str
    path: str
    severity: str
    kind: str  # status | media_type | framing | missing_in_mock | extra_in_mock | type | value | metrics
    real: Any = None
    mock: Any = None
    note: str = ""


@dataclass(slots=True)
class DriftReport:
    real_version: str
    mock_version: str
    items: list[DriftItem] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    dialect: str = "llamacpp"
    deployment: dict[str, Any] = field(default_factory=dict)

    def by_severity(self, severity: str) -> list[DriftItem]:
        return [i for i in self.items if i.severity == severity]

    @property
    def critical(self) -> list[DriftItem]:
        return self.by_severity("critical")

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_severity(s)) for s in SEVERITIES}

    def probes_agreeing(self) -> int:
        """Probes without any critical or major finding."""
        bad = {i.probe for i in self.items if i.severity in ("critical", "major")}
        return sum(1 for p in self.probes if p not in bad)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "real_version": self.real_version,
            "mock_version": self.mock_version,
            "deployment": self.deployment,
            "probes": self.probes,
            "probes_agreeing": self.probes_agreeing(),
            "counts": self.counts(),
            "items": [asdict(i) for i in self.items],
        }

    def to_markdown(self) -> str:
        c = self.counts()
        dep = ", ".join(f"{k}={v}" for k, v in self.deployment.items() if v is not None)
        lines = [
            f"# Drift report: {self.dialect} mock vs the real engine",
            "",
            f"- real engine: `{self.real_version}`",
            f"- mock engine: `{self.mock_version}`" + (f" (imitating {dep})" if dep else ""),
            f"- probes: {len(self.probes)}, agreeing (no critical/major finding): "
            f"{self.probes_agreeing()} ({', '.join(self.probes)})",
            "- findings: " + ", ".join(f"{c[s]} {s}" for s in SEVERITIES),
            "",
            "| severity | probe | field path | kind | real | mock | note |",
            "|---|---|---|---|---|---|---|",
        ]
        order = {s: i for i, s in enumerate(SEVERITIES)}
        for i in sorted(self.items, key=lambda x: (order[x.severity], x.probe, x.path)):
            lines.append(
                f"| {i.severity} | {i.probe} | `{i.path}` | {i.kind} | {_cell(i.real)} | "
                f"{_cell(i.mock)} | {i.note} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        j = d / "drift-report.json"
        m = d / "drift-report.md"
        j.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", "utf-8")
        m.write_text(self.to_markdown(), "utf-8")
        return j, m


def _cell(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False) if v is not None else ""
    s = s.replace("|", "\\|")
    return s if len(s) <= 60 else s[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Deployments and probe sets
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Deployment:
    """What the mock must imitate: the real engine's model name, context size and switches."""

    dialect: str
    model: str | None = None
    ctx_size: int | None = None
    metrics: bool = True
    version: str = ""
    #: Triton: a model of the deployment that fails mid-stream (the "error inside a 200 stream"
    #: case), e.g. ``tiny_fails`` of ``conformance.real.write_triton_repo``; discovered as
    #: ``<model>_fails`` when the repository has one.
    fail_model: str | None = None
    #: llama.cpp: ``total_slots`` (``--parallel``); the mock gets as many.
    slots: int | None = None

    @classmethod
    def from_notes(cls, cassette: Cassette) -> Deployment:
        """The deployment a recording was made against (its ``notes["deployment"]``)."""
        d = cassette.notes.get("deployment")
        d = d if isinstance(d, dict) else {}

        def opt_int(key: str) -> int | None:
            v = d.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        def opt_str(key: str) -> str | None:
            v = d.get(key)
            return v if isinstance(v, str) else None

        return cls(
            cassette.dialect,
            model=opt_str("model"),
            ctx_size=opt_int("ctx_size"),
            metrics=d.get("metrics", True) is not False,
            version=cassette.engine_version,
            fail_model=opt_str("fail_model"),
            slots=opt_int("slots"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ctx_size": self.ctx_size,
            "metrics": self.metrics,
            "fail_model": self.fail_model,
            "slots": self.slots,
        }


@dataclass(frozen=True, slots=True)
class Probe:
    """One request of a probe set.

    ``raw`` is sent as is (bad JSON); ``body`` as JSON. ``mock_faults`` are switched on for the
    mock only, to reproduce an engine-internal failure the real deployment is asked for through
    the request itself (Triton's test model fails mid-stream on ``fail_after``).
    """

    label: str
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    mock_faults: tuple[str, ...] = ()
    disconnect_after_chunks: int | None = None
    real_path: str | None = None  # where the real engine is asked instead (its failing model)
    #: Drift only, not ``record``: a recording feeds the replay's fallback matching (same
    #: route and stream flag), where error answers, one-token streams and prompt-list arrays
    #: would stand in for an adapter's ordinary requests.
    drift_only: bool = False


def _long_text(ctx: int, *, chars: bool) -> str:
    """A prompt longer than ``ctx`` tokens on any tokenizer that keeps `` word`` pieces whole.

    ``chars=True`` also exceeds vLLM's character pre-check (7 characters per token of context);
    otherwise the prompt is short in characters and only the token count is over the limit.
    """
    if chars:
        return " ".join(["hello"] * (ctx * 2 + 16))
    return " ".join(["a"] * (ctx + 8))


_TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
}


def _llamacpp_probes(dep: Deployment) -> list[Probe]:
    ctx = dep.ctx_size or 4096
    gen = {"prompt": "Hello world", "n_predict": 32, "seed": 42, "temperature": 0}
    chat = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 8,
        "seed": 42,
        "temperature": 0,
    }
    return [
        Probe("health", "GET", "/health"),
        Probe("props", "GET", "/props"),
        Probe("metrics", "GET", "/metrics"),
        Probe("models", "GET", "/v1/models"),
        Probe("completion", "POST", "/completion", dict(gen, stream=False)),
        Probe("completion.stream", "POST", "/completion", dict(gen, stream=True)),
        # after a generation: a slot that had a task shows it (fresh slots show four keys)
        Probe("slots", "GET", "/slots"),
        Probe(
            "completion.n_predict_0", "POST", "/completion", dict(gen, n_predict=0), drift_only=True
        ),
        Probe(
            "completion.n_predict_0.stream",
            "POST",
            "/completion",
            dict(gen, n_predict=0, stream=True),
            drift_only=True,
        ),
        Probe(
            "err.prompt_too_long",
            "POST",
            "/completion",
            {"prompt": _long_text(ctx, chars=True), "n_predict": 4},
            drift_only=True,
        ),
        Probe(
            "err.prompt_too_long.stream",
            "POST",
            "/completion",
            {"prompt": _long_text(ctx, chars=True), "n_predict": 4, "stream": True},
            drift_only=True,
        ),
        Probe(
            "completion.token_ids",
            "POST",
            "/completion",
            dict(gen, prompt=[1, 2, 3], n_predict=4),
            drift_only=True,
        ),
        Probe(
            "completion.prompt_list",
            "POST",
            "/completion",
            dict(gen, prompt=["Hello", "World"], n_predict=4),
            drift_only=True,
        ),
        Probe(
            "completion.n_probs",
            "POST",
            "/completion",
            dict(gen, n_predict=3, n_probs=2),
            drift_only=True,
        ),
        Probe("tokenize", "POST", "/tokenize", {"content": "Hello world"}, drift_only=True),
        Probe("bad.missing_prompt", "POST", "/completion", {"n_predict": 4}),
        Probe("bad.method", "GET", "/completion", drift_only=True),
        Probe(
            "bad.json",
            "POST",
            "/completion",
            raw=b'{"prompt": "x",',
            headers=(("content-type", "application/json"),),
        ),
        Probe("bad.route", "GET", "/no-such-route"),
        Probe("oai.chat", "POST", "/v1/chat/completions", chat),
        Probe(
            "oai.chat.stream",
            "POST",
            "/v1/chat/completions",
            dict(chat, stream=True, stream_options={"include_usage": True}),
        ),
        Probe(
            "oai.completions.stream",
            "POST",
            "/v1/completions",
            {"prompt": "Hello", "max_tokens": 6, "seed": 1, "stream": True},
        ),
        Probe("oai.chat.bad", "POST", "/v1/chat/completions", {"max_tokens": 2}),
        Probe(
            "oai.completions",
            "POST",
            "/v1/completions",
            {"prompt": "Hello", "max_tokens": 4},
            drift_only=True,
        ),
        Probe("oai.chat.n2", "POST", "/v1/chat/completions", dict(chat, n=2), drift_only=True),
        Probe(
            "oai.chat.logprobs",
            "POST",
            "/v1/chat/completions",
            dict(chat, logprobs=True, top_logprobs=2),
            drift_only=True,
        ),
        Probe(
            "oai.completions.echo",
            "POST",
            "/v1/completions",
            {"prompt": "Hello", "max_tokens": 4, "echo": True},
            drift_only=True,
        ),
        Probe(
            "oai.chat.negative_temperature",
            "POST",
            "/v1/chat/completions",
            dict(chat, temperature=-1),
            drift_only=True,
        ),
        Probe(
            "oai.chat.max_tokens_0",
            "POST",
            "/v1/chat/completions",
            dict(chat, max_tokens=0),
            drift_only=True,
        ),
        Probe(
            "oai.chat.prompt_too_long.stream",
            "POST",
            "/v1/chat/completions",
            dict(
                chat,
                messages=[{"role": "user", "content": _long_text(ctx, chars=True)}],
                stream=True,
            ),
            drift_only=True,
        ),
        Probe(
            "oai.chat.prompt_too_long",
            "POST",
            "/v1/chat/completions",
            dict(chat, messages=[{"role": "user", "content": _long_text(ctx, chars=True)}]),
            drift_only=True,
        ),
        Probe(
            "cancel.stream",
            "POST",
            "/completion",
            dict(gen, n_predict=100, stream=True),
            disconnect_after_chunks=1,
        ),
    ]


def _vllm_probes(dep: Deployment) -> list[Probe]:
    ctx = dep.ctx_size or 4096
    m = dep.model or "model"
    msgs = [{"role": "user", "content": "Hi"}]
    chat = {"model": m, "messages": msgs, "max_tokens": 4, "temperature": 0}
    cmpl = {"model": m, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    usage = {"stream": True, "stream_options": {"include_usage": True}}
    c, cc = "/v1/completions", "/v1/chat/completions"
    return [
        Probe("health", "GET", "/health"),
        Probe("ping", "GET", "/ping"),
        Probe("version", "GET", "/version"),
        Probe("models", "GET", "/v1/models"),
        Probe("load", "GET", "/load"),
        Probe("metrics", "GET", "/metrics"),
        Probe("tokenize", "POST", "/tokenize", {"model": m, "prompt": "hello world"}),
        Probe("detokenize", "POST", "/detokenize", {"model": m, "tokens": [5, 6]}),
        Probe("chat", "POST", cc, chat),
        Probe("chat.stream", "POST", cc, dict(chat, **usage)),
        Probe("chat.stream.no_usage", "POST", cc, dict(chat, stream=True)),
        Probe("chat.n2", "POST", cc, dict(chat, n=2, temperature=1.0, seed=3)),
        Probe("chat.logprobs", "POST", cc, dict(chat, logprobs=True, top_logprobs=2)),
        Probe("chat.stop_list", "POST", cc, dict(chat, stop=["\n", "zz"])),
        Probe(
            "chat.echo.stream",
            "POST",
            cc,
            dict(
                chat,
                messages=[*msgs, {"role": "assistant", "content": "Sure:"}],
                echo=True,
                stream=True,
            ),
        ),
        Probe("completions", "POST", c, cmpl),
        Probe("completions.stream", "POST", c, dict(cmpl, **usage)),
        Probe("completions.prompt_list", "POST", c, dict(cmpl, prompt=["Hello", "World"])),
        Probe("completions.token_ids", "POST", c, dict(cmpl, prompt=[5, 6, 7])),
        Probe("completions.token_id_lists", "POST", c, dict(cmpl, prompt=[[5, 6], [7, 8]])),
        Probe("completions.n2", "POST", c, dict(cmpl, n=2, temperature=1.0, seed=3)),
        Probe(
            "completions.n2.stream", "POST", c, dict(cmpl, n=2, temperature=1.0, seed=3, **usage)
        ),
        Probe("completions.logprobs", "POST", c, dict(cmpl, logprobs=2)),
        Probe("completions.echo", "POST", c, dict(cmpl, echo=True)),
        Probe("completions.stop_list", "POST", c, dict(cmpl, stop=["\n", "zz"])),
        Probe("err.prompt_too_long", "POST", c, dict(cmpl, prompt=_long_text(ctx, chars=True))),
        Probe(
            "err.prompt_too_many_tokens", "POST", c, dict(cmpl, prompt=_long_text(ctx, chars=False))
        ),
        Probe(
            "err.prompt_too_long.chat.stream",
            "POST",
            cc,
            dict(
                chat,
                messages=[{"role": "user", "content": _long_text(ctx, chars=True)}],
                stream=True,
            ),
        ),
        Probe("err.max_tokens_beyond_ctx", "POST", c, dict(cmpl, max_tokens=ctx + 1)),
        Probe(
            "err.max_tokens_beyond_ctx.stream",
            "POST",
            cc,
            dict(chat, max_tokens=ctx + 1, stream=True),
        ),
        Probe("err.max_tokens_0", "POST", c, dict(cmpl, max_tokens=0)),
        Probe("err.n_0", "POST", c, dict(cmpl, n=0)),
        Probe("err.empty_prompt_list", "POST", c, dict(cmpl, prompt=[])),
        Probe("err.negative_temperature", "POST", cc, dict(chat, temperature=-1)),
        Probe("err.empty_messages", "POST", cc, dict(chat, messages=[])),
        Probe("err.tool_choice_auto", "POST", cc, dict(chat, tools=[_TOOL], tool_choice="auto")),
        Probe(
            "err.tool_choice_named",
            "POST",
            cc,
            dict(chat, tools=[_TOOL], tool_choice={"type": "function", "function": {"name": "f"}}),
        ),
        Probe("err.missing_prompt", "POST", c, {"model": m, "max_tokens": 2}),
        Probe("err.missing_messages", "POST", cc, {"model": m, "max_tokens": 2}),
        Probe(
            "err.bad_json",
            "POST",
            c,
            raw=b'{"model":',
            headers=(("content-type", "application/json"),),
        ),
        Probe("err.wrong_type", "POST", c, dict(cmpl, max_tokens="x")),
        Probe("err.unknown_model", "POST", c, dict(cmpl, model="no-such-model")),
        Probe(
            "err.unknown_model.stream", "POST", cc, dict(chat, model="no-such-model", stream=True)
        ),
        Probe(
            "err.stream_options_without_stream",
            "POST",
            c,
            dict(cmpl, stream_options={"include_usage": True}),
        ),
        Probe("err.unknown_route", "GET", "/no-such-route"),
        Probe("err.wrong_method", "GET", cc),
    ]


def _triton_probes(dep: Deployment) -> list[Probe]:
    m = dep.model or "llm"
    base = f"/v2/models/{m}"
    gen = {"text_input": "Hello", "exclude_input_in_output": True, "parameters": {"max_tokens": 4}}
    stream = {
        "text_input": "Hello",
        "stream": True,
        "exclude_input_in_output": True,
        "parameters": {"max_tokens": 4},
    }
    # Without a failing model, ask the model itself (a test model may honour ``fail_after``).
    fail_param = {"max_tokens": 8, "fail_after": 1}
    ret = {"return_finish_reason": True, "return_num_input_tokens": True}
    ret["return_num_output_tokens"] = True
    js = (("content-type", "application/json"),)
    return [
        Probe("live", "GET", "/v2/health/live"),
        Probe("ready", "GET", "/v2/health/ready"),
        Probe("server_metadata", "GET", "/v2"),
        Probe("model_metadata", "GET", base),
        Probe("model_metadata.version", "GET", f"{base}/versions/1"),
        Probe("model_ready", "GET", f"{base}/ready"),
        Probe("repository_index", "POST", "/v2/repository/index"),
        Probe("generate", "POST", f"{base}/generate", gen),
        Probe(
            "generate.prompt_prepended",
            "POST",
            f"{base}/generate",
            dict(gen, exclude_input_in_output=False),
        ),
        Probe("generate.outputs", "POST", f"{base}/generate", dict(gen, **ret)),
        Probe("generate.on_stream_request", "POST", f"{base}/generate", stream),
        Probe("generate_stream", "POST", f"{base}/generate_stream", stream),
        Probe("generate_stream.outputs", "POST", f"{base}/generate_stream", dict(stream, **ret)),
        Probe(
            "err.stream.first_response",
            "POST",
            f"{base}/generate_stream",
            dict(stream, exclude_input_in_output=False),
        ),
        Probe(
            "err.stream.mid_stream",
            "POST",
            f"{base}/generate_stream",
            dict(stream, parameters={"max_tokens": 8} if dep.fail_model else fail_param),
            mock_faults=("stream.error_event;after_events=1;message=injected failure",),
            real_path=(f"/v2/models/{dep.fail_model}/generate_stream" if dep.fail_model else None),
        ),
        Probe("err.unknown_model.metadata", "GET", "/v2/models/no-such-model"),
        Probe("err.unknown_model.ready", "GET", "/v2/models/no-such-model/ready"),
        Probe("err.unknown_version.metadata", "GET", f"{base}/versions/9"),
        Probe("err.unknown_model.generate", "POST", "/v2/models/no-such-model/generate", gen),
        Probe(
            "err.unknown_model.generate_stream",
            "POST",
            "/v2/models/no-such-model/generate_stream",
            stream,
        ),
        Probe("err.bad_json", "POST", f"{base}/generate", raw=b'{"text_input":', headers=js),
        Probe("err.wrong_type", "POST", f"{base}/generate", dict(gen, text_input=5)),
        Probe(
            "err.parameter_array",
            "POST",
            f"{base}/generate",
            dict(gen, parameters={"stop": ["a"]}),
        ),
        Probe(
            "err.missing_text_input", "POST", f"{base}/generate", {"parameters": {"max_tokens": 2}}
        ),
        Probe("err.infer_decoupled", "POST", f"{base}/infer", {"inputs": []}),
        Probe("err.unknown_route", "GET", "/no-such-route"),
        Probe("err.wrong_method", "POST", "/v2/health/ready"),
        Probe("err.wrong_method.model", "GET", f"{base}/generate"),
        Probe("err.metrics_on_http_port", "GET", "/metrics"),
    ]


def probes_for(dep: Deployment) -> list[Probe]:
    """The probe set of a dialect, filled in for one deployment."""
    return {"llamacpp": _llamacpp_probes, "vllm": _vllm_probes, "triton": _triton_probes}[
        dep.dialect
    ](dep)


def _client(base_url: str, timeout: float) -> httpx.AsyncClient:
    # identity: compare the bytes the engine writes (Triton gzips when the client accepts it).
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        limits=httpx.Limits(max_connections=8),
        trust_env=False,
        headers={"accept-encoding": "identity"},
    )


async def _get_json(c: httpx.AsyncClient, method: str, path: str) -> Any:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = await c.request(method, path)
        if r.status_code == 200:
            return r.json()
    return None


async def discover(
    dialect: str, base_url: str, *, model: str | None = None, request_timeout: float = 30.0
) -> Deployment:
    """Ask a running engine what it serves: model name, context size, version, switches."""
    dep = Deployment(dialect, model=model)
    async with _client(base_url, request_timeout) as c:
        if dialect == "llamacpp":
            props = await _get_json(c, "GET", "/props")
            if isinstance(props, dict):
                dep.version = str(props.get("build_info", ""))
                dgs = props.get("default_generation_settings")
                if isinstance(dgs, dict) and isinstance(dgs.get("n_ctx"), int):
                    dep.ctx_size = dgs["n_ctx"]
                dep.metrics = props.get("endpoint_metrics", True) is not False
                if isinstance(props.get("total_slots"), int) and props["total_slots"] > 0:
                    dep.slots = props["total_slots"]
        elif dialect == "vllm":
            ver = await _get_json(c, "GET", "/version")
            if isinstance(ver, dict):
                dep.version = f"vllm {ver.get('version', '')}"
            models = await _get_json(c, "GET", "/v1/models")
            data = models.get("data") if isinstance(models, dict) else None
            if isinstance(data, list) and data and isinstance(data[0], dict):
                dep.model = dep.model or str(data[0].get("id"))
                mml = data[0].get("max_model_len")
                dep.ctx_size = mml if isinstance(mml, int) else None
        elif dialect == "triton":
            meta = await _get_json(c, "GET", "/v2")
            if isinstance(meta, dict):
                dep.version = f"triton {meta.get('version', '')}"
            index = await _get_json(c, "POST", "/v2/repository/index")
            if isinstance(index, list):
                ready = [
                    str(e.get("name"))
                    for e in index
                    if isinstance(e, dict) and e.get("state") == "READY"
                ]
                if dep.model is None and ready:
                    dep.model = next((n for n in ready if not n.endswith("_fails")), ready[0])
                if dep.fail_model is None and f"{dep.model}_fails" in ready:
                    dep.fail_model = f"{dep.model}_fails"
    return dep


async def probe_engine(
    dep: Deployment,
    base_url: str,
    *,
    set_faults: Callable[[list[str]], None] | None = None,
    loading: Callable[[], Awaitable[Exchange | None]] | None = None,
    request_timeout: float = 30.0,
    drift: bool = True,
) -> Cassette:
    """Run the dialect's probe set against an engine and return it as a cassette.

    ``drift=False`` leaves out the ``drift_only`` probes (what ``record`` sends).

    ``set_faults`` is given for a mock only (it switches each probe's ``mock_faults``).
    ``loading`` produces the llama.cpp "health while loading" exchange.
    """
    cas = Cassette(dialect=dep.dialect, engine_url=base_url)
    cas.engine_version = dep.version
    cas.notes["deployment"] = dep.to_dict()
    async with _client(base_url, request_timeout) as c:
        if loading is not None:
            ex = await loading()
            if ex is not None:
                ex.label = "health.loading"
                cas.exchanges.append(ex)
        for p in probes_for(dep):
            if p.drift_only and not drift:
                continue
            if p.mock_faults:
                cas.notes.setdefault("fault_probes", []).append(p.label)
            if set_faults is not None and p.mock_faults:
                set_faults(list(p.mock_faults))
            path = p.real_path if set_faults is None and p.real_path else p.path
            try:
                for attempt in range(2):
                    rec = await record_exchange(
                        c,
                        p.method,
                        path,
                        json_body=p.body,
                        content=p.raw,
                        headers=dict(p.headers) or None,
                        label=p.label,
                        disconnect_after_chunks=p.disconnect_after_chunks,
                    )
                    # A pooled connection the server closed just before reuse (llama-server
                    # closes after a stream; any server after its keep-alive idle time) fails
                    # before a status line: that is the pool's race, not the engine's answer.
                    # Once more on a fresh connection; a second failure is recorded.
                    if rec.error is None or rec.status != 0 or attempt:
                        break
            finally:
                if set_faults is not None and p.mock_faults:
                    set_faults([])
            cas.exchanges.append(rec)
            if p.label == "cancel.stream":
                await _slots_after_cancel(c, cas)
        if dep.dialect == "llamacpp":
            cas.exchanges.append(await record_exchange(c, "GET", "/health", label="health.after"))
    if dep.dialect == "llamacpp":
        # The real server's close is intermittent (it raced ~1 request in 4 in
        # bench_real_engine): try a few streams and report whether any connection was closed.
        seen = [await _closes_after_stream(base_url) for _ in range(5)]
        cas.notes["closes_after_stream"] = (
            None if all(x is None for x in seen) else any(x is True for x in seen)
        )
    return cas


async def _slots_after_cancel(c: httpx.AsyncClient, cas: Cassette) -> None:
    """After the disconnect every slot must become idle again (bounded wait)."""
    idle = False
    last: Exchange | None = None
    with anyio.move_on_after(10.0):
        while True:
            last = await record_exchange(c, "GET", "/slots", label="cancel.slots_after")
            if last.status != 200:
                break
            slots = json.loads(last.body)
            if isinstance(slots, list) and not any(s.get("is_processing") for s in slots):
                idle = True
                break
            await anyio.sleep(0.02)  # polling the engine: it offers no event to wait on
    if last is not None:
        cas.exchanges.append(last)
    cas.notes["cancel_slots_idle"] = idle


async def probe_llamacpp(
    base_url: str,
    *,
    loading: Callable[[], Awaitable[Exchange | None]] | None = None,
    request_timeout: float = 30.0,
    drift: bool = True,
) -> Cassette:
    """The llama.cpp probe set against ``base_url`` (deployment discovered from ``/props``).

    ``drift=False``: only the probes a replayable recording should hold (``record``).
    """
    dep = await discover("llamacpp", base_url, request_timeout=request_timeout)
    return await probe_engine(
        dep, base_url, loading=loading, request_timeout=request_timeout, drift=drift
    )


async def probe_mock(
    dep: Deployment, *, loading: bool = False, request_timeout: float = 30.0
) -> Cassette:
    """The probe set against a fresh mock of ``dep.dialect`` configured like ``dep``.

    ``loading=True`` (llama.cpp) records the mock's answer while loading (``engine.loading``).
    """
    from dataclasses import replace

    from llorch_conformance.mock_engines import load_profile, run_mock_engine

    profile = load_profile("fast")
    if dep.slots is not None:
        profile = replace(profile, slots=dep.slots)
    async with run_mock_engine(
        dep.dialect,
        seed=42,
        model=dep.model,
        ctx_size=dep.ctx_size,
        metrics=dep.metrics,
        profile=profile,
    ) as eng:

        async def load_probe() -> Exchange | None:
            eng.set_faults(["engine.loading"])
            try:
                async with _client(eng.base_url, 10.0) as c:
                    return await record_exchange(c, "GET", "/health")
            finally:
                eng.set_faults([])

        mdep = Deployment(
            dep.dialect,
            dep.model,
            dep.ctx_size,
            dep.metrics,
            version=eng.engine_version,
            fail_model=dep.fail_model,
            slots=dep.slots,
        )
        return await probe_engine(
            mdep,
            eng.base_url,
            set_faults=eng.set_faults,
            loading=load_probe if loading else None,
            request_timeout=request_timeout,
        )


async def _closes_after_stream(base_url: str) -> bool | None:
    """Does the engine close a keep-alive connection right after a streamed response?

    Raw socket, one streamed ``/completion``; right after the chunked terminator the same
    connection is reused for ``GET /health``. True when that reuse gets no HTTP answer (closed
    or reset). ``None`` when the probe itself could not run.
    """
    host, _, port = base_url.removeprefix("http://").partition(":")
    body = json.dumps(
        {"prompt": "Hello world", "n_predict": 32, "seed": 42, "temperature": 0, "stream": True}
    ).encode()
    req = (
        f"POST /completion HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        with anyio.fail_after(15.0):
            async with await anyio.connect_tcp(host, int(port.rstrip("/"))) as sock:
                await sock.send(req)
                data = b""
                while not data.endswith(b"0\r\n\r\n"):
                    data += await sock.receive()
                # Reuse the connection at once, as a pooled client does.
                try:
                    await sock.send(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                    with anyio.move_on_after(5.0):
                        reply = await sock.receive()
                        return not reply.startswith(b"HTTP/1.1 ")
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                    return True
                return True  # no answer on the reused connection within 5 s
    except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
        return None


async def run_drift(
    dialect: str,
    engine_url: str,
    *,
    model: str | None = None,
    request_timeout: float = 30.0,
) -> tuple[DriftReport, Cassette, Cassette]:
    """Discover the deployment, probe the real engine and a mock like it, and compare."""
    base = engine_url.rstrip("/")
    dep = await discover(dialect, base, model=model, request_timeout=request_timeout)
    real = await probe_engine(dep, base, request_timeout=request_timeout)
    mock = await probe_mock(dep, loading=False, request_timeout=request_timeout)
    return compare_cassettes(real, mock), real, mock


# ---------------------------------------------------------------------------------------------
# Metrics exposition
# ---------------------------------------------------------------------------------------------


def check_exposition(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse a Prometheus text exposition: ``({family: type}, [problems])``.

    Uses ``prometheus_client``'s parser (what a scraper built on it accepts), plus the rules it
    does not enforce: every histogram label set needs ``_bucket`` series ending in
    ``le="+Inf"`` (a histogram of only ``_count``/``_sum`` is not a histogram), and a family is
    declared once.
    """
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, str] = {}
    problems: list[str] = []
    try:
        parsed = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        return families, [f"unparsable exposition: {exc}"]
    for fam in parsed:
        if fam.name in families and fam.type != "unknown":
            problems.append(f"{fam.name}: family declared twice")
        families.setdefault(fam.name, fam.type)
        if fam.type != "histogram":
            continue
        inf: set[tuple[tuple[str, str], ...]] = set()
        series: set[tuple[tuple[str, str], ...]] = set()
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            if s.name.endswith("_bucket"):
                if s.labels.get("le") in ("+Inf", "Inf", "inf"):
                    inf.add(labels)
            else:
                series.add(labels)
        for labels in sorted(series - inf):
            where = ",".join(f"{k}={v}" for k, v in labels) or "no labels"
            problems.append(f"{fam.name}: histogram without buckets ({where})")
    return families, problems


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def _type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "array"
    return "object"


#: Objects whose keys are data, not schema (OpenAI completion logprobs: token -> logprob).
_MAP_PATHS = frozenset({"choices[].logprobs.top_logprobs[]"})


def _flatten(v: Any, prefix: str, out: dict[str, set[str]]) -> None:
    out.setdefault(prefix or "$", set()).add(_type(v))
    if isinstance(v, dict):
        for k, x in v.items():
            key = "*" if prefix in _MAP_PATHS else str(k)
            _flatten(x, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(v, list):
        for x in v:
            _flatten(x, f"{prefix}[]" if prefix else "[]", out)


@dataclass(slots=True)
class _Shape:
    kind: str  # json | sse | text | empty
    media_type: str
    prefix: str | None = None  # "data: " | "data:" for SSE
    terminal: str | None = None  # role of the last frame
    roles: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] | None = None  # family -> type, for an exposition body
    problems: list[str] = field(default_factory=list)


def _role(obj: Any) -> str:
    if not isinstance(obj, dict):
        return "other"
    if "error" in obj:
        return "error"
    if obj.get("stop") is True:
        return "final"
    ch = obj.get("choices")
    if isinstance(ch, list):
        if not ch:
            return "usage"
        c0 = ch[0] if isinstance(ch[0], dict) else {}
        if c0.get("finish_reason") is not None:
            return "final"
        d = c0.get("delta")
        if isinstance(d, dict) and "role" in d:
            return "role"
    return "partial"


def _note_indices(obj: Any, sh: _Shape) -> None:
    """Which choices (``choices[].index``) or prompt results (``index``) a body or stream carries.

    ``n``, prompt lists and token-id prompts change how many there are; an engine that honours
    them and a mock that silently ignores them agree on every key and differ only here.
    """
    items = obj if isinstance(obj, list) else [obj]
    for it in items:
        if not isinstance(it, dict):
            continue
        ch = it.get("choices")
        if isinstance(ch, list):
            idx = {c.get("index") for c in ch if isinstance(c, dict)}
            sh.values["choices"] = sorted(set(sh.values.get("choices") or ()) | idx, key=str)
        elif isinstance(it.get("index"), int) and "content" in it:
            old = set(sh.values.get("results.index") or ())
            sh.values["results.index"] = sorted(old | {it["index"]})


def _shape(ex: Exchange) -> _Shape:
    ct = (ex.header("content-type") or "").split(";")[0].strip().lower()
    body = ex.body
    if not body:
        return _Shape("empty", ct)
    if ct == "text/event-stream":
        sh = _Shape("sse", ct)
        text = body.replace(b"\r\n", b"\n")
        events = [e for e in text.split(b"\n\n") if e.strip()]
        for ev in events:
            for line in ev.split(b"\n"):
                if line.startswith(b":"):
                    role = "comment"
                    sh.roles.setdefault(role, {})
                    sh.terminal = role
                    continue
                if not line.startswith(b"data:"):
                    role = "field:" + line.split(b":", 1)[0].decode("latin-1")
                    sh.roles.setdefault(role, {})
                    sh.terminal = role
                    continue
                sh.prefix = sh.prefix or ("data: " if line.startswith(b"data: ") else "data:")
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    role = "done"
                    sh.roles.setdefault(role, {})
                else:
                    try:
                        obj = json.loads(payload)
                    except ValueError:
                        role = "invalid_json"
                        sh.roles.setdefault(role, {})
                    else:
                        role = _role(obj)
                        _flatten(obj, "", sh.roles.setdefault(role, {}))
                        _note_indices(obj, sh)
                        if role == "error" and isinstance(obj.get("error"), dict):
                            sh.values["error.type"] = obj["error"].get("type")
                            sh.values["error.code"] = obj["error"].get("code")
                sh.terminal = role
        return sh
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        sh = _Shape("text", ct)
        exposition = body.decode("utf-8", "replace")
        if ct.startswith("text/plain") and ("# TYPE " in exposition or "# HELP " in exposition):
            sh.metrics, sh.problems = check_exposition(exposition)
        return sh
    sh = _Shape("json", ct)
    _flatten(obj, "", sh.roles.setdefault("body", {}))
    if isinstance(obj, list) and obj and all(isinstance(x, dict) and "content" in x for x in obj):
        sh.values["results"] = len(obj)  # one result per prompt (llama.cpp prompt lists)
    _note_indices(obj, sh)
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        sh.values["error.type"] = obj["error"].get("type")
        sh.values["error.code"] = obj["error"].get("code")
    return sh


def _critical_path(path: str) -> bool:
    p = path
    for pre in ("body:", "partial:", "final:", "role:", "usage:", "error:"):
        if p.startswith(pre):
            p = p[len(pre) :]
    return p in CRITICAL_PATHS


def _compare_exchange(label: str, real: Exchange, mock: Exchange) -> list[DriftItem]:
    out: list[DriftItem] = []
    if real.status != mock.status:
        out.append(DriftItem(label, "status", "critical", "status", real.status, mock.status))
    rs, ms = _shape(real), _shape(mock)
    if rs.media_type != ms.media_type:
        out.append(
            DriftItem(label, "content-type", "critical", "media_type", rs.media_type, ms.media_type)
        )
    elif (real.header("content-type") or "") != (mock.header("content-type") or ""):
        out.append(
            DriftItem(
                label,
                "content-type",
                "minor",
                "media_type",
                real.header("content-type"),
                mock.header("content-type"),
            )
        )
    if (real.header("server") is None) != (mock.header("server") is None):
        out.append(
            DriftItem(
                label,
                "header:server",
                "major",
                "header",
                real.header("server"),
                mock.header("server"),
            )
        )
    if real.status != mock.status:
        # Another status is another resource (an error against a result): its key set says
        # nothing more. The status (and media type) findings above carry the drift.
        return out
    if real.disconnected or mock.disconnected:
        # What arrived before the client hung up depends on timing (the mock may flush the
        # whole stream in one write): only status and media type are comparable here; the
        # cancellation itself is judged by the slots afterwards.
        return out
    if rs.kind != ms.kind:
        out.append(DriftItem(label, "body", "critical", "framing", rs.kind, ms.kind))
        return out
    if rs.kind == "sse":
        if rs.prefix != ms.prefix:
            out.append(DriftItem(label, "sse.prefix", "critical", "framing", rs.prefix, ms.prefix))
        if rs.terminal != ms.terminal:
            out.append(
                DriftItem(label, "sse.last_frame", "critical", "framing", rs.terminal, ms.terminal)
            )
        for role in sorted(set(rs.roles) ^ set(ms.roles)):
            real_has = role in rs.roles
            sev = "critical" if role in ("done", "error", "final", "invalid_json") else "major"
            note = ""
            if role == "partial" and "final" in rs.roles and "final" in ms.roles:
                # Engines coalesce tokens when the API process falls behind (vLLM) or hold back
                # partial UTF-8: a short stream can come as its final frame alone.
                sev, note = "info", "token frames coalesced into the final frame"
            out.append(
                DriftItem(
                    label,
                    f"sse.frames[{role}]",
                    sev,
                    "framing",
                    "present" if real_has else "absent",
                    "absent" if real_has else "present",
                    note,
                )
            )
    if rs.metrics is not None or ms.metrics is not None:
        out.extend(_compare_metrics(label, rs, ms))
    for key in ("choices", "results", "results.index"):
        if rs.values.get(key) != ms.values.get(key):
            out.append(
                DriftItem(
                    label,
                    f"{key} (count)",
                    "critical",
                    "value",
                    rs.values.get(key),
                    ms.values.get(key),
                    "n, prompt lists and token-id prompts decide how many results come back",
                )
            )
    for key in ("error.type", "error.code"):
        if rs.values.get(key) != ms.values.get(key):
            out.append(
                DriftItem(label, key, "critical", "value", rs.values.get(key), ms.values.get(key))
            )
    for role in sorted(set(rs.roles) & set(ms.roles)):
        rp, mp = rs.roles[role], ms.roles[role]
        prefix = "" if role == "body" else f"{role}:"
        for path in sorted(set(rp) | set(mp)):
            name = prefix + path
            crit = _critical_path(name)
            if path not in mp:
                out.append(
                    DriftItem(
                        label,
                        name,
                        "critical" if crit else "major",
                        "missing_in_mock",
                        sorted(rp[path]),
                        None,
                    )
                )
            elif path not in rp:
                out.append(DriftItem(label, name, "minor", "extra_in_mock", None, sorted(mp[path])))
            else:
                rt, mt = rp[path] - {"null"}, mp[path] - {"null"}
                if rt and mt and rt != mt:
                    out.append(
                        DriftItem(
                            label,
                            name,
                            "critical" if crit else "major",
                            "type",
                            sorted(rp[path]),
                            sorted(mp[path]),
                        )
                    )
                elif rp[path] != mp[path]:
                    out.append(
                        DriftItem(
                            label,
                            name,
                            "info",
                            "type",
                            sorted(rp[path]),
                            sorted(mp[path]),
                            "null against a value (model-dependent)",
                        )
                    )
    return out


def _compare_metrics(label: str, rs: _Shape, ms: _Shape) -> list[DriftItem]:
    out: list[DriftItem] = []
    if ms.problems and not rs.problems:
        for p in ms.problems:
            out.append(DriftItem(label, "exposition", "critical", "metrics", "valid", p))
    elif rs.problems:
        for p in rs.problems:
            sev = "info" if p in ms.problems else "minor"
            out.append(
                DriftItem(label, "exposition", sev, "metrics", p, None, "the real engine's own")
            )
    rf, mf = rs.metrics or {}, ms.metrics or {}
    for name in sorted(set(rf) | set(mf)):
        if name not in mf:
            out.append(DriftItem(label, name, "major", "metrics", rf[name], None, "family missing"))
        elif name not in rf:
            out.append(DriftItem(label, name, "minor", "metrics", None, mf[name], "extra family"))
        elif rf[name] != mf[name]:
            out.append(DriftItem(label, name, "major", "metrics", rf[name], mf[name], "type"))
    return out


def _max_step(ex: Exchange | None) -> int | None:
    """Largest rise of ``tokens_predicted`` between consecutive partial frames of a stream."""
    if ex is None or not ex.complete:
        return None
    prev: int | None = None
    best = 0
    for ev in ex.body.split(b"\n\n"):
        if not ev.startswith(b"data: "):
            continue
        try:
            obj = json.loads(ev[6:])
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("stop") is not False:
            continue
        tp = obj.get("tokens_predicted")
        if isinstance(tp, int):
            if prev is not None:
                best = max(best, tp - prev)
            prev = tp
    return best


def compare_cassettes(real: Cassette, mock: Cassette) -> DriftReport:
    """Compare two probe recordings label by label."""
    rep = DriftReport(real.engine_version, mock.engine_version, dialect=real.dialect)
    dep = real.notes.get("deployment")
    if isinstance(dep, dict):
        rep.deployment = dict(dep)
    faulted = set(real.notes.get("fault_probes") or ())
    mock_by = {e.label: e for e in mock.exchanges}
    real_by = {e.label: e for e in real.exchanges}
    for label, rex in real_by.items():
        rep.probes.append(label)
        mex = mock_by.get(label)
        if mex is None:
            rep.items.append(
                DriftItem(label, "-", "info", "probe", "recorded", "not recorded", "mock skipped")
            )
            continue
        for ex, who in ((rex, "real"), (mex, "mock")):
            if ex.error is not None:
                rep.items.append(DriftItem(label, "-", "critical", "transport", who, ex.error))
        if label in faulted and rex.error is None and "error" not in _shape(rex).roles:
            rep.items.append(
                DriftItem(
                    label,
                    "-",
                    "info",
                    "probe",
                    "no failure",
                    "injected failure",
                    "this deployment has no failing model (fail_model) and ignores fail_after",
                )
            )
            continue
        if rex.error is None and mex.error is None:
            rep.items.extend(_compare_exchange(label, rex, mex))
    for label in mock_by.keys() - real_by.keys():
        note = (
            "not observed on the real engine (it loaded too fast)"
            if label == "health.loading"
            else ""
        )
        rep.items.append(DriftItem(label, "-", "info", "probe", "not recorded", "recorded", note))
    rj = _max_step(real_by.get("completion.stream"))
    mj = _max_step(mock_by.get("completion.stream"))
    if rj is not None and mj is not None and (rj > 1) != (mj > 1):
        rep.items.append(
            DriftItem(
                "completion.stream",
                "partial:tokens_predicted step",
                "major",
                "behaviour",
                rj,
                mj,
                "the real server holds back partial UTF-8 and sends it with a later token, "
                "so tokens_predicted can skip; adapters must accept gaps",
            )
        )
    rc, mc = real.notes.get("closes_after_stream"), mock.notes.get("closes_after_stream")
    if rc is not None and mc is not None and rc != mc:
        rep.items.append(
            DriftItem(
                "keepalive.after_stream",
                "connection closed after a streamed response",
                "major",
                "behaviour",
                rc,
                mc,
                "the real server advertises Keep-Alive but closes after a stream: a pooled "
                "client that reuses the connection races the close and gets 'server "
                "disconnected without a response' on its next (non-idempotent) POST",
            )
        )
    ri, mi = real.notes.get("cancel_slots_idle"), mock.notes.get("cancel_slots_idle")
    if ri is not None or mi is not None:
        sev = "critical" if ri != mi else "info"
        rep.items.append(
            DriftItem("cancel.stream", "slots idle after disconnect", sev, "value", ri, mi)
        )
    return rep


def drift_ok(report: DriftReport, *, fail_on: Iterable[str] = ("critical",)) -> bool:
    bad = set(fail_on)
    return not any(i.severity in bad for i in report.items)
