"""Targets: which adapters a run drives, against which engine.

A target is an adapter factory ``(base_url, **config) -> WorkerAdapter`` plus the engine dialect
it speaks. Four sources, in the order the issue lists them:

* the built-in adapters (default): ``adapters.BUILTIN_ADAPTERS`` (dialect → factory);
* a vendor's adapter: ``--adapter package.module:factory --dialect <engine>``, or the *name* of an
  entry point in the group ``llorch_conformance.adapters`` (the dialect comes from
  ``--dialect`` or from a ``dialect`` attribute of the factory);
* ``--engine-url URL``: the same adapters against a live engine instead of a mock engine. The
  step library puts a fault proxy (``mock_engines._proxy``) in front of it, so fault and journal
  scenarios run against the engine's own bytes; what even a proxy cannot do is ``unsupported``;
* ``--orchestrator-url URL``: no adapter at all — the "adapter" is an orchestrator facade reached
  over HTTP (``POST /v1/tasks``, ``GET /v1/tasks/{id}/stream``, ``POST /v1/tasks/{id}/cancel``,
  ``GET /v1/capabilities``, ``GET /v1/pools/{pool}/health``), given the WorkerAdapter shape by
  ``conformance._facade_view.FacadeView``. Its API token comes from an environment variable (default
  ``LLORCH_API_TOKEN``), never from argv; the target keeps only the variable's *name*. The URL is
  probed once (``GET /v1/capabilities``) so a wrong URL or a refused token is one clear usage
  error before any scenario runs.

Why resolution is lazy: the pytest plugin must stay light (no adapters or mock engines imported
until a run asks for them), so this module imports adapters only inside :func:`resolve_targets`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from llorch_conformance.adapters.api import UsageError

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "ENTRY_POINT_GROUP",
    "KNOWN_DIALECTS",
    "ORCHESTRATOR_DIALECT",
    "Target",
    "adapter_identity",
    "distributions_providing",
    "probe_orchestrator",
    "resolve_targets",
]

ENTRY_POINT_GROUP = "llorch_conformance.adapters"
#: Engine dialects the mock engines can speak (the harness's vocabulary for ``--dialect``).
KNOWN_DIALECTS = ("llamacpp", "vllm", "tgi", "openai", "triton", "mock")
#: The dialect of an ``--orchestrator-url`` target: no engine dialect is known behind it, so
#: ``@dialect:`` scenarios are not applicable to it.
ORCHESTRATOR_DIALECT = "orchestrator"
#: Where the orchestrator's API token is read from unless ``--orchestrator-token-env`` says.
DEFAULT_TOKEN_ENV = "LLORCH_API_TOKEN"

Factory = Callable[..., Any]


@dataclass(frozen=True)
class Target:
    """One adapter under test. ``name`` is what the summary shows (test ids use it too)."""

    name: str
    dialect: str
    factory: Factory = field(compare=False, repr=False)
    origin: str = "builtin"  # builtin | vendor | entry-point
    spec: str = ""
    engine_url: str | None = None
    orchestrator_url: str | None = None
    orchestrator_pool: str = "default"
    #: The *name* of the variable holding the orchestrator's API token (never the token).
    token_env: str = DEFAULT_TOKEN_ENV
    #: The adapter's version (``--adapter-version``, its distribution's, its ``__version__``).
    version: str | None = None
    #: The installed distribution that provides the factory's module, when there is one.
    distribution: str | None = None

    @property
    def live(self) -> bool:
        """No mock engine under the harness's control (a live engine or an orchestrator URL)."""
        return self.engine_url is not None or self.orchestrator_url is not None

    @property
    def orchestrator(self) -> bool:
        return self.orchestrator_url is not None

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "dialect": self.dialect,
            "origin": self.origin,
            "spec": self.spec,
            "engine_url": self.engine_url,
            "version": self.version,
            "distribution": self.distribution,
        }
        if self.origin in ("vendor", "entry-point"):  # what gate/matrix key a vendor's runs by
            d["adapter_name"] = self.name
            d["adapter_version"] = self.version
        if self.orchestrator_url is not None:
            d["orchestrator_url"] = self.orchestrator_url
            d["orchestrator_pool"] = self.orchestrator_pool
            d["token_env"] = self.token_env
        return d


def _builtin() -> dict[str, Factory]:
    try:
        mod = importlib.import_module("llorch_conformance.adapters")
    except ImportError as exc:  # pragma: no cover - the package is part of this distribution
        raise UsageError(f"cannot import the built-in adapters: {exc}") from None
    table = getattr(mod, "BUILTIN_ADAPTERS", None)
    if not isinstance(table, Mapping) or not table:
        raise UsageError("no built-in adapters are registered (adapters.BUILTIN_ADAPTERS is empty)")
    return dict(table)


def _import_vendor_module(mod_name: str) -> Any:
    """Import a vendor's module; one not installed is looked up in the current directory too.

    Why: ``llorch-conformance init`` scaffolds a package that must run from its own folder
    before any ``pip install`` (as ``python -m`` would find it). The directory goes to the *end*
    of ``sys.path`` (an installed module of that name wins) and into ``PYTHONPATH`` so that
    pytest-xdist workers import the same module.
    """
    try:
        return importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        top = mod_name.split(".", 1)[0]
        cwd = os.getcwd()
        if (
            exc.name not in (top, mod_name)
            or cwd in sys.path
            or not (
                os.path.isdir(os.path.join(cwd, top))
                or os.path.isfile(os.path.join(cwd, top + ".py"))
            )
        ):
            raise
        sys.path.append(cwd)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join([*parts, cwd])
        return importlib.import_module(mod_name)


def _load_spec(spec: str) -> tuple[Factory, str]:
    """``package.module:factory`` or an entry-point name → (factory, origin)."""
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        if not mod_name or not attr:
            raise UsageError(f"--adapter {spec!r}: expected package.module:factory")
        try:
            mod = _import_vendor_module(mod_name)
        except ImportError as exc:
            raise UsageError(
                f"--adapter {spec!r}: cannot import module {mod_name!r} ({exc})"
            ) from None
        obj: Any = mod
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise UsageError(f"--adapter {spec!r}: module {mod_name!r} has no {attr!r}")
        if not callable(obj):
            raise UsageError(f"--adapter {spec!r}: {attr!r} is not callable")
        return obj, "vendor"
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
    if not matches:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        hint = f" (registered: {', '.join(known)})" if known else ""
        raise UsageError(
            f"unknown adapter {spec!r}: not module:factory and no entry point in "
            f"{ENTRY_POINT_GROUP!r}{hint}"
        )
    try:
        loaded = matches[0].load()
    except Exception as exc:
        raise UsageError(f"adapter entry point {spec!r} failed to load: {exc}") from None
    if not callable(loaded):
        raise UsageError(f"adapter entry point {spec!r} is not callable")
    return loaded, "entry-point"


def resolve_targets(
    *,
    adapter: str | None = None,
    dialect: str | None = None,
    engine_url: str | None = None,
    only: Sequence[str] = (),
    orchestrator_url: str | None = None,
    orchestrator_pool: str = "default",
    orchestrator_token_env: str = DEFAULT_TOKEN_ENV,
    probe: bool = True,
    adapter_name: str | None = None,
    adapter_version: str | None = None,
) -> list[Target]:
    """Resolve the command-line choice into targets; bad input raises :class:`UsageError`.

    ``only`` restricts the built-in adapters to those dialects (``--only llamacpp,vllm``).
    ``orchestrator_url`` selects the black-box orchestrator target instead of adapters (and is
    probed unless ``probe`` is false).
    """
    if orchestrator_url is not None:
        clash = [
            flag
            for flag, value in (
                ("--adapter", adapter),
                ("--dialect", dialect),
                ("--engine-url", engine_url),
                ("--only", ",".join(only)),
            )
            if value
        ]
        if clash:
            raise UsageError(
                f"--orchestrator-url drives the orchestrator itself; drop {', '.join(clash)}"
            )
        return [
            _orchestrator_target(orchestrator_url, orchestrator_pool, orchestrator_token_env, probe)
        ]
    if dialect is not None and dialect not in KNOWN_DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r} (known: {', '.join(KNOWN_DIALECTS)})")
    if engine_url is not None and not engine_url.startswith(("http://", "https://")):
        raise UsageError(f"--engine-url must be an http(s) URL, got {engine_url!r}")
    if adapter is not None:
        factory, origin = _load_spec(adapter)
        d = dialect or getattr(factory, "dialect", None)
        if not isinstance(d, str) or not d:
            raise UsageError(
                f"--adapter {adapter!r} needs --dialect (one of {', '.join(KNOWN_DIALECTS)})"
            )
        if d not in KNOWN_DIALECTS:
            raise UsageError(f"unknown dialect {d!r} (known: {', '.join(KNOWN_DIALECTS)})")
        name, version, dist = adapter_identity(adapter, factory, origin)
        return [
            Target(
                adapter_name or name,
                d,
                factory,
                origin,
                adapter,
                engine_url,
                version=adapter_version or version,
                distribution=dist,
            )
        ]
    if adapter_name or adapter_version:
        raise UsageError("--adapter-name/--adapter-version name a vendor adapter: add --adapter")
    table = _builtin()
    wanted = list(only)
    if dialect is not None:
        wanted = [dialect]
    if engine_url is not None and not wanted:
        raise UsageError("--engine-url needs --dialect: which engine listens there?")
    for w in wanted:
        if w not in table:
            raise UsageError(
                f"no built-in adapter for dialect {w!r} (built-in: {', '.join(sorted(table))})"
            )
    names = wanted or sorted(table)
    return [
        Target(
            n,
            n,
            table[n],
            "builtin",
            f"llorch_conformance.adapters.BUILTIN_ADAPTERS[{n!r}]",
            engine_url,
        )
        for n in names
    ]


def adapter_identity(
    spec: str, factory: Factory, origin: str
) -> tuple[str, str | None, str | None]:
    """(name, version, distribution) of a vendor adapter, from what is installed.

    Name and version come from the installed distribution that provides the factory's module
    (:func:`distributions_providing`, the stdlib's ``packages_distributions`` table); else the module's (or its top-level
    package's) ``__version__`` with the top-level package as the name; the factory's own name
    only when nothing else is known (a module on ``PYTHONPATH`` without a version).
    """
    from importlib import metadata

    named = spec.partition(":")[0] if origin == "vendor" else ""
    mod_name = named or str(getattr(factory, "__module__", "") or "")
    top = mod_name.split(".", 1)[0]
    dists: list[str] = []
    # the module the user named first, then where the factory is defined (a re-export)
    tops = list(dict.fromkeys([top, str(getattr(factory, "__module__", "") or "").split(".")[0]]))
    try:
        table = distributions_providing(tops)
    except Exception:  # a broken site-packages entry must not stop the run
        table = {}
    for m in tops:
        dists += [d for d in table.get(m, []) if d not in dists]
    if origin == "entry-point":
        ep_dist = next(
            (
                ep.dist.name
                for ep in entry_points(group=ENTRY_POINT_GROUP)
                if ep.name == spec and ep.dist is not None
            ),
            None,
        )
        if ep_dist:
            dists = [ep_dist]
    for dist in dists:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        name = spec if origin == "entry-point" else dist
        return name, version, dist
    for candidate in (mod_name, top):
        mod = importlib.import_module(candidate) if candidate else None
        v = getattr(mod, "__version__", None)
        if isinstance(v, str) and v:
            return (spec if origin == "entry-point" else top), v, None
    fallback = spec.rpartition(":")[2] if origin == "vendor" else spec
    return fallback, None, None


def distributions_providing(modules: Sequence[str]) -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` restricted to ``modules``: the same lists
    in the same order, for a fraction of the cost.

    Why: the stdlib builds the table for every installed distribution, parsing each file list
    (RECORD) that has no ``top_level.txt`` into path objects and each METADATA file into a
    message — ~90 ms with ~120 distributions, paid twice per vendor run before the first
    scenario. Here a distribution's file list is only parsed when its raw text names one of
    ``modules`` (a top-level name inferred from a path is a part of that path, so a RECORD that
    does not contain the name cannot provide it), and only the matching distributions' names are
    read. The rule per distribution is the stdlib's (``top_level.txt`` when it declares names,
    else the names inferred from its files); on a Python without the stdlib's private
    ``_top_level_inferred`` the full table is used.
    """
    from importlib import metadata

    wanted = {m for m in modules if m}
    inferred = getattr(metadata, "_top_level_inferred", None)
    if inferred is None:  # pragma: no cover - a future stdlib: the exact, slow way
        full = metadata.packages_distributions()
        return {m: list(full[m]) for m in modules if m in full}
    out: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        declared = (dist.read_text("top_level.txt") or "").split()
        if declared:
            provided = [m for m in declared if m in wanted]
        else:
            record = dist.read_text("RECORD")
            if record and not any(m in record for m in wanted):
                continue  # its file list (RECORD when present) cannot name a wanted module
            provided = [m for m in inferred(dist) if m in wanted]
        for m in provided:
            out.setdefault(m, []).append(dist.metadata["Name"])
    return out


def _orchestrator_factory(pool: str, token_env: str) -> Factory:
    """``(url, **harness_config) -> FacadeView``; the token is read from the environment here,
    at use, so it never travels in the Target (which is described in results and bundles)."""

    def factory(base_url: str, **_config: Any) -> Any:
        from ._facade_view import FacadeView

        return FacadeView(base_url, None, token=os.environ.get(token_env) or None, pool=pool)

    factory.dialect = ORCHESTRATOR_DIALECT  # type: ignore[attr-defined]
    return factory


def _orchestrator_target(url: str, pool: str, token_env: str, probe: bool) -> Target:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--orchestrator-url must be an http(s) URL, got {url!r}")
    if not pool or "/" in pool:
        raise UsageError(f"--orchestrator-pool {pool!r}: expected a pool id without '/'")
    if not token_env or not token_env.replace("_", "").isalnum():
        raise UsageError(
            f"--orchestrator-token-env {token_env!r}: not an environment variable name"
        )
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise UsageError(
            f"--orchestrator-url: no credentials in the URL (it is recorded in results); put the "
            f"token in ${token_env}"
        )
    url = url.rstrip("/")
    if probe:
        probe_orchestrator(
            url, token=os.environ.get(token_env) or None, token_env=token_env, pool=pool
        )
    return Target(
        "orchestrator",
        ORCHESTRATOR_DIALECT,
        _orchestrator_factory(pool, token_env),
        "orchestrator",
        url,
        orchestrator_url=url,
        orchestrator_pool=pool,
        token_env=token_env,
    )


def probe_orchestrator(
    url: str,
    *,
    token: str | None,
    token_env: str = DEFAULT_TOKEN_ENV,
    pool: str | None = None,
    timeout_s: float = 5.0,
) -> None:
    """One ``GET /v1/capabilities``: unreachable, not an orchestrator, a refused token or (when
    the engines name their pools) an unknown ``pool`` is a :class:`UsageError` (one line,
    exit 2) — the run could judge nothing, so no verdict."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(trust_env=False, timeout=timeout_s) as client:
            r = client.get(f"{url}/v1/capabilities", headers=headers)
    except httpx.HTTPError as exc:
        raise UsageError(
            f"--orchestrator-url {url}: cannot reach the orchestrator ({type(exc).__name__}: {exc})"
        ) from None
    if r.status_code in (401, 403):
        hint = "refused the token in" if token else "wants a token; none is set in"
        raise UsageError(
            f"--orchestrator-url {url}: the orchestrator {hint} ${token_env} "
            f"(GET /v1/capabilities answered {r.status_code})"
        )
    body: Any = None
    if r.status_code == 200:
        try:
            body = r.json()
        except ValueError:
            body = None
    if not isinstance(body, dict) or not isinstance(body.get("engines"), list):
        raise UsageError(
            f"--orchestrator-url {url}: not an orchestrator facade "
            f"(GET /v1/capabilities answered {r.status_code} without an engines list)"
        )
    pools = {e.get("pool_id") for e in body["engines"] if isinstance(e, dict)} - {None}
    if pool is not None and pools and pool not in pools:
        raise UsageError(
            f"--orchestrator-pool {pool!r}: the orchestrator at {url} lists pools "
            f"{', '.join(sorted(map(str, pools)))}"
        )
