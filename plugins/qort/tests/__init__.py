"""Tests of the QORT plugin: sandbox, connector, GraphQL end to end."""
