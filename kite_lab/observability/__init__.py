"""Observability: Prometheus metrics, JSON-lines logs and traces.

Everything here is fed from ``kite.event_bus`` subscriptions, never called from the call
path, so adding a metric or a log field can never change what a call does or break it.
"""
