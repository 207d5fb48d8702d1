"""What the caller wants the output to look like, normalized into one object.

A :class:`Constraint` turns any of the user-facing forms (JSON Schema,
pydantic model, regex, Lark/GBNF text, a :class:`Grammar`, a list of choices,
"any JSON object") into: a canonical cache key, a way to build the
:class:`~structgen.grammar.ir.Grammar`, and an *independent* check of the
final text (``json`` + ``jsonschema``, pydantic, Python ``re``) so a result
never claims to be valid on the engine's word alone.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import SchemaError, StructgenError


class ConstraintSpecError(StructgenError, ValueError):
    """The constraint arguments themselves are wrong (none/several given, bad type)."""


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON: equal schemas give equal cache keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class CheckResult:
    """Outcome of the independent check of a finished text."""

    ok: bool
    value: Any = None
    error: str | None = None


@dataclass
class Constraint:
    """One output constraint: cache key, grammar builder, independent checker."""

    kind: str                                  # json_schema | json_object | regex | lark | gbnf | grammar | choices
    key: str                                   # canonical hash (without the tokenizer)
    build: Callable[[], Any] = field(repr=False)          # -> Grammar
    check: Callable[[str], CheckResult] = field(repr=False)
    schema: dict | None = None                 # for json kinds (validation, prompts)
    description: str = ""

    def grammar(self):
        """Build the front-end grammar (uncached; the cache layer calls this once per key)."""
        return self.build()


# --------------------------------------------------------------------------- checkers

def _json_schema_checker(schema: dict, pydantic_model: type | None) -> Callable[[str], CheckResult]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def check(text: str) -> CheckResult:
        try:
            value = json.loads(text)
        except ValueError as exc:
            return CheckResult(False, None, f"output is not valid JSON: {exc}")
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            return CheckResult(False, None, f"output does not validate against the schema at {where}: {e.message}")
        if pydantic_model is not None:
            try:
                value = pydantic_model.model_validate(value)
            except Exception as exc:  # pydantic.ValidationError: report, never pose as valid
                return CheckResult(False, None, f"output does not validate as {pydantic_model.__name__}: {exc}")
        return CheckResult(True, value)

    return check


def _json_object_check(text: str) -> CheckResult:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return CheckResult(False, None, f"output is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return CheckResult(False, None, f"output is JSON but not an object: {type(value).__name__}")
    return CheckResult(True, value)


def _regex_checker(pattern: str) -> Callable[[str], CheckResult]:
    try:
        compiled = re.compile(pattern)
    except re.error:
        compiled = None  # structgen syntax Python cannot compile: the matcher's verdict stands

    def check(text: str) -> CheckResult:
        if compiled is None or compiled.fullmatch(text):
            return CheckResult(True, text)
        return CheckResult(False, None, f"output {text[:80]!r} does not fully match the regex {pattern!r}")

    return check


def _choices_checker(choices: list[str]) -> Callable[[str], CheckResult]:
    allowed = set(choices)

    def check(text: str) -> CheckResult:
        if text in allowed:
            return CheckResult(True, text)
        return CheckResult(False, None, f"output {text[:80]!r} is not one of the {len(choices)} choices")

    return check


def _text_check(text: str) -> CheckResult:
    return CheckResult(True, text)


# --------------------------------------------------------------------------- constructors

def schema_constraint(schema: dict | str, *, strict: bool = True, whitespace: str = "compact",
                      close_objects: bool | None = None, pydantic_model: type | None = None) -> Constraint:
    """JSON Schema (dict, JSON text, or path to a .json file)."""
    if isinstance(schema, (str, Path)) and not (isinstance(schema, str) and schema.lstrip().startswith(("{", "["))):
        path = Path(schema)
        if not path.exists():
            raise SchemaError(f"schema file {str(path)!r} does not exist")
        schema = path.read_text(encoding="utf-8")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from exc
    if isinstance(schema, bool):
        schema = {} if schema else {"not": {}}
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema must be an object or a boolean, got {type(schema).__name__}")
    # the metaschema check happens in the compiler (it accepts ECMAScript patterns Python's re rejects)
    opts = {"strict": strict, "whitespace": whitespace, "close_objects": close_objects}

    def build():
        from ..schema import grammar_from_json_schema
        # generation writes declared keys in the schema's order (the compiler's default accepts any order)
        kwargs: dict[str, Any] = {"strict": strict, "whitespace": whitespace, "property_order": "schema"}
        if close_objects is not None:
            kwargs["close_objects"] = close_objects
        return grammar_from_json_schema(schema, **kwargs)

    return Constraint(kind="json_schema", key=_digest("json_schema", canonical_json(schema), canonical_json(opts)),
                      build=build, check=_json_schema_checker(schema, pydantic_model), schema=schema,
                      description=f"JSON Schema ({len(canonical_json(schema))} bytes)")


def json_object_constraint(*, whitespace: str = "compact") -> Constraint:
    """Any JSON object (OpenAI's ``json_object`` mode)."""

    def build():
        from ..schema import json_object_grammar
        return json_object_grammar()

    return Constraint(kind="json_object", key=_digest("json_object", whitespace), build=build,
                      check=_json_object_check, schema={"type": "object"}, description="any JSON object")


def regex_constraint(pattern: str) -> Constraint:
    def build():
        from ..grammar import grammar_from_regex
        return grammar_from_regex(pattern)

    return Constraint(kind="regex", key=_digest("regex", pattern), build=build,
                      check=_regex_checker(pattern), description=f"regex {pattern!r}")


def choices_constraint(choices) -> Constraint:
    choices = list(choices)
    if not choices or not all(isinstance(c, str) for c in choices):
        raise ConstraintSpecError("choices must be a non-empty list of strings")

    def build():
        from ..grammar import grammar_from_choices
        return grammar_from_choices(choices)

    return Constraint(kind="choices", key=_digest("choices", canonical_json(choices)), build=build,
                      check=_choices_checker(choices), description=f"one of {len(choices)} choices")


def grammar_text_syntax(text: str, source: str | None = None) -> str:
    """``"gbnf"`` or ``"lark"``: by file extension, else by the ``::=`` rule marker."""
    if source:
        suffix = Path(source).suffix.lower()
        if suffix in (".gbnf", ".ebnf"):
            return "gbnf"
        if suffix == ".lark":
            return "lark"
    return "gbnf" if re.search(r"^\s*[A-Za-z][\w-]*\s*::=", text, re.MULTILINE) else "lark"


def grammar_constraint(grammar, *, syntax: str = "auto", source: str | None = None) -> Constraint:
    """Lark or GBNF text, or an already-built :class:`Grammar`."""
    from ..grammar.ir import Grammar

    if isinstance(grammar, Grammar):
        text_key = repr((grammar.start, grammar.rules, sorted(grammar.terminals.items()), grammar.ignore))
        return Constraint(kind="grammar", key=_digest("grammar-ir", text_key), build=lambda: grammar,
                          check=_text_check, description=f"grammar {grammar.source or grammar.start}")
    if not isinstance(grammar, str):
        raise ConstraintSpecError(f"grammar must be Lark/GBNF text or a Grammar, got {type(grammar).__name__}")
    if syntax == "auto":
        syntax = grammar_text_syntax(grammar, source)
    if syntax not in ("lark", "gbnf"):
        raise ConstraintSpecError(f"grammar syntax must be 'lark', 'gbnf' or 'auto', got {syntax!r}")

    def build():
        from .. import grammar as fe
        fn = fe.grammar_from_lark if syntax == "lark" else fe.grammar_from_gbnf
        return fn(grammar, source=source)

    return Constraint(kind=syntax, key=_digest(syntax, grammar), build=build, check=_text_check,
                      description=f"{syntax} grammar {source or ''}".strip())


def make_constraint(*, schema=None, regex: str | None = None, grammar=None, choices=None,
                    pydantic_model: type | None = None, json_object: bool = False, strict: bool = True,
                    whitespace: str = "compact", close_objects: bool | None = None,
                    grammar_syntax: str = "auto") -> Constraint | None:
    """Normalize the user's keyword arguments; ``None`` means unconstrained text."""
    given = [n for n, v in (("schema", schema), ("regex", regex), ("grammar", grammar), ("choices", choices),
                            ("pydantic_model", pydantic_model)) if v is not None]
    if json_object:
        given.append("json_object")
    if len(given) > 1:
        raise ConstraintSpecError(f"give at most one constraint, got {', '.join(given)}")
    if whitespace not in ("compact", "flexible"):
        raise ConstraintSpecError(f"whitespace must be 'compact' or 'flexible', got {whitespace!r}")
    if pydantic_model is not None:
        if not hasattr(pydantic_model, "model_json_schema"):
            raise ConstraintSpecError(f"pydantic_model must be a pydantic v2 BaseModel class, got {pydantic_model!r}")
        # pydantic ignores unknown fields, so generating them is wasted tokens: close objects by default
        return schema_constraint(pydantic_model.model_json_schema(), strict=strict, whitespace=whitespace,
                                 close_objects=True if close_objects is None else close_objects,
                                 pydantic_model=pydantic_model)
    if schema is not None:
        return schema_constraint(schema, strict=strict, whitespace=whitespace, close_objects=close_objects)
    if regex is not None:
        return regex_constraint(regex)
    if choices is not None:
        return choices_constraint(choices)
    if grammar is not None:
        return grammar_constraint(grammar, syntax=grammar_syntax)
    if json_object:
        return json_object_constraint(whitespace=whitespace)
    return None
