"""The declaration table: which ``Capabilities.declared_unsupported`` entries each requirement allows.

Why a table: an adapter may say "I do not do X" (``cancel``, ``api_key``, ``tls``, ``deadline``,
``metrics_scrape``, ``retries``, ``connection_reuse``) and the scenarios tagged ``@needs:X`` are
then not run against it. Whether that is acceptable is not the adapter's call but the contract's:

* a capability the contract calls **optional or best-effort** for a requirement may be declared
  — the verdict then shows the declaration (``pass-declared``, "pass, declared: cancel"), never
  a plain ``pass``;
* a capability a **MUST** requires may not be declared away — the declaration is a *failure* of
  that requirement, with the declaration as evidence;
* SHOULD and MAY requirements allow any declaration (they are not mandatory), still shown.

The rules below are the one place this is decided. Every ``(requirement, capability)`` pair a
feature file can produce (a scenario tagged ``@<ID>`` and ``@needs:<capability>``) is listed
explicitly, allowed or not, with the contract text it rests on; the suite's own tests check that
no pair is left to the default. Sources: seed 000 (worker-adapters spec: ``cancel(task_id)``
best-effort, metrics optional), the http-util spec (TLS verification on, bearer injection a MAY),
the per-engine adapter specs (reference §4.2) and the integration spec (33_INTEGRATION.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from llorch_conformance.adapters.api import Capability

from ._catalogue import Level, get_requirement, is_known

__all__ = [
    "DECLARABLE",
    "DECLARATION_RULES",
    "DeclarationRule",
    "declaration_allowed",
    "declaration_rule",
]

#: What an adapter may name in ``Capabilities.declared_unsupported`` (``unsupported:<name>`` too):
#: the vocabulary of :class:`adapters.api.Capability`, as plain strings.
DECLARABLE: Final[tuple[str, ...]] = tuple(c.value for c in Capability)


@dataclass(frozen=True)
class DeclarationRule:
    """One row of the table: may ``capability`` be declared away for ``requirement``, and why."""

    requirement: str
    capability: str
    allowed: bool
    why: str


def _r(req: str, cap: str, allowed: bool, why: str) -> DeclarationRule:
    return DeclarationRule(req, cap, allowed, why)


_SEED000_CANCEL = "seed 000: cancel(task_id) is best-effort"
_BEARER_MAY = (
    "HTU-1005 (MAY): bearer injection is optional; an adapter without a key has none to leak"
)

#: The declaration table (rendered in README and in every test_report.md).
DECLARATION_RULES: Final[tuple[DeclarationRule, ...]] = (
    # -- cancel -------------------------------------------------------------------------------
    _r("ADAPT-3000", "cancel", True, _SEED000_CANCEL + " in the WorkerAdapter surface"),
    _r("ADAPT-3101", "cancel", True, "SHOULD; cancel is best effort (close the body or engine API)"),
    _r("WA-INT-3002", "cancel", False, "MUST: no token after the cancel-ack window, upstream closed"),
    _r("OC-ADAPT-5001", "cancel", False, "MUST: the llama.cpp adapter implements cancel"),
    _r("ORCH-3054", "cancel", False, "MUST: the llama.cpp adapter implements cancel"),
    _r("OC-ADAPT-5020", "cancel", False, "MUST: the vLLM adapter implements cancel"),
    _r("ORCH-3055", "cancel", True,
       "ORCH-3055 is engine_version and internal paths; cancel is judged by OC-ADAPT-5020"),
    # -- deadline -----------------------------------------------------------------------------
    _r("ADAPT-3002", "deadline", False, "MUST: DEADLINE_UNMET is part of the error taxonomy"),
    _r("ADAPT-3005", "deadline", False, "MUST: every network request is time-bounded"),
    # -- api_key ------------------------------------------------------------------------------
    _r("WA-INT-3005", "api_key", True, _BEARER_MAY),
    _r("HTU-1004", "api_key", True, _BEARER_MAY),
    _r("HTU-SEC-1402", "api_key", True, _BEARER_MAY),
    _r("HTU-EXP-1104", "api_key", True, _BEARER_MAY),
    _r("ORCH-3613", "api_key", True, _BEARER_MAY),
    _r("HTU-ERR-4001", "api_key", True, _BEARER_MAY),
    _r("HTU-1005", "api_key", True, "MAY: bearer injection is optional"),
    _r("HTU-EXP-1101", "api_key", True,
       _BEARER_MAY + "; explicit configuration is still proved without a key"),
    _r("OC-ADAPT-OAI-6020", "api_key", False, "MUST: the OpenAI adapter authenticates with a key"),
    # -- tls ----------------------------------------------------------------------------------
    _r("HTU-SEC-1401", "tls", False, "MUST: TLS on by default"),
    _r("HTU-EXP-1105", "tls", False, "MUST: TLS verification is off only when a test asks"),
    _r("HTU-1001", "tls", False, "MUST: client defaults include TLS verification on"),
    # -- metrics_scrape -----------------------------------------------------------------------
    _r("OC-ADAPT-5001a", "metrics_scrape", True, "optional for MVP, SHOULD before v1.0"),
    # -- connection_reuse ---------------------------------------------------------------------
    _r("HTU-PERF-1301", "connection_reuse", True,
       "reuse needs an engine that keeps the connection open (llama-server closes after every "
       "stream); the shared client itself is proved by HTU-1001"),
    _r("ORCH-3612", "connection_reuse", True, "SHOULD; same engine limitation as HTU-PERF-1301"),
)  # fmt: skip

_BY_PAIR: Final[dict[tuple[str, str], DeclarationRule]] = {
    (r.requirement, r.capability): r for r in DECLARATION_RULES
}


def _normalise(capability: str) -> str:
    return capability.split(":", 1)[1] if capability.startswith("unsupported:") else capability


def declaration_rule(requirement: str, capability: str) -> DeclarationRule:
    """The rule for one pair: the table's row, else the default by the requirement's level.

    Default: a MUST (or an ID the catalogue does not know) allows no declaration; a SHOULD or MAY
    allows any.
    """
    cap = _normalise(capability)
    row = _BY_PAIR.get((requirement, cap))
    if row is not None:
        return row
    level = get_requirement(requirement).level if is_known(requirement) else None
    if level in (Level.SHOULD, Level.MAY):
        return DeclarationRule(requirement, cap, True, f"{level.value}: not mandatory")
    return DeclarationRule(
        requirement, cap, False, "MUST: no contract text makes this capability optional here"
    )


def declaration_allowed(requirement: str, capability: str) -> bool:
    """May ``capability`` be declared unsupported without failing ``requirement``?"""
    return declaration_rule(requirement, capability).allowed
