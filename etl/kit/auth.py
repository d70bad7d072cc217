"""How a source's credentials travel: in a header, and only to the client's base URL.

Each auth gives the headers to send and the secrets to scrub from every message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bearer:
    """`Authorization: Bearer TOKEN` (or another scheme, e.g. GitHub's `token`)."""

    token: str = field(repr=False)
    scheme: str = "Bearer"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self.token}"}

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


@dataclass(frozen=True)
class TokenHeader:
    """The token alone in a header of the API's choosing, e.g. `X-Api-Key: TOKEN`."""

    token: str = field(repr=False)
    header: str = "X-Api-Key"

    def headers(self) -> dict[str, str]:
        return {self.header: self.token}

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


@dataclass(frozen=True)
class Basic:
    """HTTP basic authentication."""

    user: str
    password: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    def secrets(self) -> tuple[str, ...]:
        return (self.password, base64.b64encode(f"{self.user}:{self.password}".encode()).decode())
