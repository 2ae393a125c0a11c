"""OpenAI API dialect (the reference dialect of the OpenAI-compatible engines).

Wire facts chosen, and where from (reference/engine-dialects.md §4: the OpenAPI spec shipped in
openai-python, the SDK's SSE and retry code, the rate-limit guide):

* Every response carries ``x-request-id: req_<32 hex>``, ``openai-version: 2020-10-01``,
  ``openai-processing-ms``, ``openai-organization`` and the six ``x-ratelimit-*`` headers.
* An API key is always required: no ``Authorization`` → 401 ``invalid_request_error`` ("You didn't
  provide an API key…", ``code:null``); a key other than the configured one → 401
  ``invalid_api_key``. The wrong key is echoed **redacted** (project style ``****`` + SHA-256
  prefix), where the real API echoes a masked fragment — secrets must not reach transcripts.
* Errors: ``{"error":{"message","type","param","code"}}`` — all four keys, ``code`` a string or
  null. 429: ``Retry-After`` seconds, ``type:"requests"``, ``code:"rate_limit_exceeded"``,
  ``x-ratelimit-remaining-requests: 0``. Overload: 503 ``server_error`` "The server is
  overloaded or not ready yet.". Unknown route: 404 ``Invalid URL (METHOD /path)``.
  Unknown model: 404 ``model_not_found``.
* Chat chunk keys: ``id, object, created, model, service_tier, system_fingerprint, choices
  [{index, delta, logprobs, finish_reason}]`` + ``usage:null`` on every chunk when
  ``include_usage`` is on + ``obfuscation`` (padding, on unless
  ``stream_options.include_obfuscation:false``; the mock's padding is seeded). First delta
  ``{"role":"assistant","content":"","refusal":null}``, a separate finish chunk with
  ``delta:{}``, the usage chunk (``choices:[]``) with ``prompt_tokens_details`` and
  ``completion_tokens_details``; ``data: [DONE]``.
* Legacy completions chunk: ``id, object:"text_completion", created, choices[{text,index,
  logprobs,finish_reason}], model`` (+ ``usage`` when requested).
* Non-streamed bodies are pretty-printed with two-space indentation, as the API does.
* The model name resolves to a dated snapshot (``gpt-4o-mini`` → ``gpt-4o-mini-2024-07-18``).
* Held to the API's own rules (openai-openapi 2.3.0 and the classic error texts): a prompt plus
  ``max_tokens`` beyond the context (``ctx_size``, default 4096) is 400 ``invalid_request_error``
  ``context_length_exceeded`` (``param`` ``messages``/``prompt``); ``n`` (1..128) gives ``n``
  choices (streams interleave them), chat ``logprobs``/``top_logprobs`` (0..20, needs
  ``logprobs: true``) and legacy ``logprobs`` (0..5) carry seeded logprobs, legacy ``echo`` puts
  the prompt in front, a named (or ``required``) ``tool_choice`` answers with a tool call
  (``arguments`` ``"{}"``, finish ``stop``); ``tool_choice`` without ``tools`` is a 400.
* No loading phase exists for a hosted API; ``engine.loading`` is rendered as the port being
  closed (connection refused), like an unreachable endpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .._journal import redact_secret
from .._plan import GenerationPlan, tokenize
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
from ._oai import Problem, done_stream, parse_oai
from ._tokens import alternatives

__all__ = ["DIALECT", "OpenAIDialect"]

_SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-3.5-turbo-instruct": "gpt-3.5-turbo-instruct",
}
_FINGERPRINT = "fp_0ba0d124f1"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MESSAGES = {
    400: ("Bad request.", "invalid_request_error"),
    401: ("Invalid authentication.", "invalid_request_error"),
    404: ("The requested resource was not found.", "invalid_request_error"),
    422: ("Unprocessable entity.", "invalid_request_error"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    ),
    503: ("The server is overloaded or not ready yet.", "server_error"),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)


def _finish(plan: GenerationPlan) -> str:
    return "length" if plan.stop_reason == "length" else "stop"


def _obfuscation(seed: str, k: int) -> str:
    d = hashlib.sha256(f"{seed}|{k}".encode()).digest()
    n = 1 + d[0] % 12
    return "".join(_B62[b % 62] for b in d[1 : 1 + n])


class OpenAIDialect(Dialect):
    name = "openai"
    engine_version = "2020-10-01"
    default_model = "gpt-4o-mini"
    loading_mode = "port_closed"
    unsupported_faults = frozenset(
        {"frame.duplicate_index", "frame.out_of_order_index", "stream.keepalive_flood"}
    )
    keepalive = None

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/v1/models", self.models),
            Route("GET", "/v1/models/{model}", self.model_info),
            Route("POST", "/v1/chat/completions", self.chat, generation=True),
            Route("POST", "/v1/completions", self.completions, generation=True),
        ]

    # -- envelopes ------------------------------------------------------------------------------------
    def base_headers(self) -> Headers:
        return [
            (b"openai-version", b"2020-10-01"),
            (b"openai-organization", b"user-mock"),
            (b"openai-processing-ms", b"143"),
            (b"x-ratelimit-limit-requests", b"5000"),
            (b"x-ratelimit-limit-tokens", b"4000000"),
            (b"x-ratelimit-remaining-requests", b"4999"),
            (b"x-ratelimit-remaining-tokens", b"3999990"),
            (b"x-ratelimit-reset-requests", b"12ms"),
            (b"x-ratelimit-reset-tokens", b"0s"),
        ]

    def _rid(self) -> Headers:
        import os

        return [(b"x-request-id", b"req_" + os.urandom(16).hex().encode())]

    def _err(
        self,
        status: int,
        message: str,
        etype: str,
        param: str | None = None,
        code: str | None = None,
        headers: Headers | None = None,
    ) -> Reply:
        obj = {"error": {"message": message, "type": etype, "param": param, "code": code}}
        return json_reply(self, status, obj, headers=[*self._rid(), *(headers or [])], indent=4)

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        default = _MESSAGES.get(status, ("Error", "invalid_request_error"))
        return self._err(status, message, etype or default[1], param, code)

    def status_fault_reply(self, status: int, req: MockRequest) -> Reply:
        msg, etype = _MESSAGES.get(status, ("Error", "invalid_request_error"))
        return self._err(status, msg, etype)

    def not_found_reply(self, req: MockRequest) -> Reply:
        return self._err(404, f"Invalid URL ({req.method} {req.path})", "invalid_request_error")

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        return self.not_found_reply(req)

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply:
        return self._err(503, "The server is overloaded or not ready yet.", "server_error")

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        return self._err(
            429,
            "Rate limit reached for requests in organization org-mock on requests per min "
            f"(RPM): Limit 5000, Used 5000, Requested 1. Please try again in {seconds}s.",
            "requests",
            code="rate_limit_exceeded",
            headers=[
                (b"retry-after", str(seconds).encode()),
                (b"x-ratelimit-remaining-requests", b"0"),
            ],
        )

    def check_auth(
        self, req: MockRequest, api_key: str | None, route: Route | None
    ) -> Reply | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            return self._err(401, _NO_KEY, "invalid_request_error")
        given = auth[len("Bearer ") :].strip()
        if api_key is not None and given != api_key:
            return self._err(
                401,
                f"Incorrect API key provided: {redact_secret(given)}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        return None

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        return self._err(
            413, f"Request body too large (max {limit} bytes).", "invalid_request_error"
        )

    # -- routes -----------------------------------------------------------------------------------------
    def _model_obj(self, name: str, ctx: EngineView) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"}

    def _known(self, ctx: EngineView) -> list[str]:
        names = [ctx.model, *(n for n in _SNAPSHOTS if n != ctx.model)]
        return names

    def models(self, req: MockRequest, ctx: EngineView) -> Reply:
        data = [self._model_obj(n, ctx) for n in self._known(ctx)]
        return json_reply(
            self, 200, {"object": "list", "data": data}, headers=self._rid(), indent=2
        )

    def model_info(self, req: MockRequest, ctx: EngineView) -> Reply:
        name = req.path_params.get("model", "")
        if name not in self._known(ctx):
            return self._err(
                404,
                f"The model '{name}' does not exist",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        return json_reply(self, 200, self._model_obj(name, ctx), headers=self._rid(), indent=2)

    def _parse(self, req: MockRequest, ctx: EngineView, *, chat: bool) -> Any:
        try:
            body = req.json_object()
        except EngineError:
            raise EngineError(400, _BAD_JSON, etype="invalid_request_error") from None
        p = parse_oai(body, chat=chat)
        if isinstance(p, Problem):
            if p.kind == "missing":
                raise EngineError(
                    400,
                    f"Missing required parameter: '{p.field}'.",
                    etype="invalid_request_error",
                    param=p.field,
                    code="missing_required_parameter",
                )
            if p.kind == "value":
                raise EngineError(
                    400,
                    f"Invalid '{p.field}': integer below minimum value. Expected a value >= 0, "
                    f"but got {p.got} instead.",
                    etype="invalid_request_error",
                    param=p.field,
                    code="integer_below_min_value",
                )
            raise EngineError(
                400,
                f"Invalid type for '{p.field}': expected {p.expected}, but got {p.got} instead.",
                etype="invalid_request_error",
                param=p.field,
                code="invalid_type",
            )
        if p.model is None:
            raise EngineError(
                400,
                "you must provide a model parameter",
                etype="invalid_request_error",
                param=None,
                code=None,
            )
        if p.model not in self._known(ctx):
            raise EngineError(
                404,
                f"The model `{p.model}` does not exist or you do not have access to it.",
                etype="invalid_request_error",
                param=None,
                code="model_not_found",
            )
        if p.stream_options_present and not p.stream:
            raise EngineError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                etype="invalid_request_error",
                param="stream_options",
                code=None,
            )
        return p

    def _plan(self, p: Any, ctx: EngineView) -> GenerationPlan:
        return ctx.plan(
            p.prompt,
            max_tokens=p.max_tokens,
            seed=p.seed,
            stop=p.stop,
            temperature=p.temperature,
            top_p=p.top_p,
        )

    @staticmethod
    def _usage(plan: GenerationPlan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _error_frames(self, message: str) -> list[bytes]:
        err = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return [sse(dumps(err))]

    # -- parameters the API honours: n, logprobs, echo, tool_choice; the context length ----------
    def _extras(self, req: MockRequest, p: Any, ctx: EngineView, *, chat: bool) -> dict[str, Any]:
        """Validate ``n``, ``logprobs``/``top_logprobs``, ``echo``, ``tools``/``tool_choice`` and
        the context length (OpenAI semantics; errors in the API's envelope)."""
        body = req.json_object()

        def bad(message: str, param: str | None, code: str | None = None) -> EngineError:
            return EngineError(400, message, etype="invalid_request_error", param=param, code=code)

        def int_field(key: str, lo: int, hi: int, default: int) -> int:
            v = body.get(key)
            if v is None:
                return default
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(
                    f"Invalid type for '{key}': expected an integer, but got "
                    f"{type(v).__name__} instead.",
                    key,
                    "invalid_type",
                )
            if not lo <= v <= hi:
                which = "below minimum" if v < lo else "above maximum"
                raise bad(
                    f"Invalid '{key}': integer {which} value. Expected a value "
                    f"{'>=' if v < lo else '<='} {lo if v < lo else hi}, but got {v} instead.",
                    key,
                    f"integer_{'below_min' if v < lo else 'above_max'}_value",
                )
            return v

        n = int_field("n", 1, 128, 1)
        logprobs: int | None = None
        if chat:
            lp = body.get("logprobs")
            if lp is not None and not isinstance(lp, bool):
                raise bad("Invalid type for 'logprobs': expected a boolean.", "logprobs")
            top = int_field("top_logprobs", 0, 20, 0)
            if body.get("top_logprobs") is not None and lp is not True:
                raise bad(
                    "Invalid value for 'top_logprobs': logprobs must be set to true when "
                    "top_logprobs is set.",
                    "top_logprobs",
                )
            logprobs = top if lp is True else None
        elif body.get("logprobs") is not None:
            logprobs = int_field("logprobs", 0, 5, 0)
        echo = body.get("echo") is True
        if chat and "echo" in body:
            raise bad("Unrecognized request argument supplied: echo", None)
        tool: str | None = None
        if chat:
            tools = body.get("tools")
            names = [
                t["function"]["name"]
                for t in tools or []
                if isinstance(t, dict)
                and isinstance(t.get("function"), dict)
                and isinstance(t["function"].get("name"), str)
            ]
            tc = body.get("tool_choice")
            if tc is not None and not tools:
                raise bad(
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                    "'tools' are specified.",
                    "tool_choice",
                )
            if isinstance(tc, dict):
                fn = tc.get("function")
                name = fn.get("name") if isinstance(fn, dict) else None
                if name not in names:
                    raise bad(
                        f"Invalid value for 'tool_choice': function '{name}' is not among the "
                        "provided tools.",
                        "tool_choice",
                    )
                tool = str(name)
            elif tc == "required":
                tool = names[0] if names else None
            elif tc not in (None, "none", "auto"):
                raise bad(f"Invalid value for 'tool_choice': {tc!r}.", "tool_choice")
        # The context: prompt tokens plus the requested completion must fit.
        prompt_tokens = len(tokenize(p.prompt))
        wanted = p.max_tokens or 0
        what = "messages" if chat else "prompt"
        if prompt_tokens > ctx.ctx_size or prompt_tokens + wanted > ctx.ctx_size:
            if wanted:
                msg = (
                    f"This model's maximum context length is {ctx.ctx_size} tokens. However, you "
                    f"requested {prompt_tokens + wanted} tokens ({prompt_tokens} in the {what}, "
                    f"{wanted} in the completion). Please reduce the length of the {what} or "
                    "completion."
                )
            else:
                msg = (
                    f"This model's maximum context length is {ctx.ctx_size} tokens. However, "
                    f"your {what} resulted in {prompt_tokens} tokens. Please reduce the length "
                    f"of the {what}."
                )
            raise bad(msg, what, "context_length_exceeded")
        return {"n": n, "logprobs": logprobs, "echo": echo, "tool": tool}

    @staticmethod
    def _chat_logprobs(plan: GenerationPlan, a: int, b: int, k: int) -> dict[str, Any]:
        content = []
        for pos in range(a, min(b, len(plan.tokens))):
            text, tid = plan.tokens[pos], plan.token_ids[pos]
            alts = alternatives(text, tid, pos, max(1, k))
            content.append(
                {
                    "token": text,
                    "logprob": alts[0][2],
                    "bytes": list(text.encode()),
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode())}
                        for t, _i, lp in alts[:k]
                    ],
                }
            )
        return {"content": content, "refusal": None}

    @staticmethod
    def _cmpl_logprobs(plan: GenerationPlan, offset: int, k: int) -> dict[str, Any]:
        offs, acc = [], offset
        for t in plan.tokens:
            offs.append(acc)
            acc += len(t)
        rows = [
            alternatives(t, i, pos, max(1, k))
            for pos, (t, i) in enumerate(zip(plan.tokens, plan.token_ids, strict=True))
        ]
        return {
            "tokens": list(plan.tokens),
            "token_logprobs": [r[0][2] for r in rows],
            "top_logprobs": [{t: lp for t, _i, lp in r[:k]} for r in rows] if k else None,
            "text_offset": offs,
        }

    def _plans(self, p: Any, ctx: EngineView, n: int) -> list[GenerationPlan]:
        """One plan per choice; each choice samples on (greedy requests give one text)."""
        plans = [self._plan(p, ctx)]
        for j in range(1, n):
            seed = (p.seed if p.seed is not None else ctx.seed) + j
            plans.append(
                ctx.plan(
                    p.prompt,
                    max_tokens=p.max_tokens,
                    seed=seed,
                    stop=p.stop,
                    temperature=p.temperature,
                    top_p=p.top_p,
                )
            )
        return plans

    @staticmethod
    def _sum_usage(plans: Sequence[GenerationPlan]) -> GenerationPlan:
        """A plan carrying the usage of all choices (prompt once, completions summed)."""
        if len(plans) == 1:
            return plans[0]
        return replace(plans[0], completion_tokens=sum(q.completion_tokens for q in plans))

    def chat(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        p = self._parse(req, ctx, chat=True)
        ex = self._extras(req, p, ctx, chat=True)
        n, top, tool = ex["n"], ex["logprobs"], ex["tool"]
        plans = (
            [ctx.plan(p.prompt, max_tokens=0)] * n if tool is not None else self._plans(p, ctx, n)
        )
        plan = plans[0]
        cid = "chatcmpl-" + ctx.new_id(29)
        created = ctx.created()
        model = _SNAPSHOTS.get(p.model, p.model)
        call_ids = ["call_" + ctx.new_id(24) for _ in plans] if tool is not None else []
        usage_plan = self._sum_usage(plans)
        if tool is not None:
            usage_plan = replace(plan, completion_tokens=5 * n)  # the call's own tokens
        if not p.stream:
            choices = []
            for i, q in enumerate(plans):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": None if tool is not None else q.text,
                    "refusal": None,
                    "annotations": [],
                }
                if tool is not None:
                    message["tool_calls"] = [
                        {
                            "id": call_ids[i],
                            "type": "function",
                            "function": {"name": tool, "arguments": "{}"},
                        }
                    ]
                choices.append(
                    {
                        "index": i,
                        "message": message,
                        "logprobs": (
                            None
                            if top is None or tool is not None
                            else self._chat_logprobs(q, 0, len(q.tokens), top)
                        ),
                        "finish_reason": "stop" if tool is not None else _finish(q),
                    }
                )
            return json_reply(
                self,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": self._usage(usage_plan),
                    "service_tier": "default",
                    "system_fingerprint": _FINGERPRINT,
                },
                headers=self._rid(),
                plan=plan,
                indent=2,
            )
        k = 0

        def chunk_obj(
            choices: list[dict[str, Any]], usage: Any, obfuscation: str
        ) -> dict[str, Any]:
            d: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": choices,
            }
            if p.include_usage:
                d["usage"] = usage
            if p.include_obfuscation:
                d["obfuscation"] = obfuscation
            return d

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
            nonlocal k
            d = chunk_obj(choices, usage, _obfuscation(cid, k) if p.include_obfuscation else "")
            k += 1
            return sse(dumps(d))

        def choice(
            delta: dict[str, Any],
            fin: str | None = None,
            index: int = 0,
            logprobs: dict[str, Any] | None = None,
        ) -> list[dict[str, Any]]:
            return [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": fin}]

        frames: list[Frame] = []
        for i in range(n):
            first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
            if tool is not None:
                first["content"] = None
                first["tool_calls"] = [
                    {
                        "index": 0,
                        "id": call_ids[i],
                        "type": "function",
                        "function": {"name": tool, "arguments": ""},
                    }
                ]
            frames.append(Frame(chunk(choice(first, index=i)), 0, FrameKind.META))
        ttpl = template(chunk_obj(choice({"content": SLOTS[0]}), None, SLOTS[1]))

        def token(text: str) -> bytes:
            # Same bytes as chunk(choice({"content": text})), without re-serialising the frame.
            nonlocal k
            if p.include_obfuscation:
                body = fill(ttpl, jstr(text), jstr(_obfuscation(cid, k)))
            else:
                body = fill(ttpl, jstr(text))
            k += 1
            return b"data: " + body + b"\n\n"

        per = ctx.profile.tokens_per_chunk
        steps = [ctx.chunks(q) for q in plans]
        last = max(0, max(len(st) for st in steps) - 1)
        if tool is not None:
            for i in range(n):
                args = {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
                frames.append(Frame(chunk(choice(args, index=i)), 0, FrameKind.TOKEN))
        else:
            for step in range(last + 1):
                for i, q in enumerate(plans):
                    if step >= len(steps[i]):
                        continue
                    text = steps[i][step][0]
                    if n == 1 and top is None:
                        data = token(text)
                    else:
                        lp = (
                            None
                            if top is None
                            else self._chat_logprobs(q, step * per, (step + 1) * per, top)
                        )
                        data = chunk(choice({"content": text}, index=i, logprobs=lp))
                    frames.append(Frame(data, step, FrameKind.TOKEN))
        for i, q in enumerate(plans):
            fin = "stop" if tool is not None else _finish(q)
            frames.append(Frame(chunk(choice({}, fin, index=i)), last, FrameKind.META))
        if p.include_usage:
            frames.append(Frame(chunk([], self._usage(usage_plan)), last, FrameKind.META))
        return self._stream(frames, last, plan, token)

    def _stream(
        self,
        frames: list[Frame],
        last: int,
        plan: GenerationPlan,
        token_frame: Callable[[str], bytes],
    ) -> StreamReply:
        """A 200 stream of ``frames`` then ``[DONE]``, with this request's ``x-request-id``."""
        return done_stream(
            frames,
            last,
            plan,
            [*_SSE_HEADERS, *self._rid()],
            error_frames=self._error_frames,
            token_frame=token_frame,
        )

    def completions(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        p = self._parse(req, ctx, chat=False)
        ex = self._extras(req, p, ctx, chat=False)
        n, top, echo = ex["n"], ex["logprobs"], ex["echo"]
        plans = self._plans(p, ctx, n)
        plan = plans[0]
        cid = "cmpl-" + ctx.new_id(29)
        created = ctx.created()
        model = _SNAPSHOTS.get(p.model, p.model)
        total = self._sum_usage(plans)
        prefix = p.prompt if echo else ""
        usage = {
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "total_tokens": total.total_tokens,
        }
        if not p.stream:
            return json_reply(
                self,
                200,
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "text": prefix + q.text,
                            "index": i,
                            "logprobs": (
                                None if top is None else self._cmpl_logprobs(q, len(prefix), top)
                            ),
                            "finish_reason": _finish(q),
                        }
                        for i, q in enumerate(plans)
                    ],
                    "usage": usage,
                },
                headers=self._rid(),
                plan=plan,
                indent=2,
            )

        def chunk(text: str, fin: str | None, index: int = 0) -> bytes:
            d: dict[str, Any] = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": fin}],
                "model": model,
            }
            return sse(dumps(d))

        ctpl = template(json.loads(chunk(SLOTS[0], None)[6:]))
        frames: list[Frame] = []
        steps = [ctx.chunks(q) for q in plans]
        last = max(0, max(len(st) for st in steps) - 1)
        if echo:
            for i in range(n):
                frames.append(Frame(chunk(prefix, None, i), 0, FrameKind.META))
        for step in range(last + 1):
            for i in range(n):
                if step >= len(steps[i]):
                    continue
                text = steps[i][step][0]
                data = (
                    b"data: " + fill(ctpl, jstr(text)) + b"\n\n" if i == 0 else chunk(text, None, i)
                )
                frames.append(Frame(data, step, FrameKind.TOKEN))
        for i, q in enumerate(plans):
            frames.append(Frame(chunk("", _finish(q), i), last, FrameKind.META))
        if p.include_usage:
            tail = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "choices": [],
                "model": model,
                "usage": usage,
            }
            frames.append(Frame(sse(dumps(tail)), last, FrameKind.META))
        return self._stream(frames, last, plan, lambda t: chunk(t, None))


DIALECT = OpenAIDialect()
