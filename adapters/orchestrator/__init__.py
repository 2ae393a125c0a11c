"""The orchestrator facade: task admission, SSE streaming, cancel, capabilities, pool health and
metrics over an :class:`adapters.host.AdapterHost`, with minimal bearer auth (AUTH-1001..1008)."""

from ._app import FacadeConfig, create_app
from ._auth import (
    MIN_TOKEN_LEN,
    AuthDecision,
    AuthPolicy,
    check_bind,
    check_same_site,
    is_loopback,
    parse_bearer,
)

__all__ = [
    "MIN_TOKEN_LEN",
    "AuthDecision",
    "AuthPolicy",
    "FacadeConfig",
    "check_bind",
    "check_same_site",
    "create_app",
    "is_loopback",
    "parse_bearer",
]
