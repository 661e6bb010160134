"""Tests of the QST plugin (its own package: pytest runs in importlib mode)."""
