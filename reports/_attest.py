"""Attestation: an in-toto Statement with the test-result predicate over the bundle's manifest,
optionally signed with a user-supplied Ed25519 key in a DSSE envelope.

Formats chosen, and where from:

* Statement v1 (``_type`` ``https://in-toto.io/Statement/v1``) whose only subject is
  ``manifest.json`` by SHA-256 — the manifest in turn pins every file, so one digest covers the
  bundle. Predicate type ``https://in-toto.io/attestation/test-result/v0.1`` with ``result``
  PASSED/WARNED/FAILED, ``configuration`` (resource descriptors of ``run_config.json``,
  ``environment.json`` and ``requirements.json``) and ``passedTests``/``warnedTests``/``failedTests``
  named ``<adapter>/<requirement>`` — the unit a release policy asks about. FAILED when the run's
  exit code is not 0; WARNED when it passed but some verdict is unsupported or skipped (a skip
  never counts as support); PASSED otherwise. Failures and errors go to ``failedTests``.
* Signing: DSSE v1 (``payloadType`` ``application/vnd.in-toto+json``, signature over
  ``PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body``), the envelope in-toto tooling
  expects. Keys are PEM (PKCS#8 private, SubjectPublicKeyInfo public) or OpenSSH Ed25519; the
  ``keyid`` is the SHA-256 of the raw public key. Ed25519 via ``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from llorch_conformance.adapters.api import ConfigError

__all__ = [
    "DSSE_PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "build_statement",
    "key_id",
    "load_private_key",
    "load_public_key",
    "pae",
    "sign_statement",
    "verify_envelope",
]

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://in-toto.io/attestation/test-result/v0.1"
DSSE_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"


def build_statement(
    summary: Mapping[str, Any], manifest_sha256: str, config_digests: Mapping[str, str]
) -> dict[str, Any]:
    passed: list[str] = []
    warned: list[str] = []
    failed: list[str] = []
    for v in summary["verdicts"]:
        name = f"{v['adapter']}/{v['requirement']}"
        {"pass": passed, "fail": failed, "error": failed}.get(v["status"], warned).append(name)
    if summary["exit_code"] != 0:
        result = "FAILED"
    elif warned:
        result = "WARNED"
    else:
        result = "PASSED"
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "manifest.json", "digest": {"sha256": manifest_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": result,
            "configuration": [
                {"name": name, "digest": {"sha256": digest}}
                for name, digest in sorted(config_digests.items())
            ],
            "passedTests": passed,
            "warnedTests": warned,
            "failedTests": failed,
        },
    }


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _read_key_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc}") from None


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from PEM (PKCS#8) or OpenSSH; a clear ConfigError otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_ssh_private_key,
    )

    data = _read_key_bytes(path)
    try:
        key = (
            load_ssh_private_key(data, None)
            if b"OPENSSH PRIVATE KEY" in data
            else load_pem_private_key(data, None)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM/OpenSSH private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the signing key must be Ed25519, got {type(key).__name__}")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_public_key,
        load_ssh_public_key,
    )

    data = _read_key_bytes(path)
    try:
        key = (
            load_ssh_public_key(data)
            if data.startswith(b"ssh-ed25519")
            else load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a PEM/OpenSSH public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: the public key must be Ed25519, got {type(key).__name__}")
    return key


def key_id(public_key: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign_statement(statement_bytes: bytes, private_key: Any) -> dict[str, Any]:
    """A DSSE envelope over the exact statement bytes written to the bundle."""
    sig = private_key.sign(pae(DSSE_PAYLOAD_TYPE, statement_bytes))
    return {
        "payloadType": DSSE_PAYLOAD_TYPE,
        "payload": base64.b64encode(statement_bytes).decode("ascii"),
        "signatures": [
            {
                "keyid": key_id(private_key.public_key()),
                "sig": base64.b64encode(sig).decode("ascii"),
            }
        ],
    }


def verify_envelope(envelope: Mapping[str, Any], public_key: Any) -> tuple[bool, bytes, str]:
    """(valid, payload bytes, reason). Valid when one signature verifies with ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    try:
        payload_type = str(envelope["payloadType"])
        body = base64.b64decode(str(envelope["payload"]), validate=True)
        sigs = list(envelope["signatures"])
    except (KeyError, TypeError, ValueError) as exc:
        return False, b"", f"malformed DSSE envelope ({exc})"
    if payload_type != DSSE_PAYLOAD_TYPE:
        return False, body, f"unexpected payloadType {payload_type!r}"
    kid = key_id(public_key)
    msg = pae(payload_type, body)
    for s in sigs:
        try:
            raw_sig = base64.b64decode(str(s["sig"]), validate=True)
        except (KeyError, TypeError, ValueError):
            continue
        try:
            public_key.verify(raw_sig, msg)
        except InvalidSignature:
            continue
        return (
            True,
            body,
            "" if s.get("keyid") in (None, "", kid) else "keyid differs from the key's",
        )
    return False, body, "no signature verifies with the given public key"


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    return (json.dumps(statement, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
