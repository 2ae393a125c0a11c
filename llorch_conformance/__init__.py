"""llorch-conformance: the one import namespace of the conformance suite.

Everything installed lives under ``llorch_conformance``; the repository keeps its declared layout
(``adapters/``, ``mock_engines/``, ``conformance/``, ``reports/``, ``steps/``, ``features/`` at the
top level) and this package reaches them through symlinks, so a source checkout and an installed
wheel import the same names and a vendor's own ``features/`` or ``steps/`` (or the PyPI
``adapters`` library) can never shadow ours::

    from llorch_conformance.adapters.api import TaskRequest, TokenEvent, WorkerAdapter
    from llorch_conformance.conformance import run_suite
    python -m llorch_conformance run --only vllm       # same as ``llorch-conformance run``

The package root imports nothing: importing it stays free.
"""
