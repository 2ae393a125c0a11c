"""The one stream lifecycle (issue 17.3) on a frame source of its own: every step's contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from llorch_conformance.adapters._base import wire_correlation_id
from llorch_conformance.adapters._lifecycle import (
    FrameSource,
    StreamAdapter,
    StreamRun,
    StreamState,
)
from llorch_conformance.adapters.api import TokenEvent, WorkerError
from llorch_conformance.adapters.http_util import HttpClientConfig

from .conftest import collect, make_request

pytestmark = pytest.mark.anyio

FAST = HttpClientConfig(first_byte_timeout_s=0.3, inter_chunk_timeout_s=0.3)


class ListSource(FrameSource):
    """Frames from a list; ``("sleep", s)`` waits, ``("raise", exc)`` raises, dicts set counts."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)
        self.closed = 0

    async def open(self, run: StreamRun) -> WorkerError | None:
        return None

    async def read(self) -> Sequence[Any] | None:
        if not self.items:
            return None
        item = self.items.pop(0)
        if isinstance(item, tuple) and item[0] == "sleep":
            await anyio.sleep(item[1])
            return ()
        if isinstance(item, tuple) and item[0] == "raise":
            raise item[1]
        return (item,)

    def parse(self, frame: Any, st: StreamState) -> str | None:
        if isinstance(frame, dict):
            st.prompt_tokens = frame.get("prompt", st.prompt_tokens)
            st.completion_tokens = frame.get("completion", st.completion_tokens)
            st.done = frame.get("done", False)
            return None
        return str(frame)

    async def aclose(self) -> None:
        self.closed += 1


class Adapter(StreamAdapter):
    engine = "list"

    def __init__(self, finalize_raises: bool = False) -> None:
        self._init_stream(
            http=FAST,
            retry=None,
            pool_id="p",
            replica_id="r",
            sampler_profile_version="v1",
            metrics=None,
            logger=__import__("logging").getLogger("test.lifecycle"),
        )
        self.finalize_raises = finalize_raises

    def _finalize(self, st: StreamState, request: Any, emitted: int) -> None:
        if self.finalize_raises:
            raise KeyError("a dialect bug")


async def run(items: Sequence[Any], adapter: Adapter | None = None, **req: Any) -> list[TokenEvent]:
    a = adapter or Adapter()
    return await collect(a._run(make_request(**req), ListSource(items)))


def kinds(events: list[TokenEvent]) -> list[str]:
    return [e.kind for e in events]


async def test_frames_become_started_tokens_metrics_end() -> None:
    events = await run(["a", "b", {"prompt": 2, "completion": 2, "done": True}])
    assert kinds(events) == ["started", "token", "token", "metrics", "end"]
    assert [e.data["i"] for e in events if e.kind == "token"] == [0, 1]
    assert events[-1].data["usage"] == {"prompt_tokens": 2, "completion_tokens": 2}


async def test_eof_before_the_terminal_frame_is_a_reset() -> None:
    events = await run(["a"])
    assert kinds(events) == ["started", "token", "error"]
    assert events[-1].data["code"] == "WORKER_RESET"


async def test_silence_past_the_timeout_and_the_deadline_are_told_apart() -> None:
    silent = await run(["a", ("sleep", 5)])
    assert silent[-1].data["code"] == "DECODE_TIMEOUT"
    late = await run(["a", ("sleep", 0.2), ("sleep", 0.2), ("sleep", 5)], deadline_ms=300)
    assert late[-1].data["code"] == "DEADLINE_UNMET"


@pytest.mark.parametrize(
    "counts",
    [{"prompt": -1}, {"completion": -3}, {"prompt": 10**30}, {"completion": 2**31}],
    ids=["negative-prompt", "negative-completion", "absurd-prompt", "past-int32"],
)
async def test_impossible_counts_never_reach_end_usage(counts: dict[str, int]) -> None:
    events = await run(["a", {**counts, "done": True}])
    assert kinds(events)[-1] == "error" and "end" not in kinds(events)
    assert events[-1].data["code"] == "INTERNAL"
    assert "impossible" in events[-1].data["message"]
    assert len(events[-1].data["message"]) < 120


async def test_an_impossible_tokens_in_ends_the_stream_before_started() -> None:
    events = await run([{"prompt": -5}, "a", {"done": True}])
    assert kinds(events) == ["error"]


async def test_an_exception_anywhere_is_one_terminal_adapter_bug_event() -> None:
    in_read = await run(["a", ("raise", KeyError("logprobs"))])
    assert kinds(in_read) == ["started", "token", "error"]
    assert in_read[-1].data["message"].startswith("adapter bug: KeyError")
    in_finish = await run(["a", {"done": True}], adapter=Adapter(finalize_raises=True))
    assert kinds(in_finish) == ["started", "token", "error"]
    assert in_finish[-1].data["code"] == "INTERNAL"


async def test_cancel_inside_a_read_ends_with_cancelled_and_closes_the_source() -> None:
    adapter = Adapter()
    source = ListSource(["a", ("sleep", 5), "b"])
    events: list[TokenEvent] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for ev in adapter._run(make_request(), source):
                events.append(ev)

        tg.start_soon(consume)
        # wait until it is inside the 5 s read, however slowly a loaded machine gets there
        with anyio.fail_after(30):
            while len(events) < 2:
                await anyio.sleep(0.01)
        with anyio.fail_after(10):
            await adapter.cancel("t-1")
    assert kinds(events) == ["started", "token", "end"]
    assert events[-1].data["stop_reason"] == "cancelled"
    assert source.closed >= 1 and adapter.in_flight == 0


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("req-123_abc.DEF", "req-123_abc.DEF"),
        ("tâche ü", "t%C3%A2che%20%C3%BC"),
        ("a\r\nX-Evil: 1", "a%0D%0AX-Evil:%201"),
        ("lone\ud800", "lone\\ud800"),
        ("x" * 300, "x" * 256),
    ],
    ids=["ascii", "non-ascii", "crlf", "lone-surrogate", "long"],
)
def test_a_correlation_id_travels_as_visible_ascii(given: str, sent: str) -> None:
    out = wire_correlation_id(given)
    assert out == sent
    assert out.isascii() and out.isprintable() and " " not in out and len(out) <= 256
