"""OpenAI-compatible server, exercised with the official `openai` client over loopback.

The server runs in a thread (uvicorn) with a tiny random Llama over the real
SmolLM2 tokenizer: every valid output is valid because of the grammar.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jsonschema  # noqa: E402

from test_api import build_tiny_model  # noqa: E402

MODEL_ID = "tiny-smollm2"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 6}, "age": {"type": "integer", "minimum": 0,
                                                                       "maximum": 99}},
    "required": ["name", "age"], "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
                                                    "unit": {"enum": ["c", "f"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
ALARM = {"type": "function", "function": {
    "name": "set_alarm", "parameters": {"type": "object", "properties": {"hour": {"type": "integer", "minimum": 0,
                                                                                  "maximum": 23}},
                                        "required": ["hour"], "additionalProperties": False}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn
    from structgen.models import load_tokenizer
    from structgen.server import create_app
    tok = load_tokenizer("smollm2-135m")
    app = create_app((build_tiny_model(tok), tok), model_id=MODEL_ID)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not srv.started:
        assert th.is_alive() and time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)


@pytest.fixture(scope="module")
def client(server):
    import openai
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=120)


def _post(server, path, body: bytes | dict):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _json_schema_format(schema, strict=True):
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": strict}}


def test_models_endpoint(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL_ID]


def test_json_schema_response_format_validates(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "A person."}],
                                       response_format=_json_schema_format(PERSON), temperature=0,
                                       max_tokens=120)
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), PERSON)
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_json_object_mode(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "JSON please"}],
                                       response_format={"type": "json_object"}, temperature=0, max_tokens=300)
    choice = r.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)
    else:  # a random model may nest forever; the text must still be an object prefix
        assert choice.finish_reason == "length" and choice.message.content.startswith("{")


def test_sampling_with_seed_is_reproducible_and_valid(client):
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "A person."}],
              response_format=_json_schema_format(PERSON), temperature=0.9, top_p=0.95, seed=7, max_tokens=120)
    a = client.chat.completions.create(**kw).choices[0].message.content
    b = client.chat.completions.create(**kw).choices[0].message.content
    assert a == b
    jsonschema.validate(json.loads(a), PERSON)


def test_named_tool_call_arguments_validate(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                       tools=[WEATHER, ALARM], temperature=0, max_tokens=60,
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_required_tool_call_picks_a_tool_and_validates(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Wake me at 7"}],
                                       tools=[WEATHER, ALARM], tool_choice="required", temperature=0, max_tokens=60)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    tool = {"get_weather": WEATHER, "set_alarm": ALARM}[call.function.name]
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])


def test_required_tool_call_streams_as_tool_deltas(client):
    chunks = list(client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Wake me at 7"}], tools=[WEATHER, ALARM],
        tool_choice="required", temperature=0, max_tokens=60, stream=True))
    name, args = None, ""
    for c in chunks:
        for tc in c.choices[0].delta.tool_calls or [] if c.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    tool = {"get_weather": WEATHER, "set_alarm": ALARM}[name]
    jsonschema.validate(json.loads(args), tool["function"]["parameters"])
    # the same as the non-streamed call
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Wake me at 7"}],
                                       tools=[WEATHER, ALARM], tool_choice="required", temperature=0,
                                       max_tokens=60)
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == json.loads(args)


def test_streaming_chunks_concatenate_to_valid_object(client):
    stream = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "A person."}],
                                            response_format=_json_schema_format(PERSON), temperature=0,
                                            max_tokens=120, stream=True, stream_options={"include_usage": True})
    text, finish, usage, n = "", None, None, 0
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
            n += 1
    assert n > 3 and finish == "stop" and usage.completion_tokens > 0
    jsonschema.validate(json.loads(text), PERSON)
    full = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "A person."}],
                                          response_format=_json_schema_format(PERSON), temperature=0,
                                          max_tokens=120)
    assert full.choices[0].message.content == text


def test_raw_sse_framing(server):
    body = {"model": MODEL_ID, "prompt": "Number:", "max_tokens": 8, "stream": True, "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": True,
                                                                       "schema": {"type": "integer"}}}}
    req = urllib.request.Request(server + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    text = "".join(p["choices"][0]["text"] for p in payloads)
    if payloads[-1]["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(text), int)


def test_completions_endpoint_with_schema_and_batch(client):
    r = client.completions.create(model=MODEL_ID, prompt=["Person:", "Another person:"], max_tokens=120,
                                  temperature=0, extra_body={"response_format": _json_schema_format(PERSON)})
    assert len(r.choices) == 2
    for ch in r.choices:
        assert ch.finish_reason == "stop"
        jsonschema.validate(json.loads(ch.text), PERSON)


@pytest.mark.parametrize("body, code, param_part, message_part", [
    (b"{not json", "malformed_body", None, "not valid JSON"),
    ({"model": MODEL_ID}, "invalid_value", "messages", "messages"),
    ({"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}, "model_not_found", "model", "gpt-17"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}}},
     "invalid_schema", "response_format", "objekt"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi " * 700}]},
     "context_length_exceeded", "messages", "context"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER],
      "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "unknown_tool", "tool_choice", "nope"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "temperature": -1},
     "invalid_value", "temperature", "temperature"),
])
def test_bad_requests_are_openai_400s(server, body, code, param_part, message_part):
    status, payload = _post(server, "/v1/chat/completions", body)
    assert status == 400, payload
    err = payload["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["code"] == code
    assert message_part in err["message"]
    if param_part:
        assert param_part in (err["param"] or "")


def test_unsupported_keyword_in_strict_mode_is_400(server):
    # an unknown format cannot be enforced: strict mode must refuse it, naming the keyword
    schema = {"type": "object", "properties": {"id": {"type": "string", "format": "made-up-format"}},
              "required": ["id"]}
    status, payload = _post(server, "/v1/chat/completions", {
        "model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
        "response_format": _json_schema_format(schema, strict=True)})
    assert status == 400, payload
    assert payload["error"]["code"] == "unsupported_schema_keyword"
    assert "format" in payload["error"]["message"] and "/properties/id" in payload["error"]["message"]
    # non-strict mode accepts it, and tells the client the keyword is not enforced (again on a cache hit)
    for _ in range(2):
        status, payload = _post(server, "/v1/chat/completions", {
            "model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0,
            "response_format": _json_schema_format(schema, strict=False)})
        assert status == 200, payload
        assert any("made-up-format" in w and "/properties/id" in w for w in payload["warnings"]), payload
    status, payload = _post(server, "/v1/completions", {
        "model": MODEL_ID, "prompt": "x", "max_tokens": 5, "temperature": 0,
        "response_format": _json_schema_format(schema, strict=False)})
    assert status == 200 and any("made-up-format" in w for w in payload["warnings"]), payload
    # a fully supported schema carries no warnings field
    status, payload = _post(server, "/v1/chat/completions", {
        "model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0,
        "response_format": _json_schema_format({"enum": ["a", "b"]}, strict=False)})
    assert status == 200 and "warnings" not in payload, payload


def test_relaxed_keyword_warning_reaches_streaming_clients(server):
    schema = {"type": "string", "format": "made-up-format"}
    body = json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                       "temperature": 0, "stream": True,
                       "response_format": _json_schema_format(schema, strict=False)}).encode()
    req = urllib.request.Request(server + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        events = [json.loads(line[6:]) for line in resp.read().decode().splitlines()
                  if line.startswith("data: {")]
    assert any("made-up-format" in w for w in events[0].get("warnings", [])), events[0]
    assert all("warnings" not in e for e in events[1:])


def test_server_keeps_serving_after_errors(client, server):
    for _ in range(3):
        status, _ = _post(server, "/v1/chat/completions", b"[]")
        assert status == 400
    r = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "hi"}],
                                       response_format=_json_schema_format({"enum": ["a", "b"]}), max_tokens=30,
                                       temperature=0)
    assert json.loads(r.choices[0].message.content) in ("a", "b")


def test_openai_client_raises_bad_request(client):
    import openai
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "hi"}],
                                       response_format=_json_schema_format({"type": "objekt"}))
    assert info.value.status_code == 400 and "objekt" in str(info.value)


def test_speculative_server_answers_like_the_plain_one():
    """create_app(speculative=True): greedy single-choice answers (schema, tool call, plain text) equal
    the plain server's; the speculative core actually ran."""
    from fastapi.testclient import TestClient
    from structgen.api import generation
    from structgen.models import load_tokenizer
    from structgen.server import create_app
    tok = load_tokenizer("smollm2-135m")
    model = build_tiny_model(tok)
    plain = TestClient(create_app((model, tok), model_id=MODEL_ID))
    fast = TestClient(create_app((model, tok), model_id=MODEL_ID, speculative=True))
    bodies = [
        {"model": MODEL_ID, "messages": [{"role": "user", "content": "a person"}], "max_tokens": 40,
         "temperature": 0, "response_format": {"type": "json_schema",
                                               "json_schema": {"name": "p", "schema": PERSON, "strict": True}}},
        {"model": MODEL_ID, "messages": [{"role": "user", "content": "weather?"}], "max_tokens": 40,
         "temperature": 0, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 12, "temperature": 0},
    ]
    calls = []
    real = generation.run_speculative

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    import structgen.server.app as app_mod
    app_mod.run_speculative = counting
    try:
        for body in bodies:
            a = plain.post("/v1/chat/completions", json=body).json()
            b = fast.post("/v1/chat/completions", json=body).json()
            ma, mb = a["choices"][0]["message"], b["choices"][0]["message"]
            for m in (ma, mb):
                for call in m.get("tool_calls") or []:
                    call.pop("id")                     # fresh random ids per call
            assert ma == mb, body
            assert a["choices"][0]["finish_reason"] == b["choices"][0]["finish_reason"]
            assert a["usage"]["completion_tokens"] == b["usage"]["completion_tokens"]
    finally:
        app_mod.run_speculative = real
    assert len(calls) == len(bodies)


def test_server_bounds_cached_masks_across_requests():
    """create_app(mask_cache_mb=...): the grammars of all requests share one mask budget."""
    from fastapi.testclient import TestClient
    from structgen.models import load_tokenizer
    from structgen.server import create_app
    tok = load_tokenizer("smollm2-135m")
    app = create_app((build_tiny_model(tok), tok), model_id=MODEL_ID, mask_cache_mb=1)
    client = TestClient(app)
    for schema in (PERSON, {"type": "array", "items": {"type": "integer"}}):
        r = client.post("/v1/chat/completions", json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "go"}], "max_tokens": 40, "temperature": 0,
            "response_format": _json_schema_format(schema)})
        assert r.status_code == 200, r.text
    cache = app.state.structgen.cache
    masks = cache.masks
    assert masks.budget == 1 << 20 and 0 < masks.nbytes <= 1 << 20
    assert len(cache) == 2 and all(entry[0]._masks is masks for entry in cache._items.values())
    with pytest.raises(ValueError, match="mask_cache_mb"):
        create_app((build_tiny_model(tok), tok), model_id=MODEL_ID, mask_cache_mb=-1)
