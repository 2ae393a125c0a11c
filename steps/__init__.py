"""pytest-bdd step definitions and the fixtures they share."""
