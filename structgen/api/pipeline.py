"""``structgen run``: generate and validate over a JSONL file of prompts, resumably.

Input lines: ``{"prompt": str | messages, "id"?: any, "schema"?: object | "file.json"}``
(or a bare JSON string = prompt).  Each output line is written whole, flushed
and fsync'ed, keyed by ``id`` (else the input line number), so an interrupted
run resumes where it stopped; a torn trailing line (crash mid-write) is
dropped on resume and its record redone.  Every output is checked with
``jsonschema`` independently of the engine.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import StructgenError
from .constraints import canonical_json
from .generation import generate


@dataclass
class InputRecord:
    key: str
    line: int                       # 0-based line number in the input file
    prompt: Any = None
    schema: Any = None              # dict, or None for "any JSON object"
    id: Any = None
    error: str | None = None        # the line itself is unusable


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0                # already in the output (resumed)
    valid: int = 0
    invalid: int = 0
    incomplete: int = 0
    errors: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tokens_per_second"] = self.tokens_per_second
        return d


def _load_schema(value: Any, base: Path, where: str) -> dict:
    if isinstance(value, (dict, bool)):
        return value
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise StructgenError(f"{where}: schema file {str(path)!r} does not exist")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StructgenError(f"{where}: schema file {str(path)!r} is not valid JSON: {exc}") from None
    raise StructgenError(f"{where}: 'schema' must be an object or a file path, got {type(value).__name__}")


def read_inputs(path: str | os.PathLike, default_schema: Any = None) -> list[InputRecord]:
    """Parse the input JSONL; malformed lines become records carrying an error."""
    path = Path(path)
    base = path.parent
    out: list[InputRecord] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f):
            if not raw.strip():
                continue
            where = f"{path.name}:{n + 1}"
            rec = InputRecord(key=f"line:{n}", line=n)
            try:
                data = json.loads(raw)
            except ValueError as exc:
                rec.error = f"{where}: not valid JSON: {exc}"
                out.append(rec)
                continue
            if isinstance(data, str):
                data = {"prompt": data}
            if not isinstance(data, dict) or "prompt" not in data:
                rec.error = f"{where}: expected an object with a 'prompt' field"
                out.append(rec)
                continue
            rec.prompt = data["prompt"]
            if "id" in data:
                rec.id = data["id"]
                rec.key = "id:" + canonical_json(data["id"])
            if rec.key in seen:
                rec.error = f"{where}: duplicate id {data.get('id')!r}"
                rec.key = f"line:{n}"
            seen.add(rec.key)
            try:
                raw_schema = data.get("schema", default_schema)
                rec.schema = None if raw_schema is None else _load_schema(raw_schema, base, where)
            except StructgenError as exc:
                rec.error = str(exc)
            out.append(rec)
    return out


def repair_output(path: str | os.PathLike) -> set[str]:
    """Drop a torn trailing line (and any unparseable line); return the keys already done."""
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    keep: list[bytes] = []
    keys: set[str] = set()
    changed = False
    lines = data.split(b"\n")
    if lines and lines[-1] != b"":
        changed = True          # no final newline: the last record was cut mid-write
    for line in lines[:-1]:
        try:
            rec = json.loads(line)
            key = rec["key"]
        except (ValueError, KeyError, TypeError):
            changed = True
            continue
        keys.add(key)
        keep.append(line + b"\n")
    if changed:
        tmp = path.with_name(path.name + ".repair.tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return keys


def write_record(f, record: dict) -> None:
    """One complete line, flushed and synced before the next record starts."""
    f.write(json.dumps(record, ensure_ascii=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _validator(schema):
    import jsonschema
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_output(text: str, schema: Any) -> list[str]:
    """Independent check: JSON parse + jsonschema; returns error messages (empty = valid)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return [f"not valid JSON: {exc}"]
    if schema is None:
        return [] if isinstance(value, dict) else ["not a JSON object"]
    errs = []
    for e in _validator(schema).iter_errors(value):
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        errs.append(f"{where}: {e.message}")
    return errs


def process(lm, rec: InputRecord, gen_kwargs: dict) -> dict:
    """Generate and validate one record; never raises for bad input."""
    out: dict[str, Any] = {"key": rec.key, "line": rec.line, "id": rec.id}
    if rec.error:
        out.update(status="error", error=rec.error, output=None, value=None, valid=False, complete=False)
        return out
    t0 = time.perf_counter()
    try:
        if rec.schema is None:
            result = generate(lm, rec.prompt, json_object=True, **gen_kwargs)
        else:
            result = generate(lm, rec.prompt, schema=rec.schema, **gen_kwargs)
    except StructgenError as exc:
        out.update(status="error", error=f"line {rec.line + 1}: {exc}", output=None, value=None, valid=False,
                   complete=False, seconds=time.perf_counter() - t0)
        return out
    errors = validate_output(result.text, rec.schema) if result.complete else []
    status = "incomplete" if not result.complete else ("valid" if not errors else "invalid")
    out.update(status=status, output=result.text, value=json.loads(result.text) if status == "valid" else None,
               valid=status == "valid", complete=result.complete, finish_reason=result.finish_reason,
               validation_errors=errors[:5], completion_tokens=result.usage.completion_tokens,
               seconds=result.timing.total)
    return out


def run_pipeline(model, input_path, output_path, *, schema=None, max_new_tokens: int = 512,
                 temperature: float = 0.0, seed: int | None = None, strict: bool = True,
                 whitespace: str = "compact", on_record: Callable[[dict], None] | None = None,
                 progress: Callable[[Iterable], Iterable] | None = None) -> Summary:
    """Process every pending input line into ``output_path``; returns the summary of this run."""
    from .modelio import resolve

    default_schema = _load_schema(schema, Path.cwd(), "--schema") if schema is not None else None
    records = read_inputs(input_path, default_schema)
    done = repair_output(output_path)
    pending = [r for r in records if r.key not in done]
    summary = Summary(total=len(records), skipped=len(records) - len(pending))
    if not pending:
        return summary
    lm = resolve(model)
    gen_kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, strict=strict,
                      whitespace=whitespace)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    iterator = progress(pending) if progress else pending
    try:
        with open(output_path, "a", encoding="utf-8") as f:
            for rec in iterator:
                out = process(lm, rec, gen_kwargs)
                write_record(f, out)
                _count(summary, out)
                if on_record:
                    on_record(out)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def _count(summary: Summary, out: dict) -> None:
    status = out["status"]
    if status == "valid":
        summary.valid += 1
    elif status == "invalid":
        summary.invalid += 1
    elif status == "incomplete":
        summary.incomplete += 1
    else:
        summary.errors += 1
    summary.completion_tokens += out.get("completion_tokens", 0)
    summary.seconds += out.get("seconds", 0.0)
