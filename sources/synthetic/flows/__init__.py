"""The synthetic source's flows: `synthetic-events`, deterministic records for tests and the benchmark."""
