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


_DECODER = json.JSONDecoder()


def _parse_call_prefix(text: str) -> tuple[str, int] | None | bool:
    """``{"name": <str>, "arguments":`` at the start of ``text`` (any JSON spelling, e.g. escapes).

    Returns (name, index after the colon), None when more text is needed, False when
    the text does not start that way.
    """
    i = 0

    def skip_ws(j: int) -> int:
        while j < len(text) and text[j] in " \t\n\r":
            j += 1
        return j

    def expect(j: int, ch: str):
        j = skip_ws(j)
        if j >= len(text):
            return None
        return j + 1 if text[j] == ch else False

    def string(j: int):
        j = skip_ws(j)
        if j >= len(text):
            return None
        if text[j] != '"':
            return False
        try:
            value, end = _DECODER.raw_decode(text, j)
        except ValueError:
            return None   # string not finished yet
        return value, end

    i = expect(i, "{")
    if not i:
        return i
    for key in ("name", "arguments"):
        got = string(i)
        if not got:
            return got
        if got[0] != key:
            return False
        i = expect(got[1], ":")
        if not i:
            return i
        if key == "name":
            got = string(i)
            if not got:
                return got
            name = got[0]
            i = expect(got[1], ",")
            if not i:
                return i
    return name, i


class RequiredCallStreamer:
    """Turn the streamed text of ``{"name":..,"arguments":..}`` into OpenAI tool-call deltas.

    We generate the wrapper with properties in schema order, so once its prefix
    is complete, the rest minus the closing brace is the arguments' JSON text.
    """

    def __init__(self):
        self.buffer = ""
        self.name: str | None = None
        self.failed = False
        self.sent = 0          # characters of arguments already emitted
        self.call_id = new_call_id()

    def push(self, piece: str) -> list[dict]:
        self.buffer += piece
        out = []
        if self.name is None:
            if self.failed:
                return out
            parsed = _parse_call_prefix(self.buffer)
            if parsed is None:
                return out
            if parsed is False:
                self.failed = True
                return out
            self.name, start = parsed
            self.buffer = self.buffer[start:]
            out.append({"index": 0, "id": self.call_id, "type": "function",
                        "function": {"name": self.name, "arguments": ""}})
        avail = len(self.buffer.rstrip()) - 1   # hold back the last char: it may be the wrapper's "}"
        if avail > self.sent:
            out.append({"index": 0, "function": {"arguments": self.buffer[self.sent:avail]}})
            self.sent = avail
        return out

    def finish(self, value: dict | None) -> list[dict]:
        """Flush the rest; ``value`` is the parsed call when the output was complete."""
        if self.name is None:
            if value is None:
                return []
            # the prefix was spelled in a way we could not stream: send the whole call now
            self.name = value["name"]
            return [{"index": 0, "id": self.call_id, "type": "function",
                     "function": {"name": value["name"], "arguments": json.dumps(
                         value["arguments"], ensure_ascii=False, separators=(",", ":"))}}]
        rest = self.buffer.rstrip()
        end = len(rest) - 1 if value is not None and rest.endswith("}") else len(self.buffer)
        if end > self.sent:
            piece, self.sent = self.buffer[self.sent:end], end
            return [{"index": 0, "function": {"arguments": piece}}]
        return []
