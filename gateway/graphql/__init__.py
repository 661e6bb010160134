"""The GraphQL layer: unified types, root fields, and schema assembly."""

from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.schema import BrokerGraphSchema, build_schema

__all__ = ["BrokerGraphSchema", "RequestContext", "build_schema", "context_of"]
