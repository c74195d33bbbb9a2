"""Batch runs over data: ``ai.map`` / ``ai.amap`` (issue 14)."""
