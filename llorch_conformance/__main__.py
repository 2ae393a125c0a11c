"""``python -m llorch_conformance …`` is ``llorch-conformance …``."""

from llorch_conformance.conformance.cli import console_main

console_main()
