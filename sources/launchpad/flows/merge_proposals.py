"""`launchpad-merge_proposals`: what a member did on merge proposals.

Two lists, every status each: `person.getMergeProposals` (proposals from repositories
the member owns) and `person.getRequestedReviews` (proposals where the member's review
was asked: without it, their reviews and votes on colleagues' work are invisible). A
proposal in both is read in the first only. Then each proposal's comments, every page.

A proposal's id is the number in its URL (`.../+merge/123`): the web service does not
export it as a field. Votes are read from the comments that carry them: a vote
reference only points at a reviewer's latest vote, and every vote cast is a comment.
"""

from __future__ import annotations

from typing import Iterator

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from etl.kit.walk import Item
from sources.launchpad.client import Session
from sources.launchpad.query import LaunchpadQuery

STATUSES = ["Work in progress", "Needs review", "Approved", "Rejected", "Merged", "Code failed to merge",
            "Queued", "Superseded"]
# (event_id suffix, relation type, who acted, when)
OWN_ACTS = (("c", "merge_proposal_created", "registrant_link", "date_created"),
            ("rq", "merge_proposal_review_requested", "registrant_link", "date_review_requested"),
            ("r", "merge_proposal_reviewed", "reviewer_link", "date_reviewed"),
            ("m", "merge_proposal_merged", "merge_reporter_link", "date_merged"))


def _item(session: Session, mp: dict, requested: bool) -> Item | None:
    link = mp["self_link"]
    if requested and link.split("/~", 1)[-1].split("/", 1)[0] == session.query.member:
        return None  # the member's own repository: read from getMergeProposals already
    n = int(link.rstrip("/").rsplit("/+merge/", 1)[1])
    props = {"title": (mp.get("description") or "").split("\n", 1)[0][:200], "status": mp.get("queue_status"),
             "web_link": mp.get("web_link"), "source": mp.get("source_git_path"),
             "target": mp.get("target_git_path")}
    act = lambda who, at, suffix, relation, metrics=None, **rel: session.act(  # noqa: E731
        who, at, f"mp-{n}-{suffix}", parent=n, relation=relation, properties=props, relation_properties=rel,
        metrics=metrics)
    records = [act(mp.get(who), mp.get(at), suffix, relation, status=mp.get("queue_status"))
               for suffix, relation, who, at in OWN_ACTS]

    def comment(c: dict, _: int) -> list:
        who, at, vote = c.get("author_link"), c.get("date_created"), c.get("vote")
        length = {"message_length": len(c.get("message_body") or c.get("content") or "")}
        return [act(who, at, f"c{c['id']}", "merge_proposal_comment", length, subject=c.get("title"), vote=vote),
                vote and act(who, at, f"v{c['id']}", "merge_proposal_vote", vote=vote, vote_tag=c.get("vote_tag"))]

    return Item([r for r in records if r], [(session.relative(mp["all_comments_collection_link"]), comment)])


@extract_method("launchpad-merge_proposals")
def extract_merge_proposals(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Proposals created, reviews requested, reviews, merges, comments and votes by `query.member`."""
    session = Session(query, settings, "merge_proposals")
    key = lambda mp: mp["self_link"]  # noqa: E731
    lists = [
        session.listing("person.getMergeProposals", lambda: session.member.getMergeProposals(status=STATUSES),
                        key, lambda mp: _item(session, mp, requested=False)),
        session.listing("person.getRequestedReviews", lambda: session.member.getRequestedReviews(status=STATUSES),
                        key, lambda mp: _item(session, mp, requested=True)),
    ]
    yield from session.walk(lists, cursor)
