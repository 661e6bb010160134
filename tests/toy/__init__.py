"""The toy platform: an in-test sandbox, its connector and its plugin (see tests/toy/plugin.py)."""
