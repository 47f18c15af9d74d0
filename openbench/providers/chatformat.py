"""Conversations, tools and response formats in each vendor's wire format, and tool calls read back from streams.

OpenAI (and OpenAI-compatible servers): ``messages`` with ``tool_calls`` and
``tool`` turns, ``tools`` of ``{"type": "function", "function": ...}``, and
``response_format`` with a strict ``json_schema``. Anthropic: ``system`` apart,
alternating turns (adjacent same-role turns merged, and counted), ``tool_use``
and ``tool_result`` blocks, ``tools`` with ``input_schema``; a response format
becomes a forced tool whose input is the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from openbench.records import ChatRequest, Message, StructuredMode, Tool, ToolCall


def _arguments_text(call: ToolCall) -> str:
    return call.arguments if call.invalid_json else json.dumps(call.arguments, ensure_ascii=False)


# --- OpenAI ------------------------------------------------------------------------------------


def openai_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(messages):
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
            continue
        turn: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            turn["content"] = m.content or None
            turn["tool_calls"] = [
                {"id": c.id or f"call_{i}_{j}", "type": "function", "function": {"name": c.name, "arguments": _arguments_text(c)}}
                for j, c in enumerate(m.tool_calls)
            ]
        out.append(turn)
    return out


def openai_tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``response_format`` for a Chat Completions body (empty when none)."""
    body: dict[str, Any] = {}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "parameters": t.parameters} | ({"description": t.description} if t.description else {})}
            for t in request.tools
        ]
    if request.tool_choice in ("auto", "required", "none"):
        body["tool_choice"] = request.tool_choice
    elif request.tool_choice:
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    fmt = request.response_format
    if fmt is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.schema, "strict": fmt.strict}}
    return body


@dataclass
class OpenAIToolCallDeltas:
    """Accumulates ``delta.tool_calls`` fragments by index: the id and name come first, the arguments in pieces."""

    _calls: dict[int, list[Any]] = field(default_factory=dict)

    def add(self, deltas: list[dict[str, Any]]) -> bool:
        """Take one chunk's fragments; True when it carried any (it counts as a token for TTFT)."""
        seen = False
        for d in deltas:
            call = self._calls.setdefault(d.get("index", len(self._calls)), [None, "", []])
            function = d.get("function") or {}
            call[0] = d.get("id") or call[0]
            call[1] += function.get("name") or ""
            if function.get("arguments"):
                call[2].append(function["arguments"])
            seen = True
        return seen

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall.parse(name, "".join(parts), id) for _, (id, name, parts) in sorted(self._calls.items()))


# --- Anthropic ---------------------------------------------------------------------------------


def anthropic_conversation(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]], int]:
    """(system, messages, merges): turns as Anthropic wants them, and how many same-role turns were merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []
    merges = 0
    previous = None
    for i, m in enumerate(messages):
        if m.role == "system":
            continue
        if m.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
        else:
            role = m.role
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id or f"toolu_{i}_{j}", "name": c.name, "input": c.arguments if isinstance(c.arguments, dict) else {}}
                for j, c in enumerate(m.tool_calls)
            ]
        if out and out[-1]["role"] == role:
            # Tool results and the user turn after them share one user message by design; others are merged.
            merges += previous == m.role
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
        previous = m.role
    for turn in out:
        if all(b["type"] == "text" for b in turn["content"]):
            turn["content"] = "\n\n".join(b["text"] for b in turn["content"])
    return system, out, merges


def anthropic_tool_fields(request: ChatRequest, can_force: bool = True) -> dict[str, Any]:
    """``tools`` and ``tool_choice``; a response format (without other tools) becomes a forced tool."""
    body: dict[str, Any] = {}
    tools = [{"name": t.name, "input_schema": t.parameters} | ({"description": t.description} if t.description else {}) for t in request.tools]
    choice = request.tool_choice
    if choice in ("auto", "none"):
        body["tool_choice"] = {"type": choice}
    elif choice == "required":
        body["tool_choice"] = {"type": "any"}
    elif choice:
        body["tool_choice"] = {"type": "tool", "name": choice}
    fmt = request.response_format
    if fmt is not None and anthropic_structured_mode(request, can_force) == StructuredMode.FORCED_TOOL:
        tools.append({"name": fmt.name, "description": "Give the answer as this tool's input.", "input_schema": _object_schema(fmt.schema)})
        body["tool_choice"] = {"type": "tool", "name": fmt.name}
    if tools:
        body["tools"] = tools
    return body


def anthropic_structured_mode(request: ChatRequest, can_force: bool = True) -> str | None:
    """Forced tool when the task offers no tools of its own (a forced answer tool would stop them being called)
    and the model may be forced (not with extended thinking)."""
    if request.response_format is None:
        return None
    return StructuredMode.NOT_SENT if request.tools or not can_force else StructuredMode.FORCED_TOOL


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    # A tool's input is an object; any other answer is wrapped in {"value": ...} and unwrapped on return.
    return schema if schema.get("type") == "object" else {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def forced_tool_answer(
    request: ChatRequest, calls: tuple[ToolCall, ...], can_force: bool = True
) -> tuple[str | None, tuple[ToolCall, ...]]:
    """(answer text, remaining calls): the forced response-format tool's input is the answer, as JSON."""
    fmt = request.response_format
    if fmt is None or anthropic_structured_mode(request, can_force) != StructuredMode.FORCED_TOOL:
        return None, calls
    for call in calls:
        if call.name == fmt.name:
            value = call.arguments
            if fmt.schema.get("type") != "object" and isinstance(value, dict) and not call.invalid_json:
                value = value.get("value")
            text = value if call.invalid_json else json.dumps(value, ensure_ascii=False)
            return text, tuple(c for c in calls if c is not call)
    return None, calls


@dataclass
class AnthropicToolBlocks:
    """Accumulates ``tool_use`` content blocks: started by ``content_block_start``, filled by ``input_json_delta``."""

    _blocks: dict[int, list[Any]] = field(default_factory=dict)

    def start(self, event: dict[str, Any]) -> bool:
        block = event.get("content_block") or {}
        if block.get("type") != "tool_use":
            return False
        initial = block.get("input")  # "{}" when the input streams as deltas
        self._blocks[event.get("index", len(self._blocks))] = [block.get("id"), block.get("name") or "", [json.dumps(initial)] if initial else []]
        return True

    def delta(self, event: dict[str, Any]) -> bool:
        delta = event.get("delta") or {}
        block = self._blocks.get(event.get("index"))
        if delta.get("type") != "input_json_delta" or block is None:
            return False
        if delta.get("partial_json"):
            block[2].append(delta["partial_json"])
        return True

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall.parse(name, "".join(parts), id) for _, (id, name, parts) in sorted(self._blocks.items()))


# --- Hugging Face chat templates -----------------------------------------------------------------

_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def hf_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Turns as transformers chat templates take them (tool calls with their arguments as objects)."""
    out = []
    for m in messages:
        turn: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            turn["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]
        if m.tool_call_id:
            turn["tool_call_id"] = m.tool_call_id
        out.append(turn)
    return out


def hf_tools(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description or "", "parameters": t.parameters}} for t in tools]


def template_reads_tools(tokenizer: Any) -> bool:
    """Whether a tokenizer's chat template (or one of its named templates) uses the ``tools`` variable."""
    from jinja2 import Environment, meta

    template = getattr(tokenizer, "chat_template", None)
    sources = list(template.values()) if isinstance(template, dict) else [template] if template else []
    env = Environment()
    return any("tools" in meta.find_undeclared_variables(env.parse(source)) for source in sources)


def decode_keeping_tool_tags(tokenizer: Any, ids: list[int]) -> str:
    """Decoded text without special tokens, except ``<tool_call>`` tags (some tokenizers mark them special)."""
    text = tokenizer.decode(ids, skip_special_tokens=False)
    for special in tokenizer.all_special_tokens:
        if special not in ("<tool_call>", "</tool_call>"):
            text = text.replace(special, "")
    return text


def parse_tagged_tool_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """(remaining text, calls) from Hermes/Qwen-style ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

    A call cut short (no closing tag) or not valid JSON is kept raw and marked invalid.
    """
    calls = []
    for match in _TOOL_CALL_TAG.finditer(text):
        body = match.group(1)
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            arguments = data.get("arguments", data.get("parameters", {}))
            if isinstance(arguments, str):
                calls.append(ToolCall.parse(data["name"], arguments))
            else:
                calls.append(ToolCall(data["name"], arguments))
        else:
            name = re.search(r'"name"\s*:\s*"([^"]*)"', body)
            calls.append(ToolCall(name.group(1) if name else "", body, True))
    return _TOOL_CALL_TAG.sub("", text).strip(), tuple(calls)
