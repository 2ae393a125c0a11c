"""Deliberately broken adapters: the harness's self-test (each must fail the right requirement).

Every factory breaks exactly one rule, the way real adapters get it wrong: the first eleven wrap
the real llama.cpp adapter; the rest are variants of the vLLM adapter
(``broken_adapters_vllm``), one per class of issue 13. ``CASES`` records, per factory, the
dialect it speaks, the requirement the suite must fail it on (``want``), the requirements whose
scenarios the self-test runs (``run``; a small selection keeps the self-test fast) and the
requirements it must *not* fail (precise attribution). The self-test runs
``llorch-conformance run --adapter broken_adapters:<name> --dialect <dialect> --requirement ...``
and checks exit code 1 with ``want`` among the failed verdicts.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from llorch_conformance.adapters.api import (
    TaskRequest,
    TokenEvent,
)

__all__ = ["CASES", "EXPECTED", "Case"]

# imported as ``broken_adapters`` (the self-test puts this folder on sys.path) or as
# ``tests.conformance.broken_adapters`` (from the repository root)
_pkg = __name__.rpartition(".")[0]
_v: Any = importlib.import_module(
    f"{_pkg}.broken_adapters_vllm" if _pkg else "broken_adapters_vllm"
)

_LOG = logging.getLogger("vendor.broken_adapter")


class _Wrapper(_v.Delegating):  # type: ignore[misc]  # _v is imported by name
    """Delegates everything to the real llama.cpp adapter; subclasses override the broken part."""

    dialect = "llamacpp"


class DropLastToken(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        held: TokenEvent | None = None
        async for ev in self.inner.submit(request):
            if ev.kind == "token":
                if held is not None:
                    yield held
                held = ev
                continue
            held = None  # the bug: the last token is lost when the stream winds down
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class NeverStarted(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind != "started":
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class RetriesAfterFirstByte(_Wrapper):
    """Hides a mid-stream failure by silently re-submitting and continuing."""

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        emitted = 0
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and emitted > 0:
                again = TaskRequest.from_dict(
                    {**request.to_dict(), "task_id": request.task_id + "-retry"}
                )
                n = 0
                async for ev2 in self.inner.submit(again):
                    if ev2.kind == "token":
                        if n >= emitted:
                            yield TokenEvent.token(ev2.data["t"], n)
                        n += 1
                    elif ev2.kind in ("end", "error", "metrics"):
                        yield ev2
                return
            if ev.kind == "token":
                emitted += 1
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class LogsApiKey(_Wrapper):
    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        _LOG.info("connecting to %s with api key %s", base_url, config.get("api_key"))


class IgnoresCancel(_Wrapper):
    async def cancel(self, task_id: str) -> None:
        return None  # the bug: acknowledged, nothing stops


class Maps429NonRetriable(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and ev.data.get("code") == "POOL_UNAVAILABLE":
                data = {**ev.data, "retriable": False}
                data.pop("retry_after_ms", None)
                yield TokenEvent("error", data)
            else:
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class DuplicatesTokenAfterReset(_Wrapper):
    """After a reset it replays the last token (same index) before the error."""

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        last: TokenEvent | None = None
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and ev.data.get("code") == "WORKER_RESET" and last is not None:
                yield last
            if ev.kind == "token":
                last = ev
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class WrongErrorCode(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error":
                yield TokenEvent("error", {**ev.data, "code": "INTERNAL"})
            else:
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class BuffersWholeBody(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        events = [ev async for ev in self.inner.submit(request)]
        for ev in events:
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class NoTimeouts(_Wrapper):
    """Ignores the configured timeouts: a silent engine holds the caller for as long as it likes."""

    def __init__(self, base_url: str, **config: Any) -> None:
        from llorch_conformance.adapters.http_util import HttpClientConfig

        config = {
            **config,
            "http": HttpClientConfig(first_byte_timeout_s=60.0, inter_chunk_timeout_s=60.0),
        }
        super().__init__(base_url, **config)


class RaisesInsteadOfError(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error":
                raise RuntimeError(f"upstream failed: {ev.data.get('message')}")
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


def _factory(cls: type[_Wrapper]) -> Any:
    def make(base_url: str, **config: Any) -> _Wrapper:
        return cls(base_url, **config)

    make.__name__ = cls.__name__
    return make


drop_last_token = _factory(DropLastToken)
never_started = _factory(NeverStarted)
retries_after_first_byte = _factory(RetriesAfterFirstByte)
logs_api_key = _factory(LogsApiKey)
ignores_cancel = _factory(IgnoresCancel)
maps_429_non_retriable = _factory(Maps429NonRetriable)
duplicates_token_after_reset = _factory(DuplicatesTokenAfterReset)
wrong_error_code = _factory(WrongErrorCode)
buffers_whole_body = _factory(BuffersWholeBody)
no_timeouts = _factory(NoTimeouts)
raises_instead_of_error = _factory(RaisesInsteadOfError)


def explodes(base_url: str, **config: Any) -> Any:
    """Not an adapter bug but a broken factory: the harness must report an error, not a fail."""
    raise RuntimeError("factory exploded")


@dataclass(frozen=True)
class Case:
    """What the self-test expects of one broken adapter."""

    want: str
    klass: str
    dialect: str = "vllm"
    run: tuple[str, ...] = ()
    not_failed: tuple[str, ...] = ()
    #: why the suite does not catch it yet (the self-test then reports it without asserting)
    pending: str | None = None

    @property
    def selection(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.want, *self.run, *self.not_failed)))


def _c(
    want: str,
    klass: str,
    *,
    run: Sequence[str] = (),
    not_failed: Sequence[str] = (),
    pending: str | None = None,
) -> Case:
    return Case(want, klass, "vllm", tuple(run), tuple(not_failed), pending)


def _l(want: str, klass: str) -> Case:
    return Case(want, klass, "llamacpp")


#: factory name -> expectation (see the module docstring)
CASES: dict[str, Case] = {
    # -- the original eleven (llama.cpp wrappers) ----------------------------------------------
    "drop_last_token": _l("WA-INT-3001", "stream grammar"),
    "never_started": _l("WA-INT-3001", "stream grammar"),
    "retries_after_first_byte": _l("WA-INT-3008", "mid-stream errors"),
    "logs_api_key": _l("WA-INT-3005", "secrets in logs"),
    "ignores_cancel": _l("WA-INT-3002", "cancel"),
    "maps_429_non_retriable": _l("WA-INT-3003", "error mapping"),
    # the replayed token breaks the strictly increasing index (WA-INT-3001), seen in the reset
    # scenarios of WA-INT-3008
    "duplicates_token_after_reset": Case(
        "WA-INT-3001", "mid-stream errors", "llamacpp", ("WA-INT-3008",)
    ),
    "wrong_error_code": _l("ADAPT-3002", "error mapping"),
    "buffers_whole_body": _l("HTU-PERF-1302", "streaming"),
    "no_timeouts": _l("ADAPT-3005", "timeouts"),
    "raises_instead_of_error": _l("ADAPT-3002", "raising adapter"),
    # -- what the adapter forwards (the independent oracle) -----------------------------------
    "vllm_drops_max_tokens": _c("ADAPT-3000", "forwarded max_tokens", run=("WA-INT-3001",)),
    "vllm_max_tokens_off_by_one": _c("ADAPT-3000", "forwarded max_tokens", run=("WA-INT-3001",)),
    "vllm_caps_max_tokens": _c("ADAPT-3000", "forwarded max_tokens", run=("WA-INT-3001",)),
    "vllm_drops_stop": _c("ADAPT-3000", "forwarded stop", run=("WA-INT-3001",)),
    "vllm_keeps_one_stop": _c("ADAPT-3000", "forwarded stop", run=("WA-INT-3001",)),
    "vllm_drops_seed": _c("OC-TEST-7002", "forwarded seed"),
    "vllm_fixed_seed": _c("OC-TEST-7002", "forwarded seed"),
    "vllm_truncates_prompt": _c("ADAPT-3000", "forwarded prompt", run=("WA-INT-3001",)),
    "vllm_prefixes_prompt": _c("ADAPT-3000", "forwarded prompt", run=("WA-INT-3001",)),
    "vllm_chat_adds_system_message": _c("OC-ADAPT-5020", "forwarded messages"),
    "vllm_no_greedy_under_strict": _c("OC-TEST-7002", "forwarded greedy settings"),
    "vllm_drops_engine_params": _c("OC-ADAPT-5020", "forwarded engine parameters"),
    # -- engine_version -----------------------------------------------------------------------
    "vllm_static_engine_version": _c("OC-ADAPT-5030", "engine_version value"),
    "vllm_version_changes_after_submit": _c("OC-ADAPT-5030", "engine_version after submit"),
    "vllm_version_counter": _c("ADAPT-3000", "engine_version stability"),
    "vllm_started_wrong_version": _c("OC-ADAPT-5030", "engine_version in started"),
    "vllm_started_no_seed": _c("ADAPT-3003", "determinism signals"),
    # -- cancel -------------------------------------------------------------------------------
    "vllm_slow_cancel": _c("WA-INT-3002", "slow cancel"),
    "vllm_cancel_ends_in_error": _c("WA-INT-3002", "cancel ending in error"),
    "vllm_cancel_stop_reason_eos": _c("WA-INT-3002", "cancel stop reason"),
    "vllm_cancel_tokens_out_planned": _c(
        "ADAPT-3001", "tokens_out on cancel", run=("WA-INT-3002",)
    ),
    "vllm_cancel_only_filters": _c("WA-INT-3002", "cancel leaves upstream open"),
    # -- in-stream errors ---------------------------------------------------------------------
    "vllm_midstream_error_as_internal": _c("WA-INT-3008", "in-stream error code"),
    "vllm_error_retriable_flipped": _c("WA-INT-3008", "in-stream error retriable"),
    "vllm_drops_retry_after": _c("WA-INT-3003", "retry_after_ms"),
    "vllm_decode_timeout_as_reset": _c("ADAPT-3002", "error code"),
    "vllm_invalid_params_retriable": _c("WA-INT-3004", "4xx retriable"),
    # -- values: counts, metrics, logs --------------------------------------------------------
    "vllm_negative_tokens_out": _c("WA-INT-3001", "negative counts"),
    "vllm_tokens_out_off_by_one": _c("WA-INT-3001", "inconsistent counts"),
    "vllm_negative_decode_time": _c("ADAPT-3001", "negative counts"),
    "vllm_usage_disagrees": _c("ADAPT-3001", "inconsistent counts"),
    "vllm_metrics_as_strings": _c("ADAPT-3001", "non-numeric metrics"),
    "vllm_metrics_with_none": _c("ADAPT-3001", "non-numeric metrics"),
    "vllm_metrics_nested": _c("ADAPT-3001", "non-numeric metrics"),
    "vllm_logs_wrong_tokens_out": _c("WA-INT-3007", "log values"),
    "vllm_logs_no_tokens_in": _c("ADAPT-3004", "log values"),
    "vllm_logs_session_as_job": _c("WA-INT-3007", "log values"),
    "vllm_logs_string_decode_time": _c("WA-INT-3007", "log values"),
    # -- secrets ------------------------------------------------------------------------------
    "vllm_logs_bearer_token": _c("HTU-SEC-1402", "secret-shaped log values"),
    "vllm_logs_api_key_shaped": _c("HTU-SEC-1402", "secret-shaped log values"),
    "vllm_error_echoes_api_key": _c("HTU-ERR-4001", "secret in error message"),
    # -- declarations -------------------------------------------------------------------------
    "vllm_declares_cancel": _c("WA-INT-3002", "MUST declared away"),
    "vllm_declares_deadline": _c("ADAPT-3002", "MUST declared away"),
    "vllm_declares_tls": _c("HTU-SEC-1401", "MUST declared away"),
    # -- raising, grammar, attribution --------------------------------------------------------
    "vllm_raises_midstream": _c("ADAPT-3002", "raising adapter"),
    "vllm_raises_in_worker": _c("WKR-1003", "raising adapter behind the worker bridge"),
    # The facade isolates a raising adapter (issue 16 item 5): the task ends with ADAPTER_BUG, so
    # what fails is the adapter's own error mapping, seen through the facade scenarios.
    "vllm_raises_behind_facade": _c(
        "ADAPT-3002", "raising adapter behind the facade", run=("ORCH-3407",)
    ),
    "vllm_raises_in_health": _c("ADAPT-3000", "raising adapter"),
    "vllm_health_always_ready": _c("ADAPT-3000", "health"),
    "vllm_double_end": _c("WA-INT-3001", "stream grammar"),
    "vllm_index_from_one": _c(
        "WA-INT-3001",
        "index bug fails only its requirement",
        not_failed=("HTU-SEC-1401",),
    ),
    "vllm_long_stream_timeouts": _c("ADAPT-3005", "timeouts"),
}

_VLLM_CLASSES: dict[str, Any] = {
    "vllm_drops_max_tokens": _v.DropsMaxTokens,
    "vllm_max_tokens_off_by_one": _v.MaxTokensOffByOne,
    "vllm_caps_max_tokens": _v.CapsMaxTokens,
    "vllm_drops_stop": _v.DropsStop,
    "vllm_keeps_one_stop": _v.StopAsString,
    "vllm_drops_seed": _v.DropsSeed,
    "vllm_fixed_seed": _v.FixedSeed,
    "vllm_truncates_prompt": _v.TruncatesPrompt,
    "vllm_prefixes_prompt": _v.PrefixesPrompt,
    "vllm_chat_adds_system_message": _v.ChatAddsSystemMessage,
    "vllm_no_greedy_under_strict": _v.NoGreedyUnderStrict,
    "vllm_drops_engine_params": _v.DropsEngineParams,
    "vllm_static_engine_version": _v.StaticEngineVersion,
    "vllm_version_changes_after_submit": _v.VersionChangesAfterSubmit,
    "vllm_version_counter": _v.VersionCounter,
    "vllm_started_wrong_version": _v.StartedWrongVersion,
    "vllm_started_no_seed": _v.StartedNoSeed,
    "vllm_slow_cancel": _v.SlowCancelEnd,
    "vllm_cancel_ends_in_error": _v.CancelEndsInError,
    "vllm_cancel_stop_reason_eos": _v.CancelStopReasonEos,
    "vllm_cancel_tokens_out_planned": _v.CancelTokensOutPlanned,
    "vllm_cancel_only_filters": _v.CancelOnlyFilters,
    "vllm_midstream_error_as_internal": _v.MidstreamErrorAsInternal,
    "vllm_error_retriable_flipped": _v.ErrorRetriableFlipped,
    "vllm_drops_retry_after": _v.DropsRetryAfter,
    "vllm_decode_timeout_as_reset": _v.DecodeTimeoutAsReset,
    "vllm_invalid_params_retriable": _v.InvalidParamsRetriable,
    "vllm_negative_tokens_out": _v.NegativeTokensOut,
    "vllm_tokens_out_off_by_one": _v.TokensOutOffByOne,
    "vllm_negative_decode_time": _v.NegativeDecodeTime,
    "vllm_usage_disagrees": _v.UsageDisagrees,
    "vllm_metrics_as_strings": _v.MetricsAsStrings,
    "vllm_metrics_with_none": _v.MetricsWithNone,
    "vllm_metrics_nested": _v.MetricsNested,
    "vllm_logs_wrong_tokens_out": _v.LogsWrongTokensOut,
    "vllm_logs_no_tokens_in": _v.LogsNoTokensIn,
    "vllm_logs_session_as_job": _v.LogsSessionAsJob,
    "vllm_logs_string_decode_time": _v.LogsStringDecodeTime,
    "vllm_logs_bearer_token": _v.LogsBearerToken,
    "vllm_logs_api_key_shaped": _v.LogsApiKeyShaped,
    "vllm_error_echoes_api_key": _v.ErrorEchoesApiKey,
    "vllm_declares_cancel": _v.DeclaresCancel,
    "vllm_declares_deadline": _v.DeclaresDeadline,
    "vllm_declares_tls": _v.DeclaresTls,
    "vllm_raises_midstream": _v.RaisesAfterFirstToken,
    "vllm_raises_in_worker": _v.RaisesAfterFirstToken,
    "vllm_raises_behind_facade": _v.RaisesAfterFirstToken,
    "vllm_raises_in_health": _v.RaisesInHealth,
    "vllm_health_always_ready": _v.HealthAlwaysReady,
    "vllm_double_end": _v.DoubleEnd,
    "vllm_index_from_one": _v.IndexFromOne,
    "vllm_long_stream_timeouts": _v.LongStreamTimeouts,
}
for _name, _cls in _VLLM_CLASSES.items():
    globals()[_name] = _v.factory(_cls)

#: factory name -> requirement the suite must fail it on
EXPECTED: dict[str, str] = {name: case.want for name, case in CASES.items()}
