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
from sources.launchpad.client import Session, name_of, when
from sources.launchpad.flows import Item, Listing, walk
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
    mp_id = int(link.rstrip("/").rsplit("/+merge/", 1)[1])
    props = {"title": (mp.get("description") or "").split("\n", 1)[0][:200], "status": mp.get("queue_status"),
             "web_link": mp.get("web_link"), "source": mp.get("source_git_path"),
             "target": mp.get("target_git_path")}

    def act(suffix: str, relation: str, moment, actor_link: str, **relation_properties) -> dict:
        return session.record(event_id=f"mp-{mp_id}-{suffix}", parent=mp_id, event_type="merge_proposals",
                              relation_type=relation, actor=name_of(actor_link), moment=moment,
                              event_properties=props, relation_properties=relation_properties, metrics={})

    records = []
    for suffix, relation, who, at in OWN_ACTS:
        moment = when(mp.get(at))
        if session.mine(mp.get(who)) and session.in_range(moment):
            records.append(act(suffix, relation, moment, mp[who], status=mp.get("queue_status")))

    def comments(entries: list[dict], start: int) -> list[dict]:
        out = []
        for c in entries:
            moment = when(c.get("date_created"))
            if not (session.mine(c.get("author_link")) and session.in_range(moment)):
                continue
            record = act(f"c{c['id']}", "merge_proposal_comment", moment, c["author_link"], subject=c.get("title"),
                         vote=c.get("vote"))
            record["metrics"] = {"message_length": len(c.get("message_body") or c.get("content") or "")}
            out.append(record)
            if c.get("vote"):
                out.append(act(f"v{c['id']}", "merge_proposal_vote", moment, c["author_link"], vote=c["vote"],
                               vote_tag=c.get("vote_tag")))
        return out

    return Item(records, [(mp["all_comments_collection_link"], comments)])


@extract_method("launchpad-merge_proposals")
def extract_merge_proposals(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Proposals created, reviews requested, reviews, merges, comments and votes by `query.member`."""
    session = Session(query, settings)
    key = lambda mp: mp["self_link"]  # noqa: E731
    lists = [
        Listing("person.getMergeProposals", lambda: session.member.getMergeProposals(status=STATUSES),
                key, lambda mp: _item(session, mp, requested=False)),
        Listing("person.getRequestedReviews", lambda: session.member.getRequestedReviews(status=STATUSES),
                key, lambda mp: _item(session, mp, requested=True)),
    ]
    yield from walk(session, lists, cursor)
