"""``llorch-conformance serve <dialect>``: run a mock engine as a server."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="serve a mock engine")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    raise NotImplementedError
