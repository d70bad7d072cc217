"""Data sources. Each package here is one source, discovered and imported automatically."""
