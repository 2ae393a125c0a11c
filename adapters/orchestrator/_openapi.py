"""The facade's OpenAPI 3.0 description, served at ``GET /openapi.json``.

Written here by hand, next to the routes it describes, from the same tables the code uses: the
enums of :mod:`adapters.api`, the integer widths of :class:`TaskRequest` and the limits of the
:class:`FacadeConfig` in force, so that a limit changed in the config is a limit changed in the
description. ``tests/orchestrator/test_openapi.py`` holds it to the routes (every route is
described, every described route answers), and the hostile suite fuzzes the facade against it
with schemathesis (``tests/hostile/test_facade_fuzz.py``).

Where a rule is wider than JSON Schema says easily (a completion needs ``prompt`` or ``inputs``;
``model_ref`` with ``://`` must use a known scheme; blank strings), the description is *looser*
than the code and says so in prose: fuzzing holds the code to reject everything the description
rejects, and a looser description keeps that check honest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llorch_conformance.adapters.api import (
    TASK_REQUEST_REQUIRED,
    DeterminismLevel,
    Engine,
    EventKind,
    KVHint,
    PlacementMode,
    Priority,
    Workload,
)

if TYPE_CHECKING:
    from ._app import FacadeConfig

__all__ = ["openapi_document"]

_I32_MAX = 2**31 - 1
_I64 = (-(2**63), 2**63 - 1)
_REF = "#/components/schemas/"


#: One SSE event of a task stream (``data`` is the event's compact JSON).
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": [k.value for k in EventKind]},
        "data": {"type": "string", "minLength": 2},
    },
}


def _enum(cls: Any, *, nullable: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "enum": [m.value for m in cls]}
    if nullable:  # OpenAPI 3.0.3: a nullable enum lists null among its values
        out["nullable"] = True
        out["enum"].append(None)
    return out


def _int(lo: int, hi: int, *, nullable: bool = False) -> dict[str, Any]:
    # A whole number: TaskRequest takes an integral JSON number (5000.0) as the integer 5000,
    # so "integer" would be stricter than the code; multipleOf 1 says exactly what it takes.
    out: dict[str, Any] = {"type": "number", "multipleOf": 1, "minimum": lo, "maximum": hi}
    if nullable:
        out["nullable"] = True
    return out


def _str(*, nullable: bool = False, nonempty: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string"}
    if nonempty:
        out["minLength"] = 1
    if nullable:
        out["nullable"] = True
    return out


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Correlation-Id": {"$ref": "#/components/headers/CorrelationId"}},
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _err(description: str) -> dict[str, Any]:
    return _json({"$ref": _REF + "ErrorEnvelope"}, description)


def _auth_err(description: str) -> dict[str, Any]:
    return _json({"$ref": _REF + "AuthError"}, description)


def _gate(*, body: bool = False) -> dict[str, Any]:
    """Answers of the gate in front of every route (auth, cross-site, media type, size)."""
    out = {
        "401": _auth_err("missing or wrong bearer token (40101 MISSING_TOKEN / 40102 BAD_TOKEN)"),
        "403": _auth_err(
            "token-less cross-site request (40302 FOREIGN_ORIGIN / 40303 FOREIGN_HOST)"
        ),
    }
    if body:
        out["413"] = _err("body larger than the facade's max_body_bytes")
        out["415"] = _err("a POST body that is not application/json")
    return out


def _task_request(max_deadline_ms: int) -> dict[str, Any]:
    placement = {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "description": "placement overrides; mode pin needs pin_pool_id",
        "properties": {
            "mode": _enum(PlacementMode, nullable=True),
            "pin_pool_id": _str(nullable=True),
            "prefer_pools": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "avoid_pools": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "require_device_mask": _str(nullable=True),
            "allow_fallback": {"type": "boolean"},
        },
    }
    return {
        "type": "object",
        "description": (
            "The contract's TaskRequest. Rules the schema does not spell out (the facade checks "
            "them and answers 400 naming the field): strings must not be blank; a model_ref "
            "with '://' uses hf:, file:, https://, http://, s3:// or oci://; a completion needs "
            "prompt or non-empty inputs; placement mode pin needs pin_pool_id. A deadline_ms of "
            "0 or less is answered 400 DEADLINE_UNMET."
        ),
        "additionalProperties": False,
        "required": list(TASK_REQUEST_REQUIRED),
        "properties": {
            "task_id": _str(),
            "session_id": _str(),
            "workload": _enum(Workload),
            "model_ref": _str(),
            "engine": _enum(Engine),
            "ctx": _int(1, _I32_MAX),
            "priority": _enum(Priority),
            "max_tokens": _int(1, _I32_MAX),
            "deadline_ms": _int(1, max_deadline_ms),
            "seed": _int(*_I64, nullable=True),
            "determinism": _enum(DeterminismLevel, nullable=True),
            "sampler_profile_version": _str(nullable=True),
            "prompt": _str(nullable=True, nonempty=False),
            "inputs": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "expected_tokens": _int(0, _I32_MAX, nullable=True),
            "kv_hint": _enum(KVHint, nullable=True),
            "placement": placement,
        },
    }


def openapi_document(config: FacadeConfig) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of a facade built with ``config`` (a fresh dict each call)."""
    task_id = {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    cid_param = {
        "name": "X-Correlation-Id",
        "in": "header",
        "required": False,
        "description": "echoed on the answer; generated (UUIDv4) when absent",
        "schema": {"type": "string"},
    }
    token_sec: list[dict[str, list[str]]] = [{"bearerAuth": []}, {}]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "llorch-conformance orchestrator facade",
            "version": "1.0.0",
            "description": (
                "Task admission, SSE streaming, cancel, capabilities, pool health and metrics "
                "over an adapter host. Without a configured token only loopback clients are "
                "served, and cross-site requests are refused (403). Limits: deadline_ms at most "
                f"{config.max_deadline_ms}; a task not opened within {config.unopened_ttl_ms} ms "
                f"(or its deadline) is dropped; bodies at most {config.max_body_bytes} bytes; "
                f"{config.admission_capacity} unfinished tasks at once (then 429)."
            ),
        },
        "security": token_sec,
        "paths": {
            "/v1/tasks": {
                "post": {
                    "operationId": "enqueueTask",
                    "parameters": [cid_param],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF + "TaskRequest"}}},
                    },
                    "responses": {
                        "202": _json(
                            {"$ref": _REF + "TaskAccepted"},
                            "admitted",
                            links={
                                "StreamTask": {
                                    "operationId": "streamTask",
                                    "parameters": {"task_id": "$response.body#/task_id"},
                                },
                                "CancelTask": {
                                    "operationId": "cancelTask",
                                    "parameters": {"task_id": "$response.body#/task_id"},
                                },
                            },
                        ),
                        "400": _err("invalid TaskRequest or body (field names the culprit)"),
                        **_gate(body=True),
                        "429": _json(
                            {"$ref": _REF + "ErrorEnvelope"},
                            "admission queue full (ADMISSION_REJECT)",
                            headers={
                                "X-Correlation-Id": {"$ref": "#/components/headers/CorrelationId"},
                                "Retry-After": {"schema": {"type": "string"}, "required": True},
                                "X-Backoff-Ms": {"schema": {"type": "string"}, "required": True},
                            },
                        ),
                        "503": _err("the pool is not available, or the facade is stopping"),
                    },
                }
            },
            "/v1/tasks/{task_id}/stream": {
                "get": {
                    "operationId": "streamTask",
                    "parameters": [task_id, cid_param],
                    "responses": {
                        "200": {
                            "description": (
                                "SSE: started, token*, metrics*, then one end or error; "
                                "': keep-alive' comments when heartbeat_ms is set"
                            ),
                            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                        },
                        "404": _err("unknown (or expired) task"),
                        "409": _err("the stream is already open"),
                        **_gate(),
                    },
                }
            },
            "/v1/tasks/{task_id}/cancel": {
                "post": {
                    "operationId": "cancelTask",
                    "parameters": [task_id, cid_param],
                    "responses": {
                        "204": {
                            "description": "cancelled (idempotent; unknown ids too)",
                            "headers": {
                                "X-Correlation-Id": {"$ref": "#/components/headers/CorrelationId"}
                            },
                            "links": {
                                "StreamCancelled": {
                                    "operationId": "streamTask",
                                    "parameters": {"task_id": "$request.path.task_id"},
                                }
                            },
                        },
                        **_gate(body=True),
                    },
                }
            },
            "/v1/workers/register": {
                "post": {
                    "operationId": "registerWorker",
                    "security": [{"bearerAuth": []}],
                    "parameters": [cid_param],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": _REF + "WorkerRegistration"}}
                        },
                    },
                    "responses": {
                        "200": _json({"$ref": _REF + "WorkerRegistered"}, "bound"),
                        "400": _err("invalid registration (field names the culprit)"),
                        **_gate(body=True),
                    },
                }
            },
            "/v1/capabilities": {
                "get": {
                    "operationId": "capabilities",
                    "parameters": [cid_param],
                    "responses": {
                        "200": _json({"$ref": _REF + "Capabilities"}, "engines of every pool"),
                        **_gate(),
                    },
                }
            },
            "/v1/pools/{pool_id}/health": {
                "get": {
                    "operationId": "poolHealth",
                    "parameters": [
                        {
                            "name": "pool_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        cid_param,
                    ],
                    "responses": {
                        "200": _json({"$ref": _REF + "PoolHealth"}, "health of the pool"),
                        "404": _err("unknown pool"),
                        **_gate(),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "parameters": [cid_param],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_gate(),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "parameters": [cid_param],
                    "responses": {
                        "200": _json({"$ref": _REF + "Health"}, "the facade runs tasks"),
                        "503": _json({"$ref": _REF + "Health"}, "the facade cannot run tasks"),
                        "403": _gate()["403"],
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "parameters": [cid_param],
                    "responses": {
                        "200": _json({"type": "object"}, "this document"),
                        "403": _gate()["403"],
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "headers": {
                "CorrelationId": {
                    "description": "the request's X-Correlation-Id, or a generated UUIDv4",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                }
            },
            "schemas": {
                "TaskRequest": _task_request(config.max_deadline_ms),
                "TaskAccepted": {
                    "type": "object",
                    "required": [
                        "task_id",
                        "queue_position",
                        "predicted_start_ms",
                        "backoff_ms",
                        "streams",
                    ],
                    "properties": {
                        "task_id": {"type": "string"},
                        "queue_position": {"type": "integer", "minimum": 0},
                        "predicted_start_ms": {"type": "integer", "minimum": 0},
                        "backoff_ms": {"type": "integer", "minimum": 0},
                        "streams": {
                            "type": "object",
                            "required": ["sse"],
                            "properties": {"sse": {"type": "string"}},
                        },
                    },
                },
                "ErrorEnvelope": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "engine": {"type": "string"},
                        "retriable": {"type": "boolean"},
                        "retry_after_ms": {"type": "integer", "minimum": 0},
                        "policy_label": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
                "AuthError": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "integer", "enum": [40101, 40102, 40302, 40303]},
                        "message": {"type": "string"},
                        "hint": {"type": "string"},
                    },
                },
                "WorkerRegistration": {
                    "type": "object",
                    "required": ["engine"],
                    "description": "url defaults to mock://local for engine mock",
                    "properties": {
                        "engine": _str(),
                        "url": _str(),
                        "pool_id": _str(),
                        "replica_id": _str(),
                        "config": {"type": "object"},
                    },
                },
                "WorkerRegistered": {
                    "type": "object",
                    "required": ["ok", "identity", "pool_id", "replica_id"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "identity": {"type": "string"},
                        "pool_id": {"type": "string"},
                        "replica_id": {"type": "string"},
                    },
                },
                "Capabilities": {
                    "type": "object",
                    "required": ["api_version", "engines"],
                    "properties": {
                        "api_version": {"type": "string"},
                        "engines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["engine", "engine_version", "pool_id"],
                                "properties": {
                                    "engine": {"type": "string"},
                                    "engine_version": {"type": "string"},
                                    "pool_id": {"type": "string"},
                                    "concurrency": {"type": "integer", "nullable": True},
                                },
                            },
                        },
                    },
                },
                "PoolHealth": {
                    "type": "object",
                    "required": ["live", "ready", "draining", "metrics", "last_error"],
                    "properties": {
                        "live": {"type": "boolean"},
                        "ready": {"type": "boolean"},
                        "draining": {"type": "boolean"},
                        "metrics": {
                            "type": "object",
                            "required": ["queue_depth", "in_flight", "breakers"],
                            "properties": {
                                "queue_depth": {"type": "integer", "minimum": 0},
                                "in_flight": {"type": "integer", "minimum": 0},
                                "breakers": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                        "last_error": {"type": "string", "nullable": True},
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}},
                },
            },
        },
    }
