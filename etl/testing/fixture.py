"""The kit's fixture server, for a source's offline API in its tests: routes and data are the
source's, paging, the token check and injected faults (`inject("429", after=3)`) the kit's.
See etl/kit/fixture.py."""

from etl.kit.fixture import Answer, FixtureServer, Listing

__all__ = ["Answer", "FixtureServer", "Listing"]
