"""Redaction: the one ``****<fp6>`` style, every covered pattern, idempotence, headers and URLs."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.adapters.http_util import (
    HttpClientConfig,
    fp6,
    mask,
    redact,
    redact_headers,
    redact_url,
)


def test_fp6_vector_and_long_secret_rule() -> None:
    assert fp6("test") == "9f86d0"
    assert mask("test") == "****9f86d0"
    long = "a" * 9000
    expected = hashlib.sha256(b"a" * 8192 + b"[truncated]").hexdigest()[:6]
    assert fp6(long) == expected
    assert fp6("a" * 8192) == hashlib.sha256(b"a" * 8192).hexdigest()[:6]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The original http-util proof outputs (reference §2.4).
        (
            "INFO: Authorization: Bearer s3cr3t-token-xyz used for request",
            "INFO: Authorization: Bearer ****92e442 used for request",
        ),
        (
            "WARN: upstream header X-API-Key: key-1234-abcdef",
            "WARN: upstream header X-API-Key: ****43764d",
        ),
        ("api-key: key-1234-abcdef", "api-key: ****43764d"),
        ("sent Bearer s3cr3t-token-xyz to engine", "sent Bearer ****92e442 to engine"),
        (
            '{"api_key": "key-1234-abcdef", "max_tokens": 16}',
            '{"api_key": "****43764d", "max_tokens": 16}',
        ),
        ("token=s3cr3t-token-xyz&n=1", "token=****92e442&n=1"),
        ("password: key-1234-abcdef", "password: ****43764d"),
        ("client_secret=key-1234-abcdef", "client_secret=****43764d"),
        ("https://bob:key-1234-abcdef@host/x", "https://bob:****43764d@host/x"),
        ("https://s3cr3t-token-xyz@host/x", "https://****92e442@host/x"),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_openai_and_hf_keys_anywhere() -> None:
    key = "sk-proj-" + "A1b2" * 10
    hf = "hf_" + "x" * 30
    out = redact(f"using {key} and {hf}.")
    assert key not in out and hf not in out
    assert out == f"using {mask(key)} and {mask(hf)}."


def test_basic_and_raw_authorization_and_proxy_authorization() -> None:
    assert (
        redact("Authorization: Basic dXNlcjpwYXNz")
        == f"Authorization: Basic {mask('dXNlcjpwYXNz')}"
    )
    assert redact("authorization: rawcredential") == f"authorization: {mask('rawcredential')}"
    assert (
        redact("Proxy-Authorization: Bearer abcd1234")
        == f"Proxy-Authorization: Bearer {mask('abcd1234')}"
    )


def test_explicit_secrets_anywhere_longest_first() -> None:
    out = redact(
        "prompt mentions hunter2xyz and hunter2xyz-long", ["hunter2xyz", "hunter2xyz-long"]
    )
    assert out == f"prompt mentions {mask('hunter2xyz')} and {mask('hunter2xyz-long')}"


def test_short_explicit_secrets_are_ignored_and_empty_ok() -> None:
    assert redact("a b c", ["", "a"]) == "a b c"
    assert redact("", ["abcd"]) == ""


def test_ordinary_text_is_untouched() -> None:
    text = (
        '{"max_tokens": 64, "tokens_out": 5, "eos_token": "</s>", "n_tokens": 3, '
        '"keep_alive": 1, "monkey": "banana", "tokenizer": "x"} keys and tokens are fine'
    )
    assert redact(text) == text


def test_idempotent_on_examples() -> None:
    samples = [
        "Authorization: Bearer abc12345",
        "Authorization: abc12345",
        "X-API-Key: k1",
        '{"token": "abcdefgh", "secret": "x"}',
        "https://u:p@h/?api_key=1&sig=2",
        "sk-aaaaaaaaaaaaaaaaaaaa",
    ]
    for s in samples:
        once = redact(s, ["abcdefgh"])
        assert redact(once, ["abcdefgh"]) == once, s


# The mask alphabet itself is a plausible secret fragment: explicit secrets made of hex digits
# must not be re-masked inside an existing mask.
_PIECES = [
    *"abcdef0123456789 :=\"'&?@/*-_.",
    *["Bearer ", "Authorization", "X-API-Key", "token", "api_key", "https://", "sk-"],
    *["secret", "password", "****", "\n"],
]


@settings(deadline=None)
@given(
    text=st.lists(st.sampled_from(_PIECES), max_size=30).map("".join),
    secrets=st.lists(st.text(alphabet="abcdef0123456789*", min_size=4, max_size=8), max_size=3),
)
def test_idempotent_property(text: str, secrets: list[str]) -> None:
    once = redact(text, secrets)
    assert redact(once, secrets) == once


@settings(deadline=None)
@given(
    secret=st.text(alphabet=st.characters(whitelist_categories=["L", "N"]), min_size=8, max_size=30)
)
def test_given_secret_never_survives(secret: str) -> None:
    text = (
        f"x-api-key: {secret}\nAuthorization: Bearer {secret}\n"
        + f'{{"token": "{secret}"}} {secret}'
    )
    assert secret not in redact(text, [secret])


def test_redact_headers() -> None:
    headers = httpx.Headers(
        [
            ("Authorization", "Bearer s3cr3t-token-xyz"),
            ("X-API-Key", "key-1234-abcdef"),
            ("Cookie", "session=abc"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Upstream-Token", "tok-123456"),
            ("X-Client-Secret", "s"),
            ("Content-Type", "application/json"),
            ("Location", "https://u:pw12345@h/"),
            ("Keep-Alive", "timeout=5"),
        ]
    )
    out = redact_headers(headers)
    assert out["authorization"] == "Bearer ****92e442"
    assert out["x-api-key"] == "****43764d"
    assert out["cookie"] == mask("session=abc")
    assert out["set-cookie"] == mask("a=1, b=2")
    assert out["x-upstream-token"] == mask("tok-123456")
    assert out["x-client-secret"] == mask("s")
    assert out["content-type"] == "application/json"
    assert out["location"] == f"https://u:{mask('pw12345')}@h/"
    assert out["keep-alive"] == "timeout=5"
    assert redact_headers(out) == out
    assert redact_headers({"api-key": "k"}) == {"api-key": mask("k")}


def test_redact_url() -> None:
    url = "https://user:pa55word@api.example/v1?model=m&api_key=zz&X-Amz-Security-Token=t0k&sig=s#frag"
    out = redact_url(httpx.URL(url))
    assert out == (
        f"https://user:{mask('pa55word')}@api.example/v1?model=m&api_key={mask('zz')}"
        f"&X-Amz-Security-Token={mask('t0k')}&sig={mask('s')}#frag"
    )
    assert redact_url(out) == out
    assert redact_url("http://h/p") == "http://h/p"
    assert redact_url("http://h/p?max_tokens=5&flag") == "http://h/p?max_tokens=5&flag"


def test_client_config_repr_never_shows_secrets() -> None:
    config = HttpClientConfig(
        headers={"Authorization": "Bearer s3cr3t-token-xyz", "X-Trace": "1"},
        proxy="http://me:proxypass@proxy:3128",
    )
    text = repr(config) + str(config)
    assert "s3cr3t-token-xyz" not in text and "proxypass" not in text
    assert "****92e442" in text and "X-Trace" in text


_SHAPES = {
    "long-run": "x-" * 2000 + "key=abc",  # one long name run, the anchor at its end
    "many-anchors": "tokentoken" * 500 + "=v",  # one run, a thousand anchors
    "json": '{"a":1,' * 300 + '"API_KEY": "zz", "p": "u:p@h://x"}',
    "headers": "Authorization: Bearer t0k3n, proxy-authorization=basic x, X-Api-Key: k" * 50,
    "urls": "see https://user:pw@h/ and HTTPS://tok@h2/ and ftp://a:b@c" * 30,
    # a character that lowers to two: the whole-text path
    "dotted-I": "\u0130" + "token=abc " * 10,
    "dotted-I-shifts": "\u0130\u0130 id=1 \u0130 token=abc \u0130\u0130\u0130 key: x",
    "engine-folds": "\u017fecret=abc key \u017fig=s to\u212aen: t pa\u017f\u017fword=p credent\u0131als=c",
    "scheme-lengths": "b" * 32 + "://u:p@h " + "c" * 33 + "://u:q@h " + "d+" * 16 + "://u:r@h",
    "vendor": "sk-" + "a" * 40 + " hf_" + "B" * 25 + " xsk-" + "c" * 20,
    # each substitution moves what follows: the next pattern's places are found anew
    "shifts": "http://u:pw@h/ token=abc1 Authorization: x Bearer xyz12 api-key: k sk-" + "e" * 16,
}


@pytest.mark.parametrize("text", list(_SHAPES.values()), ids=list(_SHAPES))
def test_redact_equals_whole_text_substitution_on_shapes(text: str) -> None:
    from ._redact_reference import reference_redact

    assert redact(text) == reference_redact(text)
    assert redact(text, ["t0k3n"]) == reference_redact(text, ["t0k3n"])


def test_engine_folded_key_names_are_masked() -> None:
    # The regex engine reads KELVIN SIGN as k, LONG S as s, DOTLESS I as i: so does redact.
    text = "\u017fecret=abc1 key to\u212aen: abc2 pa\u017f\u017fword=abc3 credent\u0131als=abc4"
    assert not any(f"abc{i}" in redact(text) for i in range(1, 5))


def test_case_fold_facts_the_anchor_search_relies_on() -> None:
    """Over every code point, what ``_redact``'s module comment (1)-(3) claims of the regex
    engine: only the fold's letter matches a pattern letter case-insensitively; a character is a
    key-name character iff it folds into [a-z0-9_-], and is then [\\w-]; only U+0130 lowers to
    more than one character."""
    import re
    import sys

    chars = [chr(c) for c in range(sys.maxunicode + 1)]
    lowered = [c.lower() for c in chars]
    assert [c for c, low in zip(chars, lowered, strict=True) if len(low) != 1] == ["\u0130"]
    fold = {
        c: low.replace("\u017f", "s").replace("\u0131", "i")
        for c, low in zip(chars, lowered, strict=True)
        if c != "\u0130"
    }
    every = "".join(fold)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for letter in letters + "0123456789_-:/+.":
        matching = set(re.findall(re.escape(letter), every, re.IGNORECASE))
        assert {fold[c] for c in matching} == {letter}, letter
    name_chars = set(re.findall(r"[a-z0-9_-]", every, re.IGNORECASE))
    assert name_chars == {c for c, f in fold.items() if f in set(letters + "0123456789_-")}
    assert name_chars == set(re.findall(r"[\w-]", "".join(name_chars)))
    # the quotes _PAIR allows before a name fold to nothing else either
    assert set(re.findall(r"[\"']", every, re.IGNORECASE)) == {'"', "'"}


def test_lookbehind_and_word_boundary_see_before_the_match_position() -> None:
    """``pattern.match(text, pos)`` judges (?<!...) and \\b on the text before ``pos``, as
    ``sub`` does at that position: trying matches at chosen positions is the same test."""
    import re

    assert re.compile(r"\bb").match("ab", 1) is None
    assert re.compile(r"(?<![\w-])b").match("-b", 1) is None
    assert re.compile(r"\bb").match(" b", 1) is not None
