"""Two variants of a vendor adapter for the end-to-end gate test (written to a temp dir).

Both wrap the built-in llama.cpp adapter under the same factory name, ``acme_llamacpp``, so the
gate compares like with like: ``acme_good`` passes every event through; ``acme_bad`` is the
"regressed change" — it drops the last token of every stream, as a buffering bug would.
"""

from __future__ import annotations

GOOD = """
from llorch_conformance.adapters import BUILTIN_ADAPTERS


class _Wrapped:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def submit(self, request):
        return self._inner.submit(request)


def acme_llamacpp(base_url, **config):
    return _Wrapped(BUILTIN_ADAPTERS["llamacpp"](base_url, **config))


acme_llamacpp.dialect = "llamacpp"
"""

BAD = GOOD.replace(
    """    def submit(self, request):
        return self._inner.submit(request)
""",
    """    async def submit(self, request):
        held = None
        async for ev in self._inner.submit(request):
            if ev.kind == "token":
                if held is not None:
                    yield held
                held = ev  # the last token is never released: the regression under test
                continue
            yield ev
""",
)
assert BAD != GOOD
