"""Launchpad: what people did on bugs, merge proposals and questions, through launchpadlib (see README.md)."""
