"""Tests of the conformance harness itself (catalogue, plugin, CLI, broken-adapter self-test)."""
