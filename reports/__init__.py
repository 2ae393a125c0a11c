"""Proof-bundle writer and renderers (Markdown, HTML, JUnit, Allure, JSON summary) and verify."""
