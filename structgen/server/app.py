"""OpenAI-compatible HTTP server over one model loaded at startup.

Every request is validated and its grammar compiled *before* any output is
sent, so a bad schema, an unsupported keyword, a too-long prompt, an unknown
model or a malformed body is a 400 with OpenAI's error body, never a crash.
Generation is serialized with a lock (one model, CPU).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..api.cache import DEFAULT_SHARED_MASK_BYTES, GrammarCache
from ..api.constraints import json_object_constraint, schema_constraint
from ..api.generation import GenerationStream, run_ids, run_speculative
from ..api.modelio import LoadedModel, format_prompt, resolve
from ..api.sampling import SamplingParams
from ..errors import StructgenError
from . import tools as toolmod
from .errors import APIError, from_structgen_error
from .protocol import ChatCompletionRequest, CompletionRequest, NamedToolChoice

DEFAULT_MAX_TOKENS = 2048


@dataclass
class Plan:
    """Everything needed to run one request, decided before generation starts."""

    prompt_ids: list[list[int]]
    constraint: Any
    compiled: Any
    params: SamplingParams
    max_tokens: int
    stop: list[str] | None
    mode: str = "text"                 # text | tool_named | tool_required | tool_auto
    tool_name: str | None = None
    tools: Any = None
    warnings: tuple[str, ...] = ()     # e.g. keywords relaxed because strict was off: told to the client


DEFAULT_MASK_CACHE_MB = DEFAULT_SHARED_MASK_BYTES >> 20   # cached masks of all grammars together


class ServerState:
    def __init__(self, lm: LoadedModel, model_id: str, aliases: set[str] | None = None, speculative: bool = False,
                 mask_cache_mb: int = DEFAULT_MASK_CACHE_MB):
        self.lm = lm
        self.speculative = speculative
        self.model_id = model_id
        self.aliases = {model_id} | (aliases or set())
        self.lock = threading.Lock()
        self.cache = GrammarCache(maxsize=256, mask_cache_bytes=mask_cache_mb << 20)
        self.created = int(time.time())


# ------------------------------------------------------------------------------ planning

def _check_model(state: ServerState, name: str) -> None:
    if name not in state.aliases:
        raise APIError(f"model {name!r} is not served here; this server serves {state.model_id!r}",
                       param="model", code="model_not_found")


def _constraint_from_format(fmt, *, param: str = "response_format"):
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_object_constraint()
    spec = fmt.json_schema
    if spec is None or spec.schema_ is None:
        raise APIError("response_format of type json_schema needs json_schema.schema",
                       param=f"{param}.json_schema.schema", code="invalid_schema")
    try:
        return schema_constraint(spec.schema_, strict=bool(spec.strict))
    except StructgenError as exc:
        raise from_structgen_error(exc, param=f"{param}.json_schema.schema") from None


def _compile(state: ServerState, constraint, param: str) -> tuple[Any, tuple[str, ...]]:
    if constraint is None:
        return None, ()
    try:
        return state.cache.get_with_warnings(constraint, state.lm.info)
    except StructgenError as exc:
        raise from_structgen_error(exc, param=param) from None
    except RecursionError:
        raise APIError("schema is nested too deeply to compile", param=param, code="invalid_schema") from None


def _params(req) -> SamplingParams:
    temperature = 1.0 if req.temperature is None else req.temperature
    return SamplingParams(temperature=temperature, top_p=req.top_p or 1.0, top_k=req.top_k or 0, seed=req.seed)


def _budget(state: ServerState, req, n_prompt: int, param: str) -> int:
    ctx = state.lm.context_length
    asked = req.max_completion_tokens or req.max_tokens
    if ctx is not None and n_prompt >= ctx:
        raise APIError(f"the prompt is {n_prompt} tokens long but the model context is {ctx} tokens",
                       param=param, code="context_length_exceeded")
    if ctx is not None and asked is not None and n_prompt + asked > ctx:
        raise APIError(f"prompt ({n_prompt} tokens) + max_tokens ({asked}) exceeds the model context of {ctx} "
                       f"tokens", param="max_tokens", code="context_length_exceeded")
    room = DEFAULT_MAX_TOKENS if ctx is None else ctx - n_prompt
    return asked if asked is not None else min(room, DEFAULT_MAX_TOKENS)


def _messages(req: ChatCompletionRequest) -> list[dict]:
    out = []
    for m in req.messages:
        content = m.text()
        if m.role == "assistant" and m.tool_calls and not content:
            content = json.dumps([c.get("function", c) for c in m.tool_calls], ensure_ascii=False)
        role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
        out.append({"role": role, "content": content})
    return out


def plan_chat(state: ServerState, req: ChatCompletionRequest) -> Plan:
    _check_model(state, req.model)
    messages = _messages(req)
    choice = req.tool_choice
    tools = req.tools or []
    if choice is not None and choice != "none" and not tools:
        raise APIError("tool_choice is set but no tools were given", param="tool_choice", code="invalid_value")
    mode, tool_name, constraint = "text", None, None
    if tools and choice != "none":
        if req.response_format is not None and req.response_format.type != "text":
            if choice is None or choice == "auto":
                tools = []   # the response format wins over optional tool use
            else:
                raise APIError("response_format cannot be combined with a forced tool_choice",
                               param="response_format", code="invalid_value")
    if tools and choice != "none":
        if isinstance(choice, NamedToolChoice):
            tool = toolmod.find_tool(tools, choice.function.name)
            mode, tool_name = "tool_named", tool.function.name
            constraint = _tool_constraint(toolmod.parameters_schema(tool), tool, "tools")
            instruction = toolmod.instructions(tools, tool_name)
        elif choice == "required":
            mode = "tool_required"
            constraint = _tool_constraint(toolmod.required_call_schema(tools), None, "tools")
            instruction = toolmod.instructions(tools, "required")
        else:
            mode = "tool_auto"
            instruction = toolmod.instructions(tools, "auto")
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + instruction}
        else:
            messages.insert(0, {"role": "system", "content": instruction})
    else:
        constraint = _constraint_from_format(req.response_format)
    compiled, warns = _compile(state, constraint, "tools" if mode.startswith("tool") else "response_format")
    try:
        ids = format_prompt(state.lm, messages, chat=True)
    except StructgenError as exc:
        raise from_structgen_error(exc, param="messages") from None
    max_tokens = _budget(state, req, len(ids), "messages")
    return Plan(prompt_ids=[ids], constraint=constraint, compiled=compiled, params=_params(req),
                max_tokens=max_tokens, stop=req.stop_list(), mode=mode, tool_name=tool_name, tools=tools,
                warnings=warns)


def _tool_constraint(schema: dict, tool, param: str):
    strict = True if tool is None else tool.function.strict is not False
    try:
        return schema_constraint(schema, strict=strict)
    except StructgenError as exc:
        raise from_structgen_error(exc, param=param) from None


def plan_completion(state: ServerState, req: CompletionRequest) -> Plan:
    _check_model(state, req.model)
    prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
    if not prompts:
        raise APIError("prompt is an empty list", param="prompt", code="invalid_value")
    if req.stream and len(prompts) > 1:
        raise APIError("streaming supports a single prompt", param="prompt", code="invalid_value")
    constraint = _constraint_from_format(req.response_format)
    compiled, warns = _compile(state, constraint, "response_format")
    ids = [format_prompt(state.lm, p, chat=False) for p in prompts]
    max_tokens = min(_budget(state, req, len(i), "prompt") for i in ids)
    return Plan(prompt_ids=ids, constraint=constraint, compiled=compiled, params=_params(req),
                max_tokens=max_tokens, stop=req.stop_list(), warnings=warns)


# ------------------------------------------------------------------------------ responses

def _finish_reason(result) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def chat_message(plan: Plan, result) -> tuple[dict, str]:
    """(assistant message, finish_reason) in OpenAI's shape."""
    reason = _finish_reason(result)
    if plan.mode == "tool_named" and result.complete and result.value is not None:
        return ({"role": "assistant", "content": None,
                 "tool_calls": [toolmod.tool_call(plan.tool_name, result.value)]}, "tool_calls")
    if plan.mode == "tool_required" and result.complete and isinstance(result.value, dict):
        return ({"role": "assistant", "content": None,
                 "tool_calls": [toolmod.tool_call(result.value["name"], result.value["arguments"])]},
                "tool_calls")
    if plan.mode == "tool_auto" and result.finish_reason != "length":
        calls = toolmod.parse_auto_reply(result.text, plan.tools)
        if calls:
            return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
    return {"role": "assistant", "content": result.text}, reason


def _run_locked(state: ServerState, plan: Plan):
    with state.lock:
        if state.speculative and len(plan.prompt_ids) == 1:
            # one choice: the speculative core (same greedy output, fewer model calls)
            return [run_speculative(state.lm, plan.prompt_ids[0], plan.constraint, max_new_tokens=plan.max_tokens,
                                    params=plan.params, stop=plan.stop, cache=state.cache)]
        return run_ids(state.lm, plan.prompt_ids, plan.constraint, max_new_tokens=plan.max_tokens,
                       params=plan.params, stop=plan.stop, cache=state.cache)


def _sse(obj: Any) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"


def _stream_chat(state: ServerState, plan: Plan, req: ChatCompletionRequest) -> Iterator[str]:
    cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": state.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if delta.get("role") and plan.warnings:
            body["warnings"] = list(plan.warnings)  # once, on the first chunk
        return _sse(body)

    with state.lock:
        yield chunk({"role": "assistant", "content": ""})
        stream = GenerationStream(state.lm, plan.prompt_ids, plan.constraint, plan.compiled, plan.params,
                                  plan.max_tokens, plan.stop)
        required = toolmod.RequiredCallStreamer() if plan.mode == "tool_required" else None
        named_id = toolmod.new_call_id()
        buffered: list[str] = []
        started_named = False
        try:
            for piece in stream:
                if plan.mode == "text":
                    yield chunk({"content": piece})
                elif plan.mode == "tool_named":
                    if not started_named:
                        started_named = True
                        yield chunk({"tool_calls": [{"index": 0, "id": named_id, "type": "function",
                                                     "function": {"name": plan.tool_name, "arguments": ""}}]})
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                elif plan.mode == "tool_required":
                    deltas = required.push(piece)
                    for d in deltas:
                        yield chunk({"tool_calls": [d]})
                else:  # tool_auto: a tool call can only be recognized once complete
                    buffered.append(piece)
        except StructgenError as exc:
            yield _sse(APIError(str(exc), code="generation_failed", status=500, type="server_error").body())
            yield "data: [DONE]\n\n"
            return
        result = stream.result
        finish = _finish_reason(result)
        if plan.mode == "tool_named":
            finish = "tool_calls" if result.complete else finish
        elif plan.mode == "tool_required":
            value = result.value if result.complete and isinstance(result.value, dict) else None
            for d in required.finish(value):
                yield chunk({"tool_calls": [d]})
            finish = "tool_calls" if result.complete and required.name else finish
        elif plan.mode == "tool_auto":
            message, finish = chat_message(plan, result)
            if message.get("tool_calls"):
                calls = [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]
                yield chunk({"tool_calls": calls})
            else:
                yield chunk({"content": "".join(buffered)})
        yield chunk({}, finish)
        if req.stream_options is not None and req.stream_options.include_usage:
            yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": state.model_id,
                        "choices": [], "usage": result.usage.as_dict()})
    yield "data: [DONE]\n\n"


def _stream_completion(state: ServerState, plan: Plan, req: CompletionRequest) -> Iterator[str]:
    cid, created = "cmpl-" + uuid.uuid4().hex, int(time.time())

    def chunk(text: str, finish: str | None = None) -> str:
        return _sse({"id": cid, "object": "text_completion", "created": created, "model": state.model_id,
                     "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]})

    with state.lock:
        stream = GenerationStream(state.lm, plan.prompt_ids, plan.constraint, plan.compiled, plan.params,
                                  plan.max_tokens, plan.stop)
        if plan.warnings:
            yield _sse({"id": cid, "object": "text_completion", "created": created, "model": state.model_id,
                        "choices": [{"index": 0, "text": "", "finish_reason": None, "logprobs": None}],
                        "warnings": list(plan.warnings)})
        if req.echo:
            yield chunk(req.prompt if isinstance(req.prompt, str) else req.prompt[0])
        try:
            for piece in stream:
                yield chunk(piece)
        except StructgenError as exc:
            yield _sse(APIError(str(exc), code="generation_failed", status=500, type="server_error").body())
            yield "data: [DONE]\n\n"
            return
        yield chunk("", _finish_reason(stream.result))
        if req.stream_options is not None and req.stream_options.include_usage:
            yield _sse({"id": cid, "object": "text_completion", "created": created, "model": state.model_id,
                        "choices": [], "usage": stream.result.usage.as_dict()})
    yield "data: [DONE]\n\n"


# ------------------------------------------------------------------------------ app

async def _parse(request: Request, cls):
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise APIError(f"request body is not valid JSON: {exc}", code="malformed_body") from None
    if not isinstance(data, dict):
        raise APIError("request body must be a JSON object", code="malformed_body")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err.get("loc", ())) or None
        raise APIError(f"invalid request: {param}: {err.get('msg')}" if param else f"invalid request: {err.get('msg')}",
                       param=param, code="invalid_value") from None


def create_app(model, *, tokenizer=None, model_id: str | None = None, speculative: bool = False,
               mask_cache_mb: int = DEFAULT_MASK_CACHE_MB) -> FastAPI:
    """FastAPI app serving ``model`` (registry name, path, pair or LoadedModel).

    ``speculative=True``: non-streamed single-choice requests are decoded by the
    speculative core (generate()'s default drafter; same greedy output, fewer model calls).
    ``mask_cache_mb``: memory for cached token masks, shared by every request's grammar.
    """
    if mask_cache_mb < 0:
        raise ValueError(f"mask_cache_mb must be >= 0, not {mask_cache_mb}")
    lm = resolve(model, tokenizer)
    name = model_id or (model if isinstance(model, str) else lm.name)
    aliases = {lm.name} | ({model} if isinstance(model, str) else set())
    state = ServerState(lm, str(name), aliases, speculative=speculative, mask_cache_mb=mask_cache_mb)
    app = FastAPI(title="structgen", version="0.1.0")
    app.state.structgen = state

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StructgenError)
    async def _sg_error(_request: Request, exc: StructgenError):
        err = from_structgen_error(exc)
        return JSONResponse(err.body(), status_code=err.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_id}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(state)]}

    @app.get("/v1/models/{model_name:path}")
    async def model_card(model_name: str):
        if model_name not in state.aliases:
            raise APIError(f"model {model_name!r} is not served here", param="model", code="model_not_found",
                           status=404)
        return _model_card(state)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await _parse(request, ChatCompletionRequest)
        plan = await run_in_threadpool(plan_chat, state, req)
        if req.stream:
            return StreamingResponse(_stream_chat(state, plan, req), media_type="text/event-stream")
        results = await run_in_threadpool(_run_locked, state, plan)
        message, finish = chat_message(plan, results[0])
        return {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                "model": state.model_id,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": results[0].usage.as_dict()} | _warnings_field(plan)

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await _parse(request, CompletionRequest)
        plan = await run_in_threadpool(plan_completion, state, req)
        if req.stream:
            return StreamingResponse(_stream_completion(state, plan, req), media_type="text/event-stream")
        results = await run_in_threadpool(_run_locked, state, plan)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        choices = [{"index": i, "text": (prompts[i] if req.echo else "") + r.text,
                    "finish_reason": _finish_reason(r), "logprobs": None} for i, r in enumerate(results)]
        usage = {"prompt_tokens": sum(r.usage.prompt_tokens for r in results),
                 "completion_tokens": sum(r.usage.completion_tokens for r in results)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
                "model": state.model_id, "choices": choices, "usage": usage} | _warnings_field(plan)

    return app


def _warnings_field(plan: Plan) -> dict:
    """Extra top-level field (OpenAI clients keep unknown fields): what the server relaxed."""
    return {"warnings": list(plan.warnings)} if plan.warnings else {}


def _model_card(state: ServerState) -> dict:
    return {"id": state.model_id, "object": "model", "created": state.created, "owned_by": "structgen"}


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          speculative: bool = False) -> None:
    """Load ``model`` and serve it until interrupted."""
    import uvicorn
    from ..gcpolicy import freeze_long_lived
    from ..engine import warm_up
    app = create_app(model, speculative=speculative)
    warm_up(app.state.structgen.lm.info)  # load the mask kernels now, not during the first requests
    freeze_long_lived()  # the model and tokenizer live as long as the server: keep them out of GC scans
    uvicorn.run(app, host=host, port=port, log_level=log_level)
