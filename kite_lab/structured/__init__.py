"""Structured output: schema -> provider-native request, validation, repair (issue 15)."""
