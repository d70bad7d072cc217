"""The project's own commands (deploy.py, run_queue.py, schedule.py), run as an operator would."""

from __future__ import annotations

import asyncio

from etl.core.settings import PROJECT_ROOT


async def run_command(argv: list[str], timeout: float, on_line=None) -> tuple[int, str]:
    """Run a project command from the repository root; (exit code, last lines of its output).
    `on_line` sees each line of its output as it comes."""
    proc = await asyncio.create_subprocess_exec(*argv, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    lines: list[str] = []

    async def read() -> None:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.strip():
                lines.append(line)
                if on_line:
                    on_line(line)
        await proc.wait()

    try:
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"still running after {timeout:g} s: " + " | ".join(lines[-3:])[-300:]
    return proc.returncode, " | ".join(lines[-3:])[-400:]
