"""Record/replay cassettes at the pipeline boundary (issue 16)."""
