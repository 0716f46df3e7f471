"""A model call's whole conversation, read back from its agent region's history.

A region's model call carries only what is new since the region's previous one
(``ChatRequest.continues``): everything before is in the region's history already, as the
inputs and replies of its earlier model calls. Both the LLM activity and the fake that stands
in for it in workflow tests rebuild the conversation here. Activity code: it reads the history
through the worker's client, so it runs only inside an activity.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.agents.messages import ChatMessage, ChatRequest, ChatResult, ToolSchema


async def whole_conversation(request: ChatRequest) -> tuple[list[ChatMessage], list[ToolSchema]]:
    """The conversation and tools of a model call. A call that ``continues`` an earlier one
    carries only what is new since; the rest is read back from the region's own history, where
    each earlier call's input and reply already are (one history read per model call: see
    docs/agents.md, "History stays bounded")."""
    if request.continues is None:
        return request.messages, request.tools
    info = activity.info()
    client = activity.client()
    inputs: dict[str, tuple[int, Any]] = {}
    replies: dict[int, Any] = {}
    handle = client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == info.activity_type:
                inputs[scheduled.activity_id] = (event.event_id, scheduled.input)
        elif event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            replies[completed.scheduled_event_id] = completed.result
    chain: list[tuple[ChatRequest, ChatResult]] = []
    previous: str | None = request.continues
    converter = client.data_converter
    while previous is not None:
        if previous not in inputs or inputs[previous][0] not in replies:
            raise ApplicationError(
                f"model call {previous} that this one continues is not in the history of "
                f"{info.workflow_id}",
                type="ConversationMissing",
                non_retryable=True,
            )
        event_id, payloads = inputs[previous]
        (earlier,) = await converter.decode(payloads.payloads, [ChatRequest])
        (reply,) = await converter.decode(replies[event_id].payloads, [ChatResult])
        chain.append((earlier, reply))
        previous = earlier.continues
    messages: list[ChatMessage] = []
    tools: list[ToolSchema] = []
    for earlier, reply in reversed(chain):
        messages += [*earlier.messages, reply.message]
        if not earlier.tools_as_before:
            tools = earlier.tools
    return [*messages, *request.messages], tools if request.tools_as_before else request.tools
