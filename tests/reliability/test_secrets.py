"""Secrets stay out of Temporal, and the optional payload encryption hides event content.

With a GitHub token, a Launchpad credentials file, a database password and an encryption key
configured, flows of every source (batch and streaming, one failing) run; then every event of
every run of every flow is scanned, raw and with each payload decrypted, together with the
memo and search attributes, for any of those values. With the key set, every payload a flow
writes is encrypted (search attributes excepted: the server must index them), a client
without the key cannot read results, and the codec server decodes them for the UI.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client, WorkflowFailureError

from etl.runtime.client import connect
from etl.runtime.codec import ENCODING, EncryptionCodec
from etl.runtime.history import _payloads, histories
from etl.workflows.flow_io import FlowSummary
from sources.github.fixture.server import GitHubFixture
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.flows import FlowRunner
from tests.reliability.checks import assert_exact, reconcile, replay
from tests.reliability.test_source_faults import (
    GH_REPOS,
    GH_SINCE,
    GH_UNTIL,
    github_expected,
)


def load_codec_server():
    import importlib.util

    from etl.core.settings import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("codec_server_script", PROJECT_ROOT / "scripts" / "codec_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def scan(client: Client, codec: EncryptionCodec, workflow_ids: list[str], needles: dict[str, str]) -> dict:
    """Every event, payload (decrypted), memo and search attribute of every run of the flows:
    which secrets appear where, and how many payloads were not encrypted."""
    found: list[str] = []
    events = payloads = plain = 0
    plain_kinds: set[str] = set()

    def look(where: str, data: bytes) -> None:
        for name, value in needles.items():
            if value.encode() in data:
                found.append(f"{name} in {where}")

    for wid in workflow_ids:
        for n, history in enumerate(await histories(client, wid)):
            for event in history.events:
                events += 1
                where = f"{wid} run {n} event {event.event_id} ({event.WhichOneof('attributes')})"
                look(where, event.SerializeToString())
                for payload in _payloads(event):
                    payloads += 1
                    if payload.metadata.get("encoding") != ENCODING:
                        plain += 1
                        plain_kinds.add(event.WhichOneof("attributes"))
                    inner = (await codec.decode([payload]))[0]
                    look(where + " decrypted", inner.SerializeToString())
        description = await client.get_workflow_handle(wid).describe()
        look(f"{wid} memo", json.dumps(await description.memo(), default=str).encode())
        look(f"{wid} search attributes", repr(description.typed_search_attributes).encode())
    return {"events": events, "payloads": payloads, "unencrypted_payloads": plain,
            "unencrypted_in": sorted(plain_kinds), "found": found}


async def test_no_secret_reaches_history_memo_or_search_attributes(stack, table_name, task_queue, db, tmp_path,
                                                                   case):
    from sources.launchpad.fixture import FixtureService, write_credentials
    from sources.launchpad.fixture.world import WINDOW
    from tests.sources.test_launchpad import expected as lp_expected

    token = "ghp_" + secrets.token_hex(18)
    key = secrets.token_urlsafe(32)
    password = "pw-" + secrets.token_hex(12)
    credentials = write_credentials(str(tmp_path / f"lp-credentials-{secrets.token_hex(6)}.txt"))
    with GitHubFixture(seed=3, repos=GH_REPOS[:1], max_per_page=5, require_token=token) as gh, \
            FixtureService(seed=0) as lp:
        settings = stack.settings.replace(
            events_table=table_name, db_password=password, encryption_key=key).with_env(
            GITHUB_API_URL=gh.url, GITHUB_TOKEN=token, LP_WEB_ROOT=lp.root, LP_CREDENTIALS_FILE=credentials,
            LP_CACHE_DIR=str(tmp_path / "lp"))
        needles = {"GITHUB_TOKEN": token, "ETL_ENCRYPTION_KEY": key, "DB_PASSWORD": password,
                   "LP_CREDENTIALS_FILE path": credentials, "LP OAuth token": "fixture-token",
                   "LP OAuth secret": "fixture-secret"}
        record = case("secrets", "Secrets out of history", "ETLFlow, StreamingETLFlow",
                      "GITHUB_TOKEN, LP_CREDENTIALS_FILE (and the OAuth token in it), DB_PASSWORD and "
                      "ETL_ENCRYPTION_KEY configured; flows of every source, batch and streaming, one failing",
                      flows=5)
        client = await connect(settings)
        owner, repo = GH_REPOS[0].split("/")
        gh_args = {"owner": owner, "repo": repo, "since": GH_SINCE.isoformat(), "until": GH_UNTIL.isoformat()}
        lp_args = {"member": "alice", "data_date_start": WINDOW[0].date().isoformat(),
                   "data_date_end": WINDOW[1].date().isoformat()}
        syn_args = {"count": 3_000, "seed": 95, "bad_rate": 0.01, "page_size": 250}
        async with FlowRunner(client, settings, task_queue) as runner:
            handles = [
                await runner.start("github-issues", gh_args, batch_size=20),
                await runner.start("github-pull_requests", gh_args, streaming=True),
                await runner.start("launchpad-bugs", lp_args, batch_size=10),
                await runner.start("synthetic-events", syn_args, streaming=True, chunk_count=2),
                # Fails at once: GitHub has no such repository (a 404 the worker sees with its token).
                await runner.start("github-issues", dict(gh_args, repo="no-such-repo")),
            ]
            outcomes = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles),
                                                             return_exceptions=True), timeout=240)
        summaries, failure = outcomes[:-1], outcomes[-1]
        for outcome in summaries:
            assert not isinstance(outcome, BaseException), outcome
        assert isinstance(failure, WorkflowFailureError), failure
        report = await scan(client, EncryptionCodec(key), [h.id for h in handles], needles)
        # The flows did their work, with the credentials: private Launchpad bugs included.
        expected = (github_expected(gh) | expected_event_ids(SyntheticQuery(**syn_args))
                    | {e[0] for e in lp_expected(lp.world, "launchpad-bugs", "alice", authenticated=True)})
        public = {e[0] for e in lp_expected(lp.world, "launchpad-bugs", "alice", authenticated=False)}
        private = {e[0] for e in lp_expected(lp.world, "launchpad-bugs", "alice", authenticated=True)} - public
    figures = reconcile(db, expected, summaries, expected_rejects=syn_args["count"] - len(
        expected_event_ids(SyntheticQuery(**syn_args))))
    replayed = sum([await replay(client, h.id) for h in handles])
    record.record(figures, replayed_runs=replayed, flows=len(handles), events_scanned=report["events"],
                  payloads_scanned=report["payloads"],
                  unencrypted_payloads=report["unencrypted_payloads"], unencrypted_in=report["unencrypted_in"],
                  secrets_found=len(report["found"]))

    assert report["found"] == [], "\n".join(report["found"])
    assert report["payloads"] > 50
    assert_exact(figures)
    assert private, "the fixture has no private bugs of alice's in the window: the credentials went untested"
    # Search attributes are the only payloads the codec cannot touch: the server indexes them; and
    # `workflow.patched` markers, which the SDK's core writes itself and which hold only the patch id.
    assert set(report["unencrypted_in"]) <= {"workflow_execution_started_event_attributes",
                                             "upsert_workflow_search_attributes_event_attributes",
                                             "marker_recorded_event_attributes"}


async def test_encrypted_payloads_are_unreadable_without_the_key(stack, table_name, task_queue, db, case):
    key = secrets.token_urlsafe(32)
    settings = stack.settings.replace(events_table=table_name, encryption_key=key)
    client = await connect(settings)
    args = {"count": 20_000, "seed": 96, "bad_rate": 0.01, "page_size": 500}
    record = case("encryption", "Payload encryption", "ETLFlow, StreamingETLFlow",
                  "ETL_ENCRYPTION_KEY set on workers and launcher: AES-256-GCM payload codec", records=args["count"])
    async with FlowRunner(client, settings, task_queue) as runner:
        batch = await runner.start("synthetic-events", args, batch_size=5_000)
        stream = await runner.start("synthetic-events", dict(args, seed=97), streaming=True, chunk_count=2)
        summaries = [await batch.result(), await stream.result()]
    expected = expected_event_ids(SyntheticQuery(**args)) | expected_event_ids(SyntheticQuery(**dict(args, seed=97)))
    figures = reconcile(db, expected, summaries, expected_rejects=2 * args["count"] - len(expected))

    # Every payload in history is sealed: marked as encrypted, and its plaintext nowhere in it.
    codec = EncryptionCodec(key)
    encrypted = plain = 0
    for wid in (batch.id, stream.id):
        for history in await histories(client, wid):
            for event in history.events:
                for payload in _payloads(event):
                    if event.WhichOneof("attributes").startswith(("workflow_execution_started", "upsert_workflow")) \
                            and payload.metadata.get("type"):
                        continue  # a search attribute (it carries its index type), which the server must read
                    if event.WhichOneof("attributes") == "marker_recorded_event_attributes" \
                            and "patch" in event.marker_recorded_event_attributes.marker_name:
                        continue  # a `workflow.patched` marker: the SDK's core writes it, holding only the patch id
                    if payload.metadata.get("encoding") == ENCODING:
                        encrypted += 1
                        inner = codec.decrypt(payload)  # json/plain, or binary/null for a None
                        assert not inner.data or inner.data not in payload.data
                        assert b"synthetic" not in payload.data
                    else:
                        plain += 1
    # Without the key, or with another key, nothing decodes.
    plain_client = await Client.connect(settings.temporal_host, namespace=settings.temporal_namespace)
    with pytest.raises(Exception) as no_key:
        await plain_client.get_workflow_handle(batch.id, result_type=FlowSummary).result()
    wrong_client = await connect(settings.replace(encryption_key=secrets.token_urlsafe(32)))
    with pytest.raises(Exception) as wrong_key:
        await wrong_client.get_workflow_handle(batch.id, result_type=FlowSummary).result()
    # The codec server decodes for the UI, and only for the UI's origin.
    codec_server = load_codec_server().CodecServer(codec, port=0,
                                                   origins=("http://localhost:8233",)).start()
    try:
        start = (await batch.fetch_history()).events[0]
        sealed = start.workflow_execution_started_event_attributes.input
        body = json_format_of(sealed)
        decoded = post(codec_server.url + "/default/decode", body, origin="http://localhost:8233")
        resealed = post(codec_server.url + "/encode", json.dumps(decoded).encode())
        reopened = post(codec_server.url + "/decode", json.dumps(resealed).encode())
        preflight = request(codec_server.url + "/decode", "OPTIONS", origin="http://localhost:8233")
        refused = request(codec_server.url + "/decode", "OPTIONS", origin="http://evil.example")
    finally:
        codec_server.stop()
    record.record(figures, encrypted_payloads=encrypted, plain_payloads=plain,
                  replayed_runs=await replay(client, batch.id) + await replay(client, stream.id))

    assert_exact(figures)
    assert encrypted > 20 and plain == 0
    assert "binary/encrypted" in chain(no_key.value), chain(no_key.value)
    assert "EncryptionKeyMismatch" in chain(wrong_key.value), chain(wrong_key.value)
    assert [p.metadata["encoding"] for p in sealed.payloads] == [ENCODING]
    inner = decoded["payloads"][0]
    assert json.loads(_b64(inner["data"]))["extract_strategy"] == "synthetic-events"
    assert _b64(resealed["payloads"][0]["metadata"]["encoding"]) == ENCODING and reopened == decoded
    assert preflight[0] == 204 and preflight[1].get("Access-Control-Allow-Origin") == "http://localhost:8233"
    assert refused[0] == 403 and "Access-Control-Allow-Origin" not in refused[1]
    assert codec_server.address[0] == "127.0.0.1"


def chain(exc: BaseException | None) -> str:
    """Every exception in a chain, as `Type: message` lines."""
    lines = []
    while exc is not None:
        lines.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(lines)


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def json_format_of(payloads: Payloads) -> bytes:
    from google.protobuf import json_format

    return json_format.MessageToJson(payloads).encode()


def request(url: str, method: str, body: bytes | None = None, origin: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json", "X-Namespace": "default",
                                          **({"Origin": origin} if origin else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def post(url: str, body: bytes, origin: str | None = None) -> dict:
    status, _, data = request(url, "POST", body, origin)
    assert status == 200, data
    return json.loads(data)
