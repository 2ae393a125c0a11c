"""``llorch-conformance list requirements|faults``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "list", help="list the requirement catalogue or the named faults"
    )
    p.add_argument("what", choices=["requirements", "faults"])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    raise NotImplementedError
