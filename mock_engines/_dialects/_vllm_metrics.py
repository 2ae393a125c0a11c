"""vLLM 0.32.0's ``/metrics`` exposition, family by family, filled from the mock engine's counters.

Layout as prometheus_client writes it for vLLM (measured on a real 0.32.0 server): every counter
``X`` is exposed as ``X_total`` plus a ``X_created`` gauge; histograms carry their ``_bucket``
series (the real bucket bounds, ``le="+Inf"`` last), ``_count``, ``_sum`` and a ``_created``
gauge; labels ``engine="0"`` and ``model_name``. Values the mock has no notion of (prefix cache,
preemptions, FLOPs) are zero; request histograms are filled from the engine's request counters
(one observation per finished request, at the measured mean). The gc/platform/process families
are this process's own, as prometheus_client's default collectors report them. The FastAPI
instrumentator's ``http_*`` families are filled from the engine's journal (every request but
``/metrics`` and the mock's control paths: handler = the matched route or ``none``, status
class, request/response sizes, duration from arrival to the last byte).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import sys
import time

from .._wire import CONTROL_PREFIX, EngineView

__all__ = ["render_metrics"]

_TOKENS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
_ITER = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)
_TTFT = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_ITL = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
_PHASE = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_N = (1.0, 2.0, 5.0, 10.0, 20.0)
_PREEMPT = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)


def _fmt(v: float) -> str:
    return repr(float(v))


class _Out:
    def __init__(self, labels: str, created: float) -> None:
        self.lines: list[str] = []
        self.labels = labels
        self.created = created

    def _lab(self, extra: str = "") -> str:
        parts = [p for p in (self.labels, extra) if p]
        return "{" + ",".join(parts) + "}"

    def gauge(self, name: str, help_text: str, values: list[tuple[str, float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        self.lines += [f"{name}{self._lab(extra)} {_fmt(v)}" for extra, v in values]

    def counter(self, name: str, help_text: str, values: list[tuple[str, float]]) -> None:
        self.lines += [f"# HELP {name}_total {help_text}", f"# TYPE {name}_total counter"]
        self.lines += [f"{name}_total{self._lab(extra)} {_fmt(v)}" for extra, v in values]
        self.lines += [f"# HELP {name}_created {help_text}", f"# TYPE {name}_created gauge"]
        self.lines += [
            f"{name}_created{self._lab(extra)} {_fmt(self.created)}" for extra, _ in values
        ]

    def histogram(
        self, name: str, help_text: str, bounds: tuple[float, ...], count: int, total: float
    ) -> None:
        """``count`` observations of mean ``total / count`` (all in one bucket)."""
        mean = total / count if count else 0.0
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for b in bounds:
            c = count if count and mean <= b else 0
            self.lines.append(f"{name}_bucket{self._lab(f'le={_q(_fmt(b))}')} {_fmt(c)}")
        self.lines.append(f"{name}_bucket{self._lab('le=' + _q('+Inf'))} {_fmt(count)}")
        self.lines.append(f"{name}_count{self._lab()} {_fmt(count)}")
        self.lines.append(f"{name}_sum{self._lab()} {_fmt(total)}")
        self.lines += [f"# HELP {name}_created {help_text}", f"# TYPE {name}_created gauge"]
        self.lines.append(f"{name}_created{self._lab()} {_fmt(self.created)}")


def _q(s: str) -> str:
    return '"' + s + '"'


def _process_families(ctx: EngineView) -> list[str]:
    """prometheus_client's default collectors (gc, platform, process), from this process."""
    lines = []
    stats = gc.get_stats()
    for name, key, help_text in (
        ("python_gc_objects_collected", "collected", "Objects collected during gc"),
        ("python_gc_objects_uncollectable", "uncollectable", "Uncollectable objects found during GC"),
        ("python_gc_collections", "collections", "Number of times this generation was collected"),
    ):  # fmt: skip
        lines += [f"# HELP {name}_total {help_text}", f"# TYPE {name}_total counter"]
        lines += [
            f'{name}_total{{generation="{i}"}} {_fmt(g.get(key, 0))}' for i, g in enumerate(stats)
        ]
    v = sys.version_info
    lines += [
        "# HELP python_info Python platform information",
        "# TYPE python_info gauge",
        f'python_info{{implementation="{platform.python_implementation()}",major="{v.major}",'
        f'minor="{v.minor}",patchlevel="{v.micro}",version="{v.major}.{v.minor}.{v.micro}"}} 1.0',
    ]
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            vm_pages, rss_pages = (int(x) for x in f.read().split()[:2])
    except OSError:
        vm_pages = rss_pages = 0
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    for name, kind, help_text, value in (
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vm_pages * page),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss_pages * page),
        ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", round(ctx.started_at, 2)),
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", time.process_time()),
        ("process_open_fds", "gauge", "Number of open file descriptors.", fds),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", soft),
    ):  # fmt: skip
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {_fmt(value)}"]
    return lines


_HIGHR = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
)  # fmt: skip
_LOWR = (0.1, 0.5, 1.0)


def _http_families(ctx: EngineView) -> list[str]:
    """prometheus-fastapi-instrumentator's families, as vLLM's API server exposes them."""

    requests: dict[tuple[str, str, str], int] = {}
    sizes: dict[str, list[float]] = {}  # handler -> [count, request bytes, response bytes]
    durations: dict[tuple[str, str], list[float]] = {}
    all_durations: list[float] = []
    for e in ctx.journal.entries:
        if e.status is None or e.path == "/metrics" or e.path.startswith(CONTROL_PREFIX):
            continue
        handler = e.route or "none"
        key = (handler, e.method, f"{e.status // 100}xx")
        requests[key] = requests.get(key, 0) + 1
        row = sizes.setdefault(handler, [0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += e.body_size
        row[2] += sum(len(f) for f in e.frames)
        took = max(0.0, (e.t_last_byte or e.t_received) - e.t_received)
        durations.setdefault((handler, e.method), []).append(took)
        all_durations.append(took)
    created = _fmt(ctx.started_at)
    lines = ["# HELP http_requests_total Total number of requests by method, status and handler."]
    lines.append("# TYPE http_requests_total counter")
    for (h, m, st), n in requests.items():
        lines.append(f'http_requests_total{{handler="{h}",method="{m}",status="{st}"}} {_fmt(n)}')
    lines.append(
        "# HELP http_requests_created Total number of requests by method, status and handler."
    )
    lines.append("# TYPE http_requests_created gauge")
    for h, m, st in requests:
        lines.append(f'http_requests_created{{handler="{h}",method="{m}",status="{st}"}} {created}')
    for name, col, help_text in (
        ("http_request_size_bytes", 1, "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated."),
        ("http_response_size_bytes", 2, "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated."),
    ):  # fmt: skip
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} summary"]
        for h, row in sizes.items():
            lines.append(f'{name}_count{{handler="{h}"}} {_fmt(row[0])}')
            lines.append(f'{name}_sum{{handler="{h}"}} {_fmt(row[col])}')
        lines += [f"# HELP {name}_created {help_text}", f"# TYPE {name}_created gauge"]
        lines += [f'{name}_created{{handler="{h}"}} {created}' for h in sizes]

    def hist(
        name: str, help_text: str, bounds: tuple[float, ...], series: dict[str, list[float]]
    ) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} histogram"])
        for labels, values in series.items():
            sep = "," if labels else ""
            for b in (*bounds, float("inf")):
                le = "+Inf" if b == float("inf") else _fmt(b)
                c = sum(1 for v in values if v <= b)
                lines.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {_fmt(c)}')
            lab = "{" + labels + "}" if labels else ""
            lines.append(f"{name}_count{lab} {_fmt(len(values))}")
            lines.append(f"{name}_sum{lab} {_fmt(sum(values))}")
        lines.extend([f"# HELP {name}_created {help_text}", f"# TYPE {name}_created gauge"])
        for labels in series:
            lab = "{" + labels + "}" if labels else ""
            lines.append(f"{name}_created{lab} {created}")

    hist(
        "http_request_duration_highr_seconds",
        "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
        _HIGHR,
        {"": all_durations} if all_durations else {},
    )
    hist(
        "http_request_duration_seconds",
        "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
        _LOWR,
        {f'handler="{h}",method="{m}"': v for (h, m), v in durations.items()},
    )
    return lines


def render_metrics(ctx: EngineView) -> str:
    """The whole exposition for one engine (``text/plain; version=1.0.0``)."""
    st = ctx.stats
    pool = ctx.slots
    model = ctx.model.replace("\\", "\\\\").replace('"', '\\"')
    out = _Out(f'engine="0",model_name="{model}"', ctx.started_at)
    out.lines += _process_families(ctx)
    zero = [("", 0.0)]
    for name, help_text in (
        ("vllm:estimated_flops_per_gpu", "Estimated number of floating point operations per GPU (for Model Flops Utilization calculations)."),
        ("vllm:estimated_read_bytes_per_gpu", "Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations)."),
        ("vllm:estimated_write_bytes_per_gpu", "Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations)."),
    ):  # fmt: skip
        out.counter(name, help_text, zero)
    out.gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        [("", pool.busy)],
    )
    out.gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        [("", pool.queued)],
    )
    out.gauge(
        "vllm:num_requests_waiting_by_reason",
        "Number of waiting requests by reason.",
        [('reason="capacity"', pool.queued), ('reason="deferred"', 0.0)],
    )
    out.gauge(
        "vllm:engine_sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake.",
        [('sleep_state="awake"', 1.0), ('sleep_state="weights_offloaded"', 0.0), ('sleep_state="discard_all"', 0.0)],
    )  # fmt: skip
    out.gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        [("", pool.busy / pool.slots)],
    )
    prompt = float(st.prompt_tokens_total)
    for name, help_text, vals in (
        ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", [("", prompt)]),
        ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", zero),
        ("vllm:external_prefix_cache_queries", "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.", zero),
        ("vllm:external_prefix_cache_hits", "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.", zero),
        ("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", zero),
        ("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", zero),
        ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", zero),
        ("vllm:prompt_tokens", "Number of prefill tokens processed.", [("", prompt)]),
        ("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", [('source="local_compute"', prompt), ('source="local_cache_hit"', 0.0), ('source="external_kv_transfer"', 0.0)]),
        ("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", zero),
        ("vllm:prompt_tokens_cached_by_source", "Prefix-cache hit tokens by the cache tier that supplied them.", [(f'source="{s}"', 0.0) for s in ("device", "host", "p2p", "disk", "external_unspecified")]),
        ("vllm:generation_tokens", "Number of generation tokens processed.", [("", float(st.tokens_predicted_total))]),
        ("vllm:request_success", "Count of successfully processed requests.", [
            ('finished_reason="stop"', float(st.finished_stop + st.finished_eos)),
            ('finished_reason="length"', float(st.finished_length)),
            ('finished_reason="abort"', 0.0),
            ('finished_reason="error"', 0.0),
            ('finished_reason="repetition"', 0.0),
        ]),
    ):  # fmt: skip
        out.counter(name, help_text, vals)
    model_only = _Out(f'model_name="{model}"', ctx.started_at)
    model_only.counter(
        "vllm:admission_rejections",
        "Number of admission attempts rejected by a queue limit, by reason.",
        [('reason="max_num_queued_reqs"', 0.0), ('reason="max_num_queued_tokens"', 0.0)],
    )
    out.lines += model_only.lines
    n = st.requests_success
    gen = float(st.tokens_predicted_total)
    decode = st.predicted_seconds_total
    for name, help_text, bounds, total in (
        ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", _TOKENS, prompt),
        ("vllm:request_generation_tokens", "Number of generation tokens processed.", _TOKENS, gen),
        ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", _ITER, prompt + gen),
        ("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.", _TOKENS, gen),
        ("vllm:request_params_n", "Histogram of the n request parameter.", _N, float(n)),
        ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", _TOKENS, gen),
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", _TTFT, st.ttft_sum),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", _ITL, decode),
        ("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", _ITL, decode),
        ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", _PHASE, st.prompt_seconds_total + decode),
        ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", _PHASE, 0.0),
        ("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", _PHASE, st.prompt_seconds_total + decode),
        ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", _PHASE, st.prompt_seconds_total),
        ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", _PHASE, decode),
        ("vllm:request_num_preemptions", "Histogram of the number of times a request was preempted.", _PREEMPT, 0.0),
        ("vllm:request_prefill_kv_computed_tokens", "Histogram of new KV tokens computed during prefill (excluding cached tokens).", _TOKENS, prompt),
    ):  # fmt: skip
        out.histogram(name, help_text, bounds, n, total)
    out.gauge(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        [('block_size="128",cache_dtype="auto",enable_prefix_caching="True"', 1.0)],
    )
    out.lines += _http_families(ctx)
    return "\n".join(out.lines) + "\n"
