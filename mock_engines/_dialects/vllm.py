"""vLLM OpenAI-compatible server dialect (vllm-project/vllm, modelled on 0.11.0).

Wire facts chosen, and where from (reference/engine-dialects.md §2; ``vllm/entrypoints/openai``
``serving_chat.py``, ``serving_completion.py``, ``protocol.py``, ``api_server.py``):

* FastAPI on uvicorn: ``server: uvicorn`` on every response; JSON bodies via Starlette
  ``JSONResponse`` (compact, raw UTF-8, ``content-type: application/json``); streams
  ``content-type: text/event-stream; charset=utf-8``. (uvicorn's ``date`` header is not sent.)
* Loading: the port stays closed until the engine is built (connection refused).
* ``/health`` 200 with an empty body; ``/version`` ``{"version":"0.11.0"}``; ``/v1/models`` with
  ``owned_by:"vllm"``, ``root``, ``parent``, ``max_model_len`` and ``permission[]``; ``/metrics``
  with ``vllm:`` names labelled ``model_name``.
* Chat stream (``model_dump_json(exclude_unset=True)``): keys ``id, object, created, model,
  choices``; the first chunk is the role delta ``{"role":"assistant","content":""}`` with
  ``"prompt_token_ids":null`` after ``choices``; token chunks carry ``token_ids:null``; **the
  finish reason rides on the last token's chunk** together with ``stop_reason`` (the matched stop
  string, or ``null`` for EOS/length); no separate finish frame. With ``stream_options`` present,
  ``include_usage`` defaults to **true** and a ``choices:[]`` usage chunk
  (``prompt_tokens, total_tokens, completion_tokens``) follows. Always ``data: [DONE]``.
* Completion stream (``model_dump_json(exclude_unset=False)``): every field present —
  ``id, object:"text_completion", created, model, choices[{index,text,logprobs,finish_reason,
  stop_reason,prompt_token_ids,token_ids}], usage:null``; then the optional usage chunk; ``[DONE]``.
* Chat ids ``chatcmpl-<request id>``, completion ids ``cmpl-<request id>``; the request id is the
  ``X-Request-Id`` header when sent, else a random hex (the mock: seeded hex). The mock echoes
  ``X-Request-Id`` on responses (as with ``--enable-request-id-headers``).
* Errors: ``{"error":{"message","type","param","code":int}}`` with HTTP status = ``code``;
  ``BadRequestError`` 400, ``NotFoundError`` 404 (``The model `x` does not exist.``, param
  ``model``), validation errors 400 ``"Bad Request"``. Streaming errors: ``data: {error}`` then
  ``data: [DONE]``. Unknown route: FastAPI ``{"detail":"Not Found"}``; wrong method
  ``{"detail":"Method Not Allowed"}``.
* API key (``--api-key``): only ``/v1`` paths; failure ``401 {"error":"Unauthorized"}``.
* vLLM has no overload answer of its own (requests queue); when the mock's bounded queue is full
  it answers 503 ``ServiceUnavailableError`` in vLLM's envelope (a documented mock choice).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._plan import GenerationPlan
from .._wire import (
    SLOTS,
    Dialect,
    EngineError,
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
from ._oai import Problem, parse_oai

if TYPE_CHECKING:
    from .._core import EngineContext

__all__ = ["DIALECT", "VllmDialect"]

_SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
_DONE = b"data: [DONE]\n\n"
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


def _finish(plan: GenerationPlan) -> str:
    return "length" if plan.stop_reason == "length" else "stop"


class VllmDialect(Dialect):
    name = "vllm"
    engine_version = "0.11.0"
    default_model = "Qwen/Qwen2.5-0.5B-Instruct"
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
            Route("GET", "/v1/models", self.models),
            Route("GET", "/metrics", self.metrics),
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
        return json_reply(self, 405, {"detail": "Method Not Allowed"})

    def overload_reply(self, req: MockRequest, ctx: EngineContext) -> Reply:
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

    def _request_id(self, req: MockRequest, ctx: EngineContext) -> str:
        return req.headers.get("x-request-id") or ctx.new_id(32)

    # -- simple routes ------------------------------------------------------------------------------
    def health(self, req: MockRequest, ctx: EngineContext) -> Reply:
        return Reply(200, b"", [])

    def version(self, req: MockRequest, ctx: EngineContext) -> Reply:
        return json_reply(self, 200, {"version": self.engine_version})

    def models(self, req: MockRequest, ctx: EngineContext) -> Reply:
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
                        "max_model_len": 4096,
                        "permission": [
                            {
                                "id": "modelperm-" + ctx.new_id(32),
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

    def metrics(self, req: MockRequest, ctx: EngineContext) -> Reply:
        st = ctx.stats
        pool = ctx.slots
        lab = f'model_name="{ctx.model}"'
        rows = [
            ("num_requests_running", "gauge", "Number of requests in model execution batches.", f"{{{lab}}}", float(pool.busy)),
            ("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", f"{{{lab}}}", float(pool.queued)),
            ("kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", f"{{{lab}}}", pool.busy / pool.slots),
            ("prompt_tokens_total", "counter", "Number of prefill tokens processed.", f"{{{lab}}}", float(st.prompt_tokens_total)),
            ("generation_tokens_total", "counter", "Number of generation tokens processed.", f"{{{lab}}}", float(st.tokens_predicted_total)),
        ]  # fmt: skip
        lines: list[str] = []
        for name, kind, help_text, labels, value in rows:
            lines.append(f"# HELP vllm:{name} {help_text}")
            lines.append(f"# TYPE vllm:{name} {kind}")
            lines.append(f"vllm:{name}{labels} {value}")
        lines.append("# HELP vllm:request_success_total Count of successfully processed requests.")
        lines.append("# TYPE vllm:request_success_total counter")
        for reason, n in (
            ("stop", st.finished_stop + st.finished_eos),
            ("length", st.finished_length),
            ("abort", 0),
        ):
            lines.append(
                f'vllm:request_success_total{{finished_reason="{reason}",{lab}}} {float(n)}'
            )
        lines.append(
            "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds."
        )
        lines.append("# TYPE vllm:time_to_first_token_seconds histogram")
        lines.append(f"vllm:time_to_first_token_seconds_count{{{lab}}} {float(st.ttft_count)}")
        lines.append(f"vllm:time_to_first_token_seconds_sum{{{lab}}} {st.ttft_sum}")
        body = ("\n".join(lines) + "\n").encode()
        return Reply(200, body, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])

    # -- generation ------------------------------------------------------------------------------
    def _parse(
        self, req: MockRequest, ctx: EngineContext, *, chat: bool
    ) -> tuple[Any, dict[str, Any]]:
        body = req.json_object()
        p = parse_oai(body, chat=chat)
        if isinstance(p, Problem):
            if p.kind == "missing":
                msg = f"[{{'type': 'missing', 'loc': ('body', '{p.field}'), 'msg': 'Field required'}}]"
            else:
                msg = (
                    f"[{{'type': '{p.expected}_type', 'loc': ('body', '{p.field}'), "
                    f"'msg': 'Input should be a valid {p.expected}', 'input': {p.got!r}}}]"
                )
            raise EngineError(400, msg, etype="Bad Request", param=p.field)
        if p.model is not None and p.model != ctx.model:
            raise EngineError(
                404, f"The model `{p.model}` does not exist.", etype="NotFoundError", param="model"
            )
        if p.stream_options_present and not p.stream:
            raise EngineError(400, "Stream options can only be defined when `stream=True`.")
        return p, body

    def _plan(self, p: Any, ctx: EngineContext) -> GenerationPlan:
        return ctx.plan(
            p.prompt,
            max_tokens=p.max_tokens,
            seed=p.seed,
            stop=p.stop,
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            ignore_eos=p.ignore_eos,
            min_tokens=p.min_tokens,
        )

    @staticmethod
    def _include_usage(body: dict[str, Any]) -> bool:
        so = body.get("stream_options")
        return isinstance(so, dict) and so.get("include_usage", True) is not False

    @staticmethod
    def _usage(plan: GenerationPlan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "total_tokens": plan.total_tokens,
            "completion_tokens": plan.completion_tokens,
        }

    def _error_frames(self, message: str) -> list[bytes]:
        return [sse(dumps(self._error_obj(500, message, "InternalServerError", None))), _DONE]

    def chat(self, req: MockRequest, ctx: EngineContext) -> Reply | StreamReply:
        p, body = self._parse(req, ctx, chat=True)
        plan = self._plan(p, ctx)
        rid = self._request_id(req, ctx)
        cid = f"chatcmpl-{rid}"
        created = ctx.created()
        model = ctx.model
        hdr: Headers = [(b"x-request-id", rid.encode("latin-1", "replace"))]
        finish = _finish(plan)
        stop_reason = plan.stop_string if plan.stop_reason == "stop" else None
        if not p.stream:
            return json_reply(
                self,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": plan.text,
                                "refusal": None,
                                "annotations": None,
                                "audio": None,
                                "function_call": None,
                                "tool_calls": [],
                                "reasoning_content": None,
                            },
                            "logprobs": None,
                            "finish_reason": finish,
                            "stop_reason": stop_reason,
                            "token_ids": None,
                        }
                    ],
                    "service_tier": None,
                    "system_fingerprint": None,
                    "usage": {**self._usage(plan), "prompt_tokens_details": None},
                    "prompt_logprobs": None,
                    "prompt_token_ids": None,
                    "kv_transfer_params": None,
                },
                headers=hdr,
                plan=plan,
            )

        head = f'{{"id":{dumps(cid).decode()},"object":"chat.completion.chunk","created":{created},"model":{dumps(model).decode()},"choices":['.encode()

        mid = template(
            {
                "index": 0,
                "delta": {"content": SLOTS[0]},
                "logprobs": None,
                "finish_reason": None,
                "token_ids": None,
            }
        )

        def token_chunk(text: str, last: bool) -> bytes:
            if not last:
                return b"data: " + head + fill(mid, jstr(text)) + b"]}\n\n"
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": text},
                "logprobs": None,
                "finish_reason": finish if last else None,
            }
            if last:
                choice["stop_reason"] = stop_reason
            choice["token_ids"] = None
            return b"data: " + head + dumps(choice) + b"]}\n\n"

        frames: list[Frame] = []
        role = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        frames.append(
            Frame(
                b"data: " + head + dumps(role) + b'],"prompt_token_ids":null}\n\n',
                0,
                FrameKind.META,
            )
        )
        chunks = ctx.chunks(plan)
        n = len(chunks)
        if n == 0:
            frames.append(Frame(token_chunk("", True), 0, FrameKind.META))
        for step, (text, _ids) in enumerate(chunks):
            frames.append(Frame(token_chunk(text, step == n - 1), step, FrameKind.TOKEN))
        last = max(0, n - 1)
        if self._include_usage(body):
            usage = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": self._usage(plan),
            }
            frames.append(Frame(sse(dumps(usage)), last, FrameKind.META))
        frames.append(Frame(_DONE, last, FrameKind.TERMINAL))
        return StreamReply(
            200,
            [*_SSE_HEADERS, *hdr],
            frames,
            plan,
            error_frames=self._error_frames,
            token_frame=lambda t: token_chunk(t, False),
        )

    def completions(self, req: MockRequest, ctx: EngineContext) -> Reply | StreamReply:
        p, body = self._parse(req, ctx, chat=False)
        plan = self._plan(p, ctx)
        rid = self._request_id(req, ctx)
        cid = f"cmpl-{rid}"
        created = ctx.created()
        model = ctx.model
        hdr: Headers = [(b"x-request-id", rid.encode("latin-1", "replace"))]
        finish = _finish(plan)
        stop_reason = plan.stop_string if plan.stop_reason == "stop" else None
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
                            "index": 0,
                            "text": plan.text,
                            "logprobs": None,
                            "finish_reason": finish,
                            "stop_reason": stop_reason,
                            "token_ids": None,
                            "prompt_logprobs": None,
                            "prompt_token_ids": None,
                        }
                    ],
                    "service_tier": None,
                    "system_fingerprint": None,
                    "usage": {**self._usage(plan), "prompt_tokens_details": None},
                    "kv_transfer_params": None,
                },
                headers=hdr,
                plan=plan,
            )

        ctpl: list[bytes] = []

        def chunk(text: str, last: bool) -> bytes:
            if not last and ctpl:
                return b"data: " + fill(ctpl, jstr(text)) + b"\n\n"
            return sse(
                dumps(
                    {
                        "id": cid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "text": text,
                                "logprobs": None,
                                "finish_reason": finish if last else None,
                                "stop_reason": stop_reason if last else None,
                                "prompt_token_ids": None,
                                "token_ids": None,
                            }
                        ],
                        "usage": None,
                    }
                )
            )

        ctpl.extend(template(json.loads(chunk(SLOTS[0], False)[6:])))
        frames: list[Frame] = []
        chunks = ctx.chunks(plan)
        n = len(chunks)
        if n == 0:
            frames.append(Frame(chunk("", True), 0, FrameKind.META))
        for step, (text, _ids) in enumerate(chunks):
            frames.append(Frame(chunk(text, step == n - 1), step, FrameKind.TOKEN))
        last = max(0, n - 1)
        if self._include_usage(body):
            usage = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [],
                "usage": self._usage(plan),
            }
            frames.append(Frame(sse(dumps(usage)), last, FrameKind.META))
        frames.append(Frame(_DONE, last, FrameKind.TERMINAL))
        return StreamReply(
            200,
            [*_SSE_HEADERS, *hdr],
            frames,
            plan,
            error_frames=self._error_frames,
            token_frame=lambda t: chunk(t, False),
        )


DIALECT = VllmDialect()
