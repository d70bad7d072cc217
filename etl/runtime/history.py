"""Reading flows' histories: the figures SPEC bounds (largest payload, events per run) and
exports for replay tests."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowHistory


@dataclass
class HistoryFigures:
    runs: int
    max_history_events: int
    max_payload_bytes: int


def _payloads(message):
    """Every Payload inside a protobuf message, however deeply nested (maps included)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif hasattr(value, "ListFields"):
            items = [value]
        else:  # a repeated field (protobuf 7 has no `label` to ask)
            items = list(value)
        for item in items:
            if not hasattr(item, "ListFields"):
                continue
            if item.DESCRIPTOR.name == "Payload":
                yield item
            else:
                yield from _payloads(item)


async def histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run (continue-as-new generation) of the flow, oldest first."""
    runs = [e async for e in client.list_workflows(f'WorkflowId="{workflow_id}"')]
    runs.sort(key=lambda e: e.start_time)
    return [await client.get_workflow_handle(workflow_id, run_id=e.run_id).fetch_history() for e in runs]


async def figures(client: Client, workflow_id: str) -> HistoryFigures:
    runs = await histories(client, workflow_id)
    largest = 0
    for history in runs:
        for event in history.events:
            for payload in _payloads(event):
                largest = max(largest, payload.ByteSize())
    return HistoryFigures(len(runs), max((len(h.events) for h in runs), default=0), largest)
