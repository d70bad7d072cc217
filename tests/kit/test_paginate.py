"""Each paginator against the fixture server paging the same way: every item once, and a resume
from any page's cursor yields exactly the rest."""

from __future__ import annotations

import pytest

from etl.core.errors import SourceError
from etl.kit import BodyCursor, LinkHeader, NextLink, Offset, PageNumber, SourceClient
from tests.import_graph import imports_reached
from tests.kit.conftest import TOKEN, Widgets

STYLES = {
    "link": (LinkHeader(), None), "next": (NextLink("next"), "data"), "cursor": (BodyCursor(), "data"),
    "offset": (Offset(limit=5, total_field="total"), "data"), "page": (PageNumber(size=5), "data")}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_item_once_and_a_resume_from_each_cursor_yields_the_rest(style):
    paginator, items = STYLES[style]
    with Widgets(token=TOKEN, paging=style, max_per_page=5) as api, \
            SourceClient(api.url, auth=None, name="Widgets", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        params = {"limit": 5} if style == "cursor" else {"per_page": 5} if style in ("link", "next") else {}
        pages = list(client.pages("/v1/widgets", params, paginator, items))
        assert [w["id"] for page, _ in pages for w in page] == list(range(23))
        assert len(pages) == 5 and pages[-1][1] is None and all(cursor for _, cursor in pages[:-1])
        for k, (_, cursor) in enumerate(pages[:-1]):
            rest = list(client.pages("/v1/widgets", params, paginator, items, cursor=cursor))
            assert [w["id"] for page, _ in rest for w in page] == list(range(5 * (k + 1), 23))
        assert all(api.url not in (cursor or "") for _, cursor in pages), "cursors hold no host"


@pytest.mark.parametrize("paginator", [Offset(), PageNumber()])
def test_a_foreign_cursor_is_refused(paginator, widgets):
    with SourceClient(widgets.url, name="Widgets") as client, pytest.raises(SourceError, match="not a Widgets cursor"):
        list(client.pages("/v1/widgets", {}, paginator, "data", cursor="../../etc"))


def test_paginators_need_no_client_module():
    """A paginator asks the client it is handed for `name` and `relative()`: paginate.py imports no
    http.py, so the two are not a circle."""
    assert "etl.kit.http" not in imports_reached("etl.kit.paginate")
