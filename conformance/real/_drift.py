"""Drift check: one probe set against the real ``llama-server`` and the llama.cpp mock.

Mocks drift from the engines they copy. This module sends the *same* probes to both, records
them as cassette exchanges (:mod:`mock_engines._cassette`, so the evidence is replayable) and
compares what an adapter could notice:

* **status codes** and the response **media type** — critical when they differ;
* **framing** of streams: the ``data:`` prefix style, the terminal frame (``[DONE]`` or none),
  the kind of the last frame, error frames — critical;
* **key sets and value types** of every JSON body and every SSE frame, flattened to paths
  (``choices[].delta.content``). Frames are grouped by role (``partial``, ``final``, ``done``,
  ``error``) so a stream's first and last frames are compared with their counterparts. A key the
  real engine has and the mock lacks is *major* (*critical* on the paths adapters read, listed
  in :data:`CRITICAL_PATHS`); a key only the mock has is *minor*; a type mismatch is critical on
  a critical path, else major; ``null`` against a value is *info* (values depend on the model);
* **error envelopes**: the shape (above) and the ``error.type``/``error.code`` values — critical;
* **cancel by disconnect**: after the client drops a stream, every slot must be idle again;
* **token counting**: whether ``tokens_predicted`` ever rises by more than one between frames
  (the real server does when it holds back partial UTF-8) — major, the mock never does;
* **keep-alive after a stream**: whether the engine closes the connection after a streamed
  response (the real server does, though it advertises ``Keep-Alive``) — major;
* **health during loading**: the first 503 the real server answered while loading (if the
  start was slow enough to catch one) against the mock's loading answer.

Severities: ``critical`` fails the check; ``major`` and ``minor`` are reported; ``info`` is
context. The report is JSON and Markdown, one line per finding with the probe and field path.
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

from mock_engines._cassette import Cassette, Exchange, record_exchange

__all__ = [
    "CRITICAL_PATHS",
    "SEVERITIES",
    "DriftItem",
    "DriftReport",
    "compare_cassettes",
    "probe_llamacpp",
]

SEVERITIES = ("critical", "major", "minor", "info")

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
    }
)


@dataclass(frozen=True, slots=True)
class DriftItem:
    probe: str
    path: str
    severity: str
    kind: str  # status | media_type | framing | missing_in_mock | extra_in_mock | type | value
    real: Any = None
    mock: Any = None
    note: str = ""


@dataclass(slots=True)
class DriftReport:
    real_version: str
    mock_version: str
    items: list[DriftItem] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)

    def by_severity(self, severity: str) -> list[DriftItem]:
        return [i for i in self.items if i.severity == severity]

    @property
    def critical(self) -> list[DriftItem]:
        return self.by_severity("critical")

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_severity(s)) for s in SEVERITIES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "real_version": self.real_version,
            "mock_version": self.mock_version,
            "probes": self.probes,
            "counts": self.counts(),
            "items": [asdict(i) for i in self.items],
        }

    def to_markdown(self) -> str:
        c = self.counts()
        lines = [
            "# Drift report: llama.cpp mock vs real llama-server",
            "",
            f"- real engine: `{self.real_version}`",
            f"- mock engine: `{self.mock_version}`",
            f"- probes: {len(self.probes)} ({', '.join(self.probes)})",
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
# Probes
# ---------------------------------------------------------------------------------------------

_GEN = {"prompt": "Hello world", "n_predict": 32, "seed": 42, "temperature": 0}
_CHAT = {
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 8,
    "seed": 42,
    "temperature": 0,
}


async def probe_llamacpp(
    base_url: str,
    *,
    loading: Callable[[], Awaitable[Exchange | None]] | None = None,
    request_timeout: float = 30.0,
) -> Cassette:
    """Run the probe set against a llama.cpp-speaking engine and return it as a cassette.

    ``loading`` produces the "health while loading" exchange (engine-specific: the real server's
    first 503 during start-up, the mock's ``engine.loading`` fault); ``None`` skips it.
    """
    cas = Cassette(dialect="llamacpp", engine_url=base_url)
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=request_timeout, limits=limits, trust_env=False
    ) as c:
        if loading is not None:
            ex = await loading()
            if ex is not None:
                ex.label = "health.loading"
                cas.exchanges.append(ex)

        async def rec(label: str, method: str, path: str, **kw: Any) -> Exchange:
            ex = await record_exchange(c, method, path, label=label, **kw)
            cas.exchanges.append(ex)
            return ex

        await rec("health", "GET", "/health")
        props = await rec("props", "GET", "/props")
        await rec("slots", "GET", "/slots")
        await rec("metrics", "GET", "/metrics")
        await rec("models", "GET", "/v1/models")
        await rec("completion", "POST", "/completion", json_body=dict(_GEN, stream=False))
        await rec("completion.stream", "POST", "/completion", json_body=dict(_GEN, stream=True))
        await rec("bad.missing_prompt", "POST", "/completion", json_body={"n_predict": 4})
        await rec(
            "bad.json",
            "POST",
            "/completion",
            content=b'{"prompt": "x",',
            headers={"content-type": "application/json"},
        )
        await rec("bad.route", "GET", "/no-such-route")
        await rec("oai.chat", "POST", "/v1/chat/completions", json_body=_CHAT)
        await rec(
            "oai.chat.stream",
            "POST",
            "/v1/chat/completions",
            json_body=dict(_CHAT, stream=True, stream_options={"include_usage": True}),
        )
        await rec(
            "oai.completions.stream",
            "POST",
            "/v1/completions",
            json_body={"prompt": "Hello", "max_tokens": 6, "seed": 1, "stream": True},
        )
        await rec("oai.chat.bad", "POST", "/v1/chat/completions", json_body={"max_tokens": 2})
        await rec(
            "cancel.stream",
            "POST",
            "/completion",
            json_body=dict(_GEN, n_predict=100, stream=True),
            disconnect_after_chunks=1,
        )
        # After the disconnect every slot must become idle again (bounded wait).
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
        await rec("health.after", "GET", "/health")
    # The real server's close is intermittent (it raced ~1 request in 4 in bench_real_engine):
    # try a few streams and report whether any connection was closed.
    seen = [await _closes_after_stream(base_url) for _ in range(5)]
    cas.notes["closes_after_stream"] = (
        None if all(x is None for x in seen) else any(x is True for x in seen)
    )
    if props.status == 200:
        with contextlib.suppress(ValueError):
            cas.engine_version = str(json.loads(props.body).get("build_info", ""))
    return cas


async def _closes_after_stream(base_url: str) -> bool | None:
    """Does the engine close a keep-alive connection right after a streamed response?

    Raw socket, one streamed ``/completion``; right after the chunked terminator the same
    connection is reused for ``GET /health``. True when that reuse gets no HTTP answer (closed
    or reset). ``None`` when the probe itself could not run.
    """
    host, _, port = base_url.removeprefix("http://").partition(":")
    body = json.dumps(dict(_GEN, stream=True)).encode()
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


def _flatten(v: Any, prefix: str, out: dict[str, set[str]]) -> None:
    out.setdefault(prefix or "$", set()).add(_type(v))
    if isinstance(v, dict):
        for k, x in v.items():
            _flatten(x, f"{prefix}.{k}" if prefix else str(k), out)
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
                        if role == "error" and isinstance(obj.get("error"), dict):
                            sh.values["error.type"] = obj["error"].get("type")
                            sh.values["error.code"] = obj["error"].get("code")
                sh.terminal = role
        return sh
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        sh = _Shape("text", ct)
        if ct.startswith("text/plain"):  # Prometheus: compare the series names as keys
            names = {
                ln.split(b" ")[0].split(b"{")[0].decode("latin-1"): {"series"}
                for ln in body.splitlines()
                if ln and not ln.startswith(b"#")
            }
            sh.roles["body"] = names
        return sh
    sh = _Shape("json", ct)
    _flatten(obj, "", sh.roles.setdefault("body", {}))
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
            out.append(
                DriftItem(
                    label,
                    f"sse.frames[{role}]",
                    sev,
                    "framing",
                    "present" if real_has else "absent",
                    "absent" if real_has else "present",
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
    rep = DriftReport(real.engine_version, mock.engine_version)
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
