"""Tests of the cTrader plugin: sandbox, connector, conformance, GraphQL end to end."""
