"""``replay_bundle``: rerun the scenarios of a bundle with its recorded seed and configuration,
and report every transcript difference.

What is rerun: the same selection the recorded run made — ``run_config.json["run_suite"]`` holds
the keyword arguments ``llorch-conformance run`` passed to :func:`conformance._runner.run_suite`
(targets, level, requirement filter, seed); bundles without it fall back to what
``results.json`` records (targets and seed). ``scenario`` narrows the comparison to scenarios
whose name contains the text.

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

from ._model import events_of

__all__ = ["Difference", "ReplayReport", "normalise_events", "replay_bundle", "replay_params"]

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


def replay_params(bundle: Path) -> dict[str, Any]:
    """The keyword arguments for ``run_suite`` that repeat the recorded run."""
    cfg_path, res_path = bundle / "run_config.json", bundle / "results.json"
    if not res_path.is_file():
        raise UsageError(f"{bundle}: no results.json — not a conformance proof bundle")
    cfg: dict[str, Any] = json.loads(cfg_path.read_text("utf-8")) if cfg_path.is_file() else {}
    recorded = RunResults.read(res_path)
    params = dict(cfg.get("run_suite") or {})
    if not params:
        targets = recorded.target.get("targets", []) if isinstance(recorded.target, Mapping) else []
        vendor = [t for t in targets if t.get("origin") != "builtin"]
        if vendor:
            t = vendor[0]
            params.update(adapter=t.get("spec"), dialect=t.get("dialect"))
        else:
            params["only"] = [t.get("name") for t in targets]
        urls = {t.get("engine_url") for t in targets if t.get("engine_url")}
        if urls:
            params["engine_url"] = urls.pop()
            params.setdefault("dialect", targets[0].get("dialect"))
        params["requirements"] = list(recorded.target.get("requirements", []))
        params["level"] = recorded.level
    params["seed"] = recorded.seed
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
) -> ReplayReport:
    """Rerun the bundle's scenarios (in this process, through ``run_suite``) and compare."""
    from llorch_conformance.conformance import run_suite

    from ._bundle import environment_secrets

    root = Path(bundle)
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    params = replay_params(root)
    params.pop("jobs", None)
    params.pop("out", None)
    params.pop("run_id", None)
    recorded = RunResults.read(root / "results.json")
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
