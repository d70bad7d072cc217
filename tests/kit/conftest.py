"""A small fixture API for the kit's own tests: 23 widgets, served by the kit's fixture server."""

from __future__ import annotations

import pytest

from etl.kit.fixture import Answer, FixtureServer, Listing

TOKEN = "kit-token-5e1f"


class Widgets(FixtureServer):
    def __init__(self, **options):
        self.items = [{"id": i, "updated_at": f"2024-01-{1 + i // 4:02d}T00:00:00Z"} for i in range(23)]
        super().__init__([(r"/v1/widgets", lambda m, p: Listing(self.items)),
                          (r"/v1/widgets/(?P<id>\d+)", self.one)], **options)

    def one(self, match, params):
        found = [w for w in self.items if w["id"] == int(match["id"])]
        return found[0] if found else Answer(404, {"message": "no such widget"})


@pytest.fixture
def widgets():
    with Widgets(token=TOKEN, max_per_page=5) as api:
        yield api
