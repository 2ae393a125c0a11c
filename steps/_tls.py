"""A mock engine served over TLS, for the scenarios that prove TLS verification stays on.

The mock engine runner speaks plain HTTP; here its ASGI app runs under uvicorn with a
certificate from a throwaway ``trustme`` CA. The listening socket is bound and listening before
the server thread starts, so the adapter can connect at once (the kernel queues the connection)
and nothing waits or sleeps for the server to come up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._context import ScenarioContext


@dataclass
class TlsEngine:
    base_url: str
    journal: Any
    app: Any
    engine_version: str | None
    model: str | None

    def reset(self) -> None:
        self.app.ctx.reset()

    def set_faults(self, faults: list[str]) -> None:
        self.app.ctx.set_faults(faults)


def serve_tls(ctx: ScenarioContext, *, trusted: bool) -> TlsEngine:
    if ctx.in_process or (ctx.live and not ctx.proxied):
        ctx.unsupported("TLS scenarios need a mock engine or fault proxy served by the harness")
    import trustme

    from llorch_conformance._serving import ServedApp
    from llorch_conformance.mock_engines import create_app

    tmp: Path = ctx._getfixturevalue("tmp_path")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp / "engine.pem", tmp / "engine.key", tmp / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in cert.cert_chain_pems[1:]:
        with certfile.open("ab") as fh:
            fh.write(extra.bytes())
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))

    version, model = None, None
    if ctx.proxied:
        # a live engine: the TLS endpoint is a fault proxy in front of it (its facts probed once)
        from llorch_conformance.mock_engines import ProxyApp, ProxyContext

        shared = ctx.engines.get(ctx.dialect)
        version, model = shared.engine_version, shared.model
        app: Any = ProxyApp(ProxyContext(ctx.dialect, str(ctx.target.engine_url), seed=ctx.seed))
    else:
        app = create_app(ctx.dialect, seed=ctx.seed)
        version, model = app.ctx.dialect.engine_version, app.ctx.model
    served = ServedApp(
        app,
        name="llorch-tls-engine",
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        # a fault proxy closes its idle engine connections at lifespan shutdown
        lifespan="on" if ctx.proxied else "off",
    ).start(timeout_s=None)  # listening already: the adapter connects at once
    ctx.add_cleanup(served.stop)
    port = served.port
    engine = TlsEngine(
        base_url=f"https://127.0.0.1:{port}",
        journal=app.ctx.journal,
        app=app,
        engine_version=version,
        model=model,
    )
    ctx.engine = engine
    ctx.notes["tls"] = {"trusted": trusted, "base_url": engine.base_url}
    if trusted:
        ctx.tls_ca = str(cafile)
    return engine
