"""The parts of `scripts/soak.py`, one idea each: the stack and its fleet (`stack`), the day's work
(`workload`), the faults drawn from the seed (`faults`), what is checked at the end from the
database and Temporal (`checks`), the printed timeline (`timeline`) and the RELIABILITY.md section
(`report`)."""
