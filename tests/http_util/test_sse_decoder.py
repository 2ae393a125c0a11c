"""SSEDecoder: every WHATWG rule by example, then chunking-invariance and robustness properties."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llorch_conformance.adapters.api import SSEDecodeError
from llorch_conformance.adapters.http_util import SSEDecoder, SSEEvent

from ._reference import reference_events


def decode(*chunks: bytes, **limits: int) -> tuple[list[SSEEvent], SSEDecoder]:
    dec = SSEDecoder(**limits)
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.close())
    return out, dec


def datas(*chunks: bytes) -> list[str]:
    return [e.data for e in decode(*chunks)[0]]


# --- line endings ----------------------------------------------------------------------------
@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_ending_ends_lines(eol: bytes) -> None:
    raw = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert datas(raw) == ["a\nb", "c"]


def test_mixed_line_endings_in_one_stream() -> None:
    assert datas(b"data: a\rdata: b\r\n\ndata: c\n\r\n") == ["a\nb", "c"]


def test_cr_at_chunk_end_and_lf_at_next_start_are_one_line_end() -> None:
    # Read as two line ends, the LF would be a blank line and dispatch "a" alone.
    assert datas(b"data: a\r", b"\ndata: b\n\n") == ["a\nb"]


def test_cr_then_empty_chunk_then_lf_is_still_one_line_end() -> None:
    assert datas(b"data: a\r", b"", b"\ndata: b\n\n") == ["a\nb"]


def test_lf_after_a_cr_line_end_that_was_followed_by_text_is_a_new_line() -> None:
    # CR ends "data: a"; "x" follows; the LF later belongs to "x", not to the CR.
    assert datas(b"data: a\r", b"data: x\n\n") == ["a\nx"]


def test_only_cr_and_lf_end_lines_not_unicode_separators() -> None:
    text = "a\u2028b\u0085c\u2029d\x0be\x0cf\x1cg"
    (event,), _ = decode(f"data: {text}\n\n".encode())
    assert event.data == text


# --- BOM ---------------------------------------------------------------------------------------
def test_leading_bom_is_stripped() -> None:
    assert datas(b"\xef\xbb\xbfdata: a\n\n") == ["a"]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_bom_split_across_chunks_is_stripped(cut: int) -> None:
    raw = b"\xef\xbb\xbfdata: a\n\n"
    assert datas(raw[:cut], raw[cut:]) == ["a"]


def test_bom_stripped_only_once() -> None:
    # The second BOM becomes part of the field name, which is then unknown.
    assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == ["b"]


def test_bom_later_in_stream_is_data() -> None:
    assert datas(b"data: \xef\xbb\xbfa\n\n") == ["\ufeffa"]


# --- fields --------------------------------------------------------------------------------
def test_comments_are_ignored_and_counted() -> None:
    events, dec = decode(b":\n\n: keep-alive\ndata: a\n:x\n\n")
    assert [e.data for e in events] == ["a"]
    assert dec.comments == 3


def test_one_optional_space_after_colon_is_removed() -> None:
    assert datas(b"data:a\n\n", b"data: a\n\n", b"data:  a\n\n") == ["a", "a", " a"]


def test_field_without_colon_has_empty_value() -> None:
    assert datas(b"data\n\n") == [""]
    assert datas(b"data\ndata\n\n") == ["\n"]


def test_empty_data_field_dispatches_empty_event() -> None:
    assert datas(b"data:\n\n") == [""]


def test_event_without_data_is_not_dispatched() -> None:
    events, _ = decode(b"event: ping\n\nid: 1\n\nretry: 5\n\n")
    assert events == []


def test_event_type_and_its_reset_after_dispatch() -> None:
    events, _ = decode(b"event: token\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\n")
    assert [(e.event, e.data) for e in events] == [
        ("token", "a"),
        ("message", "b"),
        ("message", "c"),
    ]


def test_event_type_reset_even_when_nothing_dispatched() -> None:
    events, _ = decode(b"event: x\n\ndata: a\n\n")
    assert [(e.event, e.data) for e in events] == [("message", "a")]


def test_last_event_id_persists_and_resets() -> None:
    events, dec = decode(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\n\n")
    assert [e.id for e in events] == ["7", "7", ""]
    assert dec.last_event_id == "8"


def test_id_containing_nul_is_ignored() -> None:
    events, _ = decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_id_before_any_is_none() -> None:
    ((event,), _) = decode(b"data: a\n\n")
    assert event == SSEEvent("message", "a", None, None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 007", 7),
        (b"retry: 1.5", None),
        (b"retry: -1", None),
        (b"retry: 1a", None),
        (b"retry: ", None),
        (b"retry:  15", None),  # only ONE space is removed; " 15" is not all digits
        ("retry: ١٢".encode(), None),  # Arabic-Indic digits are not ASCII digits
        (b"retry: " + b"9" * 5000, None),  # absurd: ignored, never a crash
    ],
)
def test_retry_accepts_ascii_digits_only(line: bytes, expected: int | None) -> None:
    events, dec = decode(line + b"\ndata: a\n\n")
    assert events[0].retry == expected
    assert dec.retry_ms == expected


def test_retry_belongs_to_its_event_block_but_persists_on_the_decoder() -> None:
    events, dec = decode(b"retry: 10\ndata: a\n\ndata: b\n\n")
    assert [e.retry for e in events] == [10, None]
    assert dec.retry_ms == 10


def test_unknown_fields_and_near_misses_are_ignored() -> None:
    assert datas(b"foo: bar\ndata : x\nDATA: y\nData: z\ndata: a\n\n") == ["a"]


def test_data_colon_inside_value_is_kept() -> None:
    assert datas(b'data: {"a": "b:c"}\n\n') == ['{"a": "b:c"}']


# --- UTF-8 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["é", "中", "😀", "a😀b中"])
def test_multibyte_character_split_at_every_byte(text: str) -> None:
    raw = f"data: {text}\n\n".encode()
    for cut in range(1, len(raw)):
        assert datas(raw[:cut], raw[cut:]) == [text], cut


def test_one_byte_at_a_time() -> None:
    raw = "\ufeffevent: tök\r\ndata: 😀\u2028x\r\r".encode()
    events, _ = decode(*(raw[i : i + 1] for i in range(len(raw))))
    assert events == [SSEEvent("tök", "😀\u2028x", None, None)]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert datas(b"data: a\xffb\xe2\x82\n\n") == ["a\ufffdb\ufffd"]


# --- end of stream -----------------------------------------------------------------------------
def test_close_discards_unfinished_event_and_reports_truncation() -> None:
    events, dec = decode(b"data: a\n\ndata: b\n")
    assert [e.data for e in events] == ["a"]
    assert dec.truncated


def test_close_discards_partial_line() -> None:
    events, dec = decode(b"data: a\n\ndata: b")
    assert [e.data for e in events] == ["a"]
    assert dec.truncated


def test_clean_end_is_not_truncated() -> None:
    _, dec = decode(b"data: a\n\n: bye\n")
    assert not dec.truncated


# --- limits ------------------------------------------------------------------------------------
def test_overlong_line_in_one_chunk_raises() -> None:
    with pytest.raises(SSEDecodeError, match="line longer than 64 bytes"):
        decode(b"data: " + b"x" * 100 + b"\n\n", max_line_bytes=64)


def test_overlong_partial_line_fed_in_pieces_raises_before_growing() -> None:
    dec = SSEDecoder(max_line_bytes=64)
    dec.feed(b"data: " + b"x" * 50)
    with pytest.raises(SSEDecodeError, match="line longer"):
        dec.feed(b"x" * 20)


def test_overlong_line_with_cr_endings_raises() -> None:
    with pytest.raises(SSEDecodeError, match="line longer"):
        decode(b"data: ok\r" + b"y" * 100 + b"\r\r", max_line_bytes=64)


def test_line_exactly_at_limit_is_fine() -> None:
    line = b"data: " + b"x" * 58
    assert len(line) == 64
    assert datas_limited(line + b"\n\n", max_line_bytes=64) == ["x" * 58]


def datas_limited(raw: bytes, **limits: int) -> list[str]:
    return [e.data for e in decode(raw, **limits)[0]]


def test_oversize_event_raises() -> None:
    raw = b"".join(b"data: " + b"x" * 30 + b"\n" for _ in range(10)) + b"\n"
    with pytest.raises(SSEDecodeError, match="event larger than 200 bytes"):
        decode(raw, max_event_bytes=200)


def test_event_size_counts_per_event_not_per_stream() -> None:
    raw = b"data: " + b"x" * 30 + b"\n\n"
    assert len(datas_limited(raw * 50, max_event_bytes=64)) == 50


def test_decoder_refuses_input_after_failure() -> None:
    dec = SSEDecoder(max_line_bytes=8)
    with pytest.raises(SSEDecodeError):
        dec.feed(b"data: 123456789\n")
    with pytest.raises(SSEDecodeError, match="already failed"):
        dec.feed(b"data: a\n\n")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_line_bytes=0)


# --- properties --------------------------------------------------------------------------------
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"),
        st.sampled_from(["\u2028", "\u2029", "\u0085", "é", "中", "😀", ":", " ", "\ufeff"]),
    ),
    max_size=12,
)


@dataclass
class _Block:
    event: str | None
    data: list[str]
    id: str | None
    comments: list[str]


_BLOCK = st.builds(
    _Block,
    event=st.one_of(st.none(), _TEXT),
    data=st.lists(_TEXT, max_size=4),
    id=st.one_of(st.none(), _TEXT),
    comments=st.lists(_TEXT, max_size=2),
)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A stream built from blocks with random line endings, and the events it must decode to."""
    blocks = draw(st.lists(_BLOCK, max_size=6))
    bom = draw(st.booleans())
    out: list[str] = ["\ufeff"] if bom else []
    prev_eol = ""
    expected: list[SSEEvent] = []
    last_id: str | None = None

    def emit(line: str) -> None:
        nonlocal prev_eol
        choices = ["\n", "\r", "\r\n"]
        if prev_eol == "\r" and line == "":
            choices = ["\r", "\r\n"]  # a lone LF here would merge with the previous CR
        eol = draw(st.sampled_from(choices))
        out.append(line + eol)
        prev_eol = eol

    def field(name: str, value: str) -> str:
        space = draw(st.booleans()) or value.startswith(" ")
        return f"{name}:{' ' if space else ''}{value}"

    for block in blocks:
        lines = [field("data", d) for d in block.data]
        if block.event is not None:
            lines.append(field("event", block.event))
        if block.id is not None:
            lines.append(field("id", block.id))
            last_id = block.id
        lines += [":" + c for c in block.comments]
        order = draw(st.permutations(lines))
        for line in order:
            emit(line)
        emit("")
        if block.data:
            data_in_order = [ln.split(":", 1)[1] for ln in order if ln.startswith("data:")]
            data_in_order = [v[1:] if v.startswith(" ") else v for v in data_in_order]
            expected.append(SSEEvent(block.event or "message", "\n".join(data_in_order), last_id))
    return "".join(out).encode("utf-8"), expected


def _cut(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in [*points, len(raw)]:
        pieces.append(raw[prev:p])
        prev = p
    return pieces


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(stream=_streams(), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_the_generated_events(
    stream: tuple[bytes, list[SSEEvent]], cuts: list[int]
) -> None:
    raw, expected = stream
    whole, dec_whole = decode(raw)
    assert whole == expected
    assert not dec_whole.truncated
    chunked, _ = decode(*_cut(raw, cuts))
    assert chunked == expected


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=_streams(),
    extra=st.lists(st.integers(min_value=0), max_size=40),
)
def test_byte_by_byte_and_every_cut_between_cr_and_lf(
    stream: tuple[bytes, list[SSEEvent]], extra: list[int]
) -> None:
    raw, expected = stream
    # Cut right after every CR (so CR and LF land in different chunks) plus random places.
    cuts = [i + 1 for i, b in enumerate(raw) if b == 0x0D] + extra
    assert decode(*_cut(raw, cuts))[0] == expected


_SSEISH = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.sampled_from(
            [
                b"data:",
                b"data: ",
                b"event:",
                b"id:",
                b"retry:",
                b"\r",
                b"\n",
                b"\r\n",
                b":",
                b"\xef\xbb\xbf",
                b"\x00",
                b"\xe2\x82",
                b"\xac",
                b"\xf0\x9f",
                b"12",
                b" ",
            ]
        ),
    ),
    max_size=40,
).map(b"".join)


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=200), _SSEISH), cuts=st.lists(st.integers(0), max_size=10))
def test_arbitrary_bytes_match_the_reference_for_any_chunking(raw: bytes, cuts: list[int]) -> None:
    expected, truncated = reference_events(raw)
    events, dec = decode(*_cut(raw, cuts))
    assert events == expected
    assert dec.truncated == truncated


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=300), _SSEISH), cuts=st.lists(st.integers(0), max_size=10))
def test_arbitrary_bytes_raise_nothing_but_sse_decode_error(raw: bytes, cuts: list[int]) -> None:
    dec = SSEDecoder(max_line_bytes=16, max_event_bytes=24)
    try:
        for piece in _cut(raw, cuts):
            dec.feed(piece)
        dec.close()
    except SSEDecodeError:
        pass


# --- fast paths (bulk run of lone data lines, one event per chunk) -------------------------------
def test_fast_path_events_are_genuine_frozen_sse_events() -> None:
    import dataclasses

    events, _ = decode(b"data: a\n\ndata: b\n\n", b"data: c\n\n")
    assert [e.data for e in events] == ["a", "b", "c"]
    for ev in events:
        assert type(ev) is SSEEvent
        assert ev == SSEEvent("message", ev.data) and hash(ev) == hash(SSEEvent("message", ev.data))
        with pytest.raises(dataclasses.FrozenInstanceError):
            ev.data = "x"  # type: ignore[misc]
        assert repr(ev) == f"SSEEvent(event='message', data={ev.data!r}, id=None, retry=None)"


def test_fast_paths_carry_the_last_event_id() -> None:
    events, _ = decode(b"id: 5\n\n", b"data: a\n\ndata: b\n\n", b"data: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "5"), ("b", "5"), ("c", "5")]


def test_fast_path_not_taken_with_pending_fields() -> None:
    # "event:" arrives in one chunk, its data in the next: the data must get the event name.
    events, _ = decode(b"event: tok\n", b"data: a\n\ndata: b\n\n")
    assert [(e.event, e.data) for e in events] == [("tok", "a"), ("message", "b")]


def test_mixed_prefixes_fall_back_to_the_general_path() -> None:
    assert datas(b"data:a\n\ndata: b\n\ndata:  c\n\n") == ["a", "b", " c"]
    assert datas(b"data: a\n\ndata:b\n\n") == ["a", "b"]
    assert datas(b"data: a\n\n\n\ndata: b\n\n") == ["a", "b"]


def test_fast_path_respects_the_event_limit() -> None:
    with pytest.raises(SSEDecodeError, match="event larger"):
        decode(b"data: " + b"x" * 40 + b"\n\n", max_event_bytes=16)
    with pytest.raises(SSEDecodeError, match="event larger"):
        decode(b"data: a\n\n" * 3 + b"data: " + b"x" * 40 + b"\n\n", max_event_bytes=16)


_DATA_ONLY = st.lists(
    st.tuples(st.sampled_from(["data:", "data: ", "data:  "]), _TEXT), min_size=1, max_size=20
).map(lambda evs: "".join(f"{p}{v}\n\n" for p, v in evs).encode())


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_DATA_ONLY, cuts=st.lists(st.integers(0), max_size=8))
def test_data_only_streams_match_the_reference(raw: bytes, cuts: list[int]) -> None:
    expected, _ = reference_events(raw)
    assert decode(*_cut(raw, cuts))[0] == expected
    # and one event per chunk, the live shape
    per_event = [p + b"\n\n" for p in raw.split(b"\n\n") if p]
    assert decode(*per_event)[0] == expected
