"""A deterministic synthetic source for the demo, the tests and the benchmark."""
