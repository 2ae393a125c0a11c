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
    if args.what == "faults":
        return _list_faults(args)
    return _list_requirements(args)


def _list_requirements(args: argparse.Namespace) -> int:
    raise NotImplementedError


def _list_faults(args: argparse.Namespace) -> int:
    """The named faults of the mock engines (IDs are stable; see mock_engines.fault_catalogue)."""
    import json
    import sys

    from mock_engines import fault_catalogue

    specs = fault_catalogue()
    if args.format == "json":
        json.dump([s.to_dict() for s in specs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(s.id) for s in specs)
    for s in specs:
        params = ", ".join(f"{p.name}={p.default}" for p in s.params)
        applies = ",".join(s.applies_to) or "-"
        extra = f" [{params}]" if params else ""
        scope = " (engine-wide only)" if s.engine_level_only else ""
        sys.stdout.write(f"{s.id:<{width}}  {s.description}{extra}{scope}  applies to: {applies}\n")
    return 0
