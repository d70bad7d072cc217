"""The Launchpad flows. Each names its top-level lists (named operations on the member, such as
`searchTasks`), what an entry of them holds (its own events, and collections such as a bug's
messages) and how one entry of a collection becomes events; `Session.walk` reads them all, to
their last pages, resumably, with the kit's walk (etl/kit/walk.py). Cursors hold refs relative to
the API base, from Launchpad's own `next_collection_link`, so a resumed walk reads exactly the
pages it had not finished.
"""
