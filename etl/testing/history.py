"""A flow's history as a reader of the Temporal UI could see it, every payload decoded: where a
leaked secret would show."""

from __future__ import annotations

import base64
import json

from temporalio.client import Client, WorkflowHistory


def history_text(history: WorkflowHistory) -> str:
    """The history's JSON, followed by every payload's data decoded from base64."""
    texts: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    texts.append(base64.b64decode(value).decode("utf-8", "replace"))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    raw = history.to_json()
    walk(json.loads(raw))
    return raw + "\n".join(texts)


async def workflow_text(client: Client, workflow_id: str) -> str:
    """`history_text` of the latest run of `workflow_id`, with its memo and search attributes."""
    handle = client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    extra = [str(description.raw_description.workflow_execution_info.memo),
             str(description.raw_description.workflow_execution_info.search_attributes)]
    return history_text(await handle.fetch_history()) + "\n" + "\n".join(extra)


async def assert_no_secret(client: Client, workflow_id: str, *secrets: str) -> None:
    """Fail naming the secret when any of `secrets` is in the flow's history, memo or search attributes."""
    text = await workflow_text(client, workflow_id)
    for secret in secrets:
        assert secret, "an empty secret would be found anywhere: give the secret's value"
        assert secret not in text, f"a secret ({secret[:4]}...) is in the history of {workflow_id}"
