"""The workflows: `ETLFlow` (batch), `StreamingETLFlow`, and the fan-out that launches many."""
