"""Conversations: a task's turns (templates or a case field in the OpenAI chat format) → ChatRequest.

The rules checked here are the ones every provider accepts: an optional system
turn first, then a conversation that starts with the user and ends with the
user (or a tool result), and tool results that answer a call made just before.
"""

from __future__ import annotations

import json
from typing import Any

from openbench.prompts import render
from openbench.records import ChatRequest, Message, ResponseFormat, Sampling, Tool, ToolCall

#: Roles a conversation in a case field may use; "developer" is OpenAI's newer name for system.
FIELD_ROLES = ("system", "developer", "user", "assistant", "tool")


def turn_order_problem(roles: list[str]) -> tuple[int, str] | None:
    """(index, problem) for the first turn out of order, or None when the order is fine."""
    for i, role in enumerate(roles):
        if role == "system" and i > 0:
            return i, "a system turn may only come first"
    turns = [(i, r) for i, r in enumerate(roles) if r != "system"]
    if not turns:
        return 0, "the conversation has no user turn"
    first_i, first = turns[0]
    if first != "user":
        return first_i, f"the conversation must start with a user turn after any system turn, not {first}"
    last_i, last = turns[-1]
    if last not in ("user", "tool"):
        return last_i, f"the conversation must end with a user turn (or a tool result) for the model to answer, not {last}"
    return None


def parse_conversation(value: Any) -> tuple[Message, ...]:
    """A conversation in the OpenAI chat format (as exported from production logs) → Messages.

    Raises ValueError naming the turn at fault.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a conversation: a string that is not JSON ({exc.msg})") from None
    if not isinstance(value, list) or not value:
        raise ValueError(f"a conversation is a non-empty list of {{role, content}} turns, got {type(value).__name__}")
    messages: list[Message] = []
    open_calls: set[str] = set()
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {i}: expected a mapping with role and content, got {type(turn).__name__}")
        role = turn.get("role")
        if role not in FIELD_ROLES:
            from openbench.registry import did_you_mean

            raise ValueError(f"turn {i}: unknown role {role!r}{did_you_mean(str(role), FIELD_ROLES)}; expected one of: {', '.join(FIELD_ROLES)}")
        role = "system" if role == "developer" else role
        content = _text(turn.get("content"), i)
        calls = tuple(_call(c, i) for c in turn.get("tool_calls") or ()) if role == "assistant" else ()
        call_id = None
        if role == "tool":
            call_id = turn.get("tool_call_id")
            if call_id not in open_calls:
                raise ValueError(f"turn {i}: a tool result must answer a tool call of the assistant turn before it (tool_call_id {call_id!r})")
        open_calls = {c.id for c in calls if c.id} if calls else (open_calls if role == "tool" else set())
        messages.append(Message(role, content, calls, call_id))
    problem = turn_order_problem([m.role for m in messages])
    if problem is not None:
        raise ValueError(f"turn {problem[0]}: {problem[1]}")
    return tuple(messages)


def _text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        parts = [p.get("text") for p in content if p.get("type") == "text"]
        if len(parts) == len(content):
            return "".join(parts)
    raise ValueError(f"turn {i}: content must be text or a list of text parts")


def _call(raw: Any, i: int) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise ValueError(f"turn {i}: a tool call needs function.name")
    arguments = function.get("arguments")
    if isinstance(arguments, (dict, list)):
        return ToolCall(function["name"], arguments, False, raw.get("id"))
    return ToolCall.parse(function["name"], arguments, raw.get("id"))


def task_request(task: Any, default_system: str | None, fields: dict[str, Any], sampling: Sampling) -> ChatRequest:
    """The request one case of a task sends: its conversation, tools and response format."""
    system = task.system if task.system is not None else default_system
    if task.messages is not None:
        turns = tuple(Message(m.role, render(m.content, fields)) for m in task.messages)
    elif task.messages_field is not None:
        turns = parse_conversation(fields[task.messages_field])
    else:
        turns = (Message("user", render(task.prompt, fields)),)
    if system and not (turns and turns[0].role == "system"):
        turns = (Message("system", render(system, fields)),) + turns
    return ChatRequest(turns, sampling, *task_tools(task))


def task_tools(task: Any) -> tuple[tuple[Tool, ...], str | None, ResponseFormat | None]:
    tools = tuple(Tool(t.name, t.description, t.parameters) for t in task.tools)
    choice = task.tool_choice
    if choice is not None and not isinstance(choice, str):
        choice = choice.name
    fmt = task.response_format
    response_format = ResponseFormat(fmt.json_schema, fmt.name, fmt.strict) if fmt is not None else None
    return tools, choice, response_format


def merged_turns(messages: tuple[Message, ...]) -> tuple[list[Message], int]:
    """Adjacent turns of the same role joined into one (for APIs that require alternation), and how many merges."""
    out: list[Message] = []
    merges = 0
    for m in messages:
        if out and out[-1].role == m.role and m.role in ("user", "assistant") and not m.tool_calls and not out[-1].tool_calls:
            out[-1] = Message(m.role, f"{out[-1].content}\n\n{m.content}")
            merges += 1
        else:
            out.append(m)
    return out, merges
