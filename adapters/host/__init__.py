"""The adapter host (ORCH-3600..3604, AH-1001..1007, AH-2001..2003): registry and facade over
worker adapters with retries before the first token, per-replica circuit breakers, a capability
cache, correlation ids, narration and metrics."""

from ._breaker import BreakerConfig, BreakerState, CircuitBreaker
from ._host import AdapterHost, PoolPolicy, ReplicaInfo
from ._metrics import HostMetrics
from ._narration import HUMAN_MAX, Narration, NarrationCapture, narrate

__all__ = [
    "HUMAN_MAX",
    "AdapterHost",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "HostMetrics",
    "Narration",
    "NarrationCapture",
    "PoolPolicy",
    "ReplicaInfo",
    "narrate",
]
