"""Function calling: the schema a forced tool call must follow, and reading calls back.

* named function -> the output is that function's arguments (its ``parameters`` schema);
* ``"required"``  -> the output is ``{"name": <one tool>, "arguments": {...}}``, one
  closed object per tool so name and arguments always belong together;
* ``"auto"``      -> unconstrained text; a reply that is exactly a JSON tool call
  (optionally inside ``<tool_call>`` tags) whose arguments validate becomes a tool call.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from .errors import APIError

EMPTY_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


def parameters_schema(tool) -> dict:
    params = tool.function.parameters
    return EMPTY_PARAMETERS if params is None else params


def find_tool(tools, name: str):
    for t in tools or []:
        if t.function.name == name:
            return t
    known = ", ".join(t.function.name for t in tools or []) or "none"
    raise APIError(f"tool_choice names function {name!r} which is not in tools (known: {known})",
                   param="tool_choice", code="unknown_tool")


def required_call_schema(tools) -> dict:
    """Schema of ``{"name", "arguments"}`` for any one of ``tools``."""
    branches = [{"type": "object",
                 "properties": {"name": {"const": t.function.name}, "arguments": parameters_schema(t)},
                 "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False,
                                                                   separators=(",", ":"))
    return {"id": call_id or new_call_id(), "type": "function", "function": {"name": name, "arguments": args}}


def instructions(tools, choice) -> str:
    """System text telling the model what to emit (for chat templates without tool support)."""
    listing = json.dumps([{"name": t.function.name, "description": t.function.description or "",
                           "parameters": parameters_schema(t)} for t in tools], ensure_ascii=False)
    if isinstance(choice, str) and choice in ("auto",):
        return ("You can call these functions: " + listing + "\nTo call one, reply with only the JSON "
                '{"name": <function name>, "arguments": <arguments object>}; otherwise answer normally.')
    if isinstance(choice, str):  # required
        return ("Call one of these functions: " + listing + '\nReply with only the JSON {"name": '
                '<function name>, "arguments": <arguments object>}.')
    return ("Call the function " + choice + ". Functions: " + listing +
            "\nReply with only the JSON object of its arguments.")


_TAGGED = re.compile(r"^\s*<tool_call>\s*(.*?)\s*</tool_call>\s*$", re.DOTALL)


def parse_auto_reply(text: str, tools) -> list[dict] | None:
    """Tool calls in an unconstrained reply, or None when it is ordinary text."""
    import jsonschema

    m = _TAGGED.match(text)
    body = m.group(1) if m else text.strip()
    if not body.startswith(("{", "[")):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    items = data if isinstance(data, list) else [data]
    calls = []
    by_name = {t.function.name: t for t in tools}
    for item in items:
        if not isinstance(item, dict) or item.get("name") not in by_name:
            return None
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                return None
        schema = parameters_schema(by_name[item["name"]])
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        if not cls(schema).is_valid(args):
            return None
        calls.append(tool_call(item["name"], args))
    return calls or None


_REQUIRED_PREFIX = re.compile(r'^\{"name":"([A-Za-z0-9_.\-]+)","arguments":')


class RequiredCallStreamer:
    """Turn the streamed text of ``{"name":..,"arguments":..}`` into OpenAI tool-call deltas.

    The wrapper is compact and ordered (we generate it), so once the prefix is
    seen the rest, minus the closing brace, is the arguments text.
    """

    def __init__(self):
        self.buffer = ""
        self.name: str | None = None
        self.sent = 0          # characters of arguments already emitted
        self.call_id = new_call_id()

    def push(self, piece: str) -> list[dict]:
        self.buffer += piece
        out = []
        if self.name is None:
            m = _REQUIRED_PREFIX.match(self.buffer)
            if not m:
                return out
            self.name = m.group(1)
            self.buffer = self.buffer[m.end():]
            out.append({"index": 0, "id": self.call_id, "type": "function",
                        "function": {"name": self.name, "arguments": ""}})
        avail = len(self.buffer) - 1   # hold back the last char: it may be the wrapper's "}"
        if avail > self.sent:
            out.append({"index": 0, "function": {"arguments": self.buffer[self.sent:avail]}})
            self.sent = avail
        return out

    def finish(self, complete: bool) -> list[dict]:
        if self.name is None:
            return []
        end = len(self.buffer) - 1 if complete and self.buffer.endswith("}") else len(self.buffer)
        if end > self.sent:
            piece, self.sent = self.buffer[self.sent:end], end
            return [{"index": 0, "function": {"arguments": piece}}]
        return []
