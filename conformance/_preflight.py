"""Argument hygiene and pre-flight of ``run``: refuse what cannot work before anything runs.

Why before the run: a dead ``--engine-url`` used to run for two minutes and blame the engine in
every scenario; contradictory flags used to be accepted and one of them silently ignored. Both
are usage errors — one line, exit 2 — found in milliseconds (flags) or seconds (probes).

Each check names the flags involved and what to do; none contacts anything the user did not
name on the command line, and the probes never read proxy settings from the environment
(``trust_env=False``: the engine is contacted directly, the way the adapters must).
"""

from __future__ import annotations

import argparse

from llorch_conformance.adapters.api import UsageError

__all__ = ["PROBE_TIMEOUT_S", "check_run_args", "parse_jobs", "preflight", "probe_url"]

#: Connect/read budget of one pre-flight probe (an unreachable URL fails within this).
PROBE_TIMEOUT_S = 3.0


def parse_jobs(raw: str) -> int | str:
    """``-j N|auto``: a positive number or ``auto``."""
    if raw == "auto":
        return raw
    try:
        jobs = int(raw)
    except ValueError:
        raise UsageError(f"--jobs must be a number or 'auto', got {raw!r}") from None
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (or 'auto'), got {jobs}")
    return jobs


#: The flags that pick the engine adapter to judge: none applies to a target that is not one.
_ENGINE_PICKS = (
    ("--adapter", "adapter"),
    ("--dialect", "dialect"),
    ("--engine-url", "engine_url"),
    ("--only", "only"),
)


def _given(args: argparse.Namespace, *pairs: tuple[str, str]) -> list[str]:
    """The flags among ``(flag, attribute)`` the user set (non-empty, non-default)."""
    from ._options import RUN_OPTIONS

    defaults = {o.dest: o.default for o in RUN_OPTIONS if o.default not in (None, [])}
    out = []
    for flag, attr in pairs:
        v = getattr(args, attr, None)
        if v in (None, False, [], (), "") or (attr in defaults and v == defaults[attr]):
            continue
        out.append(flag)
    return out


def check_run_args(args: argparse.Namespace) -> None:
    """Every contradiction of ``run``'s flags is one :class:`UsageError` naming the flags."""
    if args.only and args.adapter:
        raise UsageError(
            "--only restricts the built-in adapters; --adapter runs yours instead: drop one"
        )
    if args.only and args.dialect:
        raise UsageError("--only and --dialect both pick built-in adapters: use one")
    if args.only and args.engine_url:
        raise UsageError(
            "--engine-url is one engine of one dialect: use --dialect D, not --only D1,D2"
        )
    if args.level == "must" and args.fail_on == "should":
        raise UsageError(
            "--level must runs no SHOULD scenario, so --fail-on should can never apply: "
            "drop one (--level should runs both)"
        )
    if args.orchestrator_url and args.worker_url:
        raise UsageError("--orchestrator-url and --worker-url are different targets: pick one")
    if args.worker_url:
        clash = _given(
            args,
            *_ENGINE_PICKS,
            ("--orchestrator-url", "orchestrator_url"),
            ("--requirement", "requirement"),
            ("-k", "keyword"),
            ("--lf", "last_failed"),
            ("--collect-only", "collect_only"),
            ("-x", "exitfirst"),
            ("--maxfail", "maxfail"),
            ("--adapter-name", "adapter_name"),
            ("--adapter-version", "adapter_version"),
        )
        if clash:
            raise UsageError(
                f"--worker-url judges an rbee worker with its own checks; "
                f"{', '.join(clash)} {'does' if len(clash) == 1 else 'do'} not apply to it: "
                f"drop {'it' if len(clash) == 1 else 'them'}"
            )
        if args.scope not in (None, "worker", "all"):
            raise UsageError(
                f"--worker-url is the worker scope; --scope {args.scope} contradicts it"
            )
    elif args.queen_listen:
        raise UsageError("--queen-listen needs --worker-url")
    if args.orchestrator_url:
        clash = _given(
            args,
            *_ENGINE_PICKS,
        )
        if clash:
            raise UsageError(
                f"--orchestrator-url drives the orchestrator itself; drop {', '.join(clash)}"
            )
    else:
        orch = _given(
            args,
            ("--orchestrator-pool", "orchestrator_pool"),
            ("--orchestrator-token-env", "orchestrator_token_env"),
        )
        if orch:
            raise UsageError(f"{', '.join(orch)} only apply with --orchestrator-url")
    if (args.adapter_name or args.adapter_version) and not args.adapter:
        which = "--adapter-name" if args.adapter_name else "--adapter-version"
        raise UsageError(
            f"{which} names a vendor adapter: it needs --adapter (built-in adapters are named "
            "by their dialect)"
        )
    for flag, value in (
        ("--adapter-name", args.adapter_name),
        ("--adapter-version", args.adapter_version),
    ):
        if value is not None and (
            not value.strip() or len(value) > 100 or any(c in value for c in "/\\\n\r\t")
        ):
            raise UsageError(f"{flag} {value!r}: 1-100 printable characters, no slashes")
    if args.maxfail is not None and args.maxfail < 1:
        raise UsageError(f"--maxfail must be at least 1, got {args.maxfail}")
    if args.exitfirst and args.maxfail not in (None, 1):
        raise UsageError(f"-x stops at the first failure; --maxfail {args.maxfail} contradicts it")
    if args.collect_only:
        clash = _given(
            args,
            ("--baseline", "baseline"),
            ("--waivers", "waivers"),
            ("--sign-key", "sign_key"),
            ("-x", "exitfirst"),
            ("--maxfail", "maxfail"),
        )
        if clash:
            raise UsageError(f"--collect-only runs nothing; {', '.join(clash)} cannot apply")
    keep = getattr(args, "keep", None)
    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1 (the run being written), got {keep}")


def probe_url(flag: str, url: str, *, path: str = "", what: str = "the engine") -> None:
    """One GET: any HTTP answer means reachable; no answer within seconds is a usage error."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{flag} must be an http(s) URL, got {url!r}")
    target = url.rstrip("/") + path
    try:
        with httpx.Client(trust_env=False, timeout=PROBE_TIMEOUT_S) as client:
            client.get(target)
    except httpx.HTTPError as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise UsageError(
            f"{flag} {url}: cannot reach {what} ({type(exc).__name__}{': ' + reason if reason else ''}); "
            "is it running and is the URL right?"
        ) from None


def preflight(args: argparse.Namespace) -> None:
    """Probe every URL the run will drive, before any scenario (orchestrator: in _targets)."""
    if args.engine_url:
        probe_url("--engine-url", args.engine_url, what="the engine")
    if args.worker_url:
        probe_url("--worker-url", args.worker_url, path="/health", what="the worker")
