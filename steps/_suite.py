"""Binds every packaged feature to pytest (collected by ``--llorch-suite`` and ``run``).

The step definitions and fixtures come from :mod:`steps._plugin`, which the llorch pytest plugin
registers when the suite is collected; this module only turns scenarios into tests.
"""

from pytest_bdd import scenarios

from llorch_conformance.features import features_root

scenarios(str(features_root()))
