"""``replay_bundle``: rerun the scenarios of a bundle with its recorded seed, and report every
transcript difference.

**A bundle is data, never code or a destination.** It may come from anyone (a vendor's release),
so replay takes from it only values it checks against its own vocabulary:

* the *selection*: the recorded scenarios (their stable keys, compared as text: a key our suite
  does not have selects nothing and shows as "missing"), the requirement IDs (each must be in the
  installed catalogue), the level and the scope (our own choices);
* the *target kind*: built-in adapters by name (each must be in ``adapters.BUILTIN_ADAPTERS``),
  their dialect (one of ours), labels (adapter name/version: safe text), the seed and run id.

It never takes from a bundle: pytest arguments (``run_suite.pytest_args`` of older bundles is
ignored, ``conftest.py`` and every other file in the folder are never loaded; replay refuses to
run from inside the bundle folder), a module or adapter spec to import (a vendor adapter is
replayed only with ``--adapter SPEC`` given by the user), an environment variable name (the
orchestrator token is read only from the variable the user names with
``--orchestrator-token-env``), and a URL to contact: a recorded engine or orchestrator URL is
refused unless the user gives their own (``--engine-url``/``--orchestrator-url``) or passes
``--allow-bundle-url``; even then no token goes to a bundle's URL unless the user names the
variable. Every file is read through :mod:`reports._bundle_read` (no links, bounded strict JSON,
schemas); anything else is one line and exit 2.

What is compared, per scenario (keyed by adapter, feature and scenario — node ids depend on the
checkout path): the status, the failed requirement IDs and the adapter's events (kind and data,
per stream). Clock-dependent values are not part of the comparison: event times, durations
(every ``*_ms`` and ``latency*`` field except the promises ``retry_after_ms``,
``predicted_start_ms``, ``deadline_ms`` and ``backoff_ms``), task and
correlation ids (fresh per run), and loopback ports in messages. Both sides are compared after
the same redaction, because the recorded side was redacted when the bundle was written.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llorch_conformance.adapters.api import UsageError
from llorch_conformance.adapters.http_util import redact
from llorch_conformance.conformance import RunResults, ScenarioResult

from ._bundle_read import BundleReader, one_line
from ._model import events_of

__all__ = [
    "Difference",
    "ReplayChoice",
    "ReplayReport",
    "normalise_events",
    "replay_bundle",
    "replay_params",
]

_VOLATILE_KEYS: Final = frozenset(
    {
        "t_ms",
        "decode_time_ms",
        "decode_ms",
        "duration_ms",
        "elapsed_ms",
        "latency_ms",
        "first_token_ms",
        "ttft_ms",
        "tokens_per_s",
        "tokens_per_second",
        "task_id",
        "job_id",
        "correlation_id",
        "created",
        "timestamp",
    }
)
_SUBS: Final = (
    (re.compile(r"\b(127\.0\.0\.1|localhost|\[::1\]):\d+"), r"\1:PORT"),
    (re.compile(r"\bt-[0-9a-f]{12}\b"), "t-TASK"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UUID"),
    (re.compile(r"\b\d+(\.\d+)? ?(ms|s)\b"), "N\\2"),
)


@dataclass(frozen=True)
class Difference:
    scenario: str
    what: str  # missing | extra | status | failed_requirements | events
    detail: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.what}: {self.detail}"


@dataclass
class ReplayReport:
    bundle: Path
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    replay_results: Path | None = None

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "compared": self.compared,
            "identical": self.identical,
            "differences": [d.__dict__ for d in self.differences],
            "replay_results": str(self.replay_results) if self.replay_results else None,
        }


#: ``*_ms`` keys that carry a promise rather than a measurement (they must replay identically).
_STABLE_MS: Final = frozenset({"retry_after_ms", "predicted_start_ms", "deadline_ms", "backoff_ms"})


def _volatile(key: str) -> bool:
    return (
        key in _VOLATILE_KEYS
        or (key.endswith("_ms") and key not in _STABLE_MS)
        or key.startswith("latency")
    )


def _clean(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _clean(v) for k, v in obj.items() if not _volatile(str(k))}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, str):
        for pat, rep in _SUBS:
            obj = pat.sub(rep, obj)
        return obj
    return obj


def normalise_events(
    evidence: Mapping[str, Any], secrets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The adapter's events without clock- and run-dependent values (see module docstring)."""
    text = redact(json.dumps(events_of(evidence), ensure_ascii=False, default=str), secrets)
    return [dict(_clean(e)) for e in json.loads(text)]


def _key(s: ScenarioResult) -> str:
    return f"{s.adapter} :: {s.feature} :: {s.scenario}"


_LABEL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
_SCENARIO_KEY_MAX: Final = 1000
_MAX_SCENARIOS: Final = 100_000


@dataclass(frozen=True)
class ReplayChoice:
    """What the user said on the command line; the bundle never fills these in."""

    adapter: str | None = None
    engine_url: str | None = None
    orchestrator_url: str | None = None
    orchestrator_token_env: str | None = None
    allow_bundle_url: bool = False


def _refuse(bundle: str, what: str) -> UsageError:
    return UsageError(f"replay: bundle {bundle}: {what}")


def _url(
    label: str, recorded: str, mine: str | None, choice: ReplayChoice, flag: str
) -> tuple[str, bool]:
    """(the URL to contact, whether it came from the bundle)."""
    if mine is not None:
        return mine, False
    if not choice.allow_bundle_url:
        raise _refuse(
            label,
            f"it was recorded against {one_line(recorded, 100)}; replay contacts no URL taken "
            f"from a bundle: give yours with {flag} URL, or pass --allow-bundle-url to use "
            "the recorded one",
        )
    if not recorded.startswith(("http://", "https://")):
        raise _refuse(label, f"recorded URL {one_line(recorded, 100)!r} is not http(s)")
    return recorded, True


def replay_params(
    bundle: Path | BundleReader, choice: ReplayChoice | None = None
) -> dict[str, Any]:
    """The keyword arguments for ``run_suite`` that repeat the recorded selection (module
    docstring: what is taken from the bundle, checked, and what never is)."""
    from llorch_conformance.conformance import (
        DEFAULT_TOKEN_ENV,
        KNOWN_DIALECTS,
        SCOPES,
        is_known,
        resolve_targets,
        scenario_key,
    )

    choice = choice or ReplayChoice()
    reader = bundle if isinstance(bundle, BundleReader) else BundleReader(bundle)
    label = reader.label
    raw = reader.json("results.json", schema="results")
    cfg = reader.json("run_config.json", schema="run_config", required=False) or {}
    recorded_suite: Mapping[str, Any] = cfg.get("run_suite") or {}
    target = raw.get("target") or {}
    targets = [t for t in target.get("targets", []) if isinstance(t, Mapping)]
    if target.get("kind") == "worker":
        raise _refuse(
            label,
            "a worker check (run --worker-url) is not replayed: run it again against your worker",
        )
    if not targets:
        raise reader.fail("results.json", "target.targets is empty: nothing says what was run")
    params: dict[str, Any] = {}
    origins = {str(t.get("origin") or "builtin") for t in targets}
    first = targets[0]

    def dialect_of(t: Mapping[str, Any]) -> str:
        d = t.get("dialect")
        if d not in KNOWN_DIALECTS:
            raise reader.fail("results.json", f"dialect {one_line(d, 40)!r} is not one of ours")
        return str(d)

    def label_of(value: Any, what: str) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not _LABEL.match(value):
            raise reader.fail("run_config.json", f"{what} {one_line(value, 40)!r} is no plain name")
        return value

    if origins & {"vendor", "entry-point"}:
        if len(targets) != 1:
            raise reader.fail("results.json", "a vendor run has exactly one target")
        if choice.adapter is None:
            raise _refuse(
                label,
                f"it was recorded with the vendor adapter {one_line(first.get('spec'), 100)!r}; "
                "replay imports no code a bundle names: give the adapter yourself with "
                "--adapter SPEC",
            )
        params["adapter"] = choice.adapter
        params["dialect"] = dialect_of(first)
        params["adapter_name"] = label_of(recorded_suite.get("adapter_name"), "adapter_name")
        params["adapter_version"] = label_of(
            recorded_suite.get("adapter_version"), "adapter_version"
        )
        if first.get("engine_url"):
            params["engine_url"], _ = _url(
                label, str(first["engine_url"]), choice.engine_url, choice, "--engine-url"
            )
    elif "orchestrator" in origins:
        if len(targets) != 1:
            raise reader.fail("results.json", "an orchestrator run has exactly one target")
        recorded_url = first.get("orchestrator_url") or first.get("engine_url") or ""
        url, from_bundle = _url(
            label, str(recorded_url), choice.orchestrator_url, choice, "--orchestrator-url"
        )
        if from_bundle and choice.orchestrator_token_env is None:
            raise _refuse(
                label,
                "a token goes to a URL taken from a bundle only when you name its variable: "
                "pass --orchestrator-token-env NAME (an unset one sends no token)",
            )
        params["orchestrator_url"] = url
        params["orchestrator_pool"] = (
            label_of(first.get("orchestrator_pool"), "orchestrator_pool") or "default"
        )
        params["orchestrator_token_env"] = choice.orchestrator_token_env or DEFAULT_TOKEN_ENV
    elif origins == {"builtin"}:
        names = [str(t.get("name")) for t in targets]
        for n in names:  # the built-in registry is the vocabulary: no import by a bundle's word
            if n not in KNOWN_DIALECTS:
                raise reader.fail(
                    "results.json", f"target {one_line(n, 40)!r} is not a built-in adapter"
                )
        try:
            resolve_targets(only=names, probe=False)
        except UsageError as exc:
            raise reader.fail("results.json", one_line(exc)) from None
        urls = {str(t["engine_url"]) for t in targets if t.get("engine_url")}
        if urls:
            if len(urls) > 1 or len(names) != 1:
                raise reader.fail("results.json", "a live-engine run has exactly one target")
            params["engine_url"], _ = _url(
                label, urls.pop(), choice.engine_url, choice, "--engine-url"
            )
            params["dialect"] = names[0]
        else:
            params["only"] = names
    else:
        kinds = ", ".join(sorted(one_line(o, 20) for o in origins))
        raise reader.fail("results.json", f"unknown target kind(s) {kinds}")
    if choice.adapter is not None and "adapter" not in params:
        raise _refuse(label, "--adapter replays a vendor adapter's bundle; this one is not")

    rids = list(recorded_suite.get("requirements") or target.get("requirements") or [])
    for rid in rids:
        if not is_known(rid):
            raise reader.fail("results.json", f"requirement {one_line(rid, 40)!r} is not in "
                              "the installed catalogue")  # fmt: skip
    params["requirements"] = rids
    params["level"] = recorded_suite.get("level") or raw.get("level") or "should"
    scope = recorded_suite.get("scope") or "all"
    if scope not in SCOPES:
        raise reader.fail("run_config.json", f"scope {one_line(scope, 40)!r} is not one of ours")
    params["scope"] = scope
    keys = []
    for i, s in enumerate(raw["scenarios"]):
        key = scenario_key(s["nodeid"])
        if len(key) > _SCENARIO_KEY_MAX or one_line(key, _SCENARIO_KEY_MAX + 1) != key:
            raise reader.fail("results.json", f"scenarios[{i}].nodeid is not a plain test id")
        keys.append(key)
    if len(keys) > _MAX_SCENARIOS:
        raise reader.fail("results.json", f"more than {_MAX_SCENARIOS} scenarios")
    params["select"] = sorted(set(keys))
    seed = raw["seed"]
    if not 0 <= seed < 2**63:
        raise reader.fail("results.json", f"seed {seed} is outside 0..2**63-1")
    params["seed"] = seed
    return params


def compare(
    recorded: RunResults,
    replayed: RunResults,
    *,
    scenario: str | None = None,
    secrets: Sequence[str] = (),
) -> tuple[int, list[Difference]]:
    def pick(r: RunResults) -> dict[str, ScenarioResult]:
        return {_key(s): s for s in r.scenarios if scenario is None or scenario in s.scenario}

    a, b = pick(recorded), pick(replayed)
    diffs: list[Difference] = []
    for k in sorted(a.keys() - b.keys()):
        diffs.append(Difference(k, "missing", "recorded scenario did not run in the replay"))
    for k in sorted(b.keys() - a.keys()):
        diffs.append(Difference(k, "extra", "the replay ran a scenario the bundle does not have"))
    for k in sorted(a.keys() & b.keys()):
        ra, rb = a[k], b[k]
        if ra.status != rb.status:
            diffs.append(Difference(k, "status", f"recorded {ra.status}, replay {rb.status}"))
        if sorted(ra.failed_requirements) != sorted(rb.failed_requirements):
            diffs.append(
                Difference(
                    k,
                    "failed_requirements",
                    f"recorded {ra.failed_requirements}, replay {rb.failed_requirements}",
                )
            )
        ea, eb = normalise_events(ra.evidence, secrets), normalise_events(rb.evidence, secrets)
        if ea != eb:
            i = next(
                (n for n, (x, y) in enumerate(zip(ea, eb, strict=False)) if x != y),
                min(len(ea), len(eb)),
            )
            left = json.dumps(ea[i], ensure_ascii=False) if i < len(ea) else "<end>"
            right = json.dumps(eb[i], ensure_ascii=False) if i < len(eb) else "<end>"
            diffs.append(
                Difference(
                    k,
                    "events",
                    f"first difference at event {i}: recorded {left[:300]} — replay {right[:300]}",
                )
            )
    return len(a.keys() & b.keys()), diffs


def replay_bundle(
    bundle: str | Path,
    *,
    scenario: str | None = None,
    out: Path | None = None,
    jobs: int | str = 1,
    secrets: Sequence[str] = (),
    choice: ReplayChoice | None = None,
) -> ReplayReport:
    """Rerun the bundle's recorded selection (in this process, through ``run_suite``) and
    compare; what is taken from the bundle and what never is: module docstring."""
    from llorch_conformance.conformance import run_suite

    from ._bundle import environment_secrets

    root = Path(bundle)
    if not root.is_dir():
        raise UsageError(f"replay: {one_line(root)}: not a directory")
    here, inside = Path.cwd().resolve(), root.resolve()
    if here == inside or inside in here.parents:
        raise UsageError(
            f"replay: run it from outside the bundle folder {one_line(root)} (nothing in a "
            "bundle is run or imported; a folder on the import path could be)"
        )
    reader = BundleReader(root)
    params = replay_params(reader, choice)
    recorded = RunResults.from_dict(reader.json("results.json", schema="results"))
    all_secrets = [*secrets, *environment_secrets()]
    with tempfile.TemporaryDirectory(prefix="llorch-replay-") as tmp:
        target = out if out is not None else Path(tmp)
        replayed = run_suite(**params, out=target, jobs=jobs, run_id=f"{recorded.run_id}-replay")
        report = ReplayReport(
            root, replay_results=(target / "results.json") if out is not None else None
        )
        report.compared, report.differences = compare(
            recorded, replayed, scenario=scenario, secrets=all_secrets
        )
    return report
