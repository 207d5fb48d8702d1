"""Metaschema checks without dynamic references (fast path for 2020-12 and 2019-09).

The official 2020-12 / 2019-09 metaschemas are an ``allOf`` of seven
vocabulary metaschemas that recurse through ``$dynamicRef`` /
``$recursiveRef``; ``jsonschema`` resolves the dynamic scope at every
subschema, which made the metaschema check most of the schema front-end's
time.  Dynamic references only matter for metaschemas that *extend* these
ones; validating a schema against the official metaschema itself, they
resolve to the metaschema's root.  So the vocabularies are merged into one
schema (their property names are disjoint, their ``$defs`` names too) with
every dynamic/recursive reference replaced by ``{"$ref": "#"}``.
tests/test_schema_metaschema.py checks the verdicts agree with the official
metaschemas on every schema of the corpora.
"""
from __future__ import annotations

import functools
from typing import Any

import jsonschema

_BASES = {"2020-12": "https://json-schema.org/draft/2020-12/",
          "2019-09": "https://json-schema.org/draft/2019-09/"}


_NAME_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def _rewrite(node: Any, base: str, vocab_uri: str) -> Any:
    """Rewrite a (sub)schema: keys of ``node`` are keywords."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _NAME_MAPS and isinstance(v, dict):
                out[k] = {name: _rewrite(sub, base, vocab_uri) for name, sub in v.items()}
                continue
            if k in ("$dynamicRef", "$recursiveRef"):
                out["$ref"] = "#"
            elif k == "$ref" and isinstance(v, str):
                out["$ref"] = _local_ref(v, base, vocab_uri)
            elif k in ("$dynamicAnchor", "$recursiveAnchor", "$vocabulary", "$id", "$schema",
                       "$comment", "default", "deprecated", "title", "description"):
                continue
            else:
                out[k] = _rewrite(v, base, vocab_uri)
        return out
    if isinstance(node, list):
        return [_rewrite(v, base, vocab_uri) for v in node]
    return node


def _local_ref(ref: str, base: str, vocab_uri: str) -> str:
    """``meta/validation#/$defs/x`` or ``#/$defs/x`` -> ``#/$defs/x`` (defs are merged at the root)."""
    if "#" not in ref:
        raise ValueError(f"unexpected reference {ref!r} in metaschema {vocab_uri}")
    frag = ref[ref.index("#"):]
    if not (frag == "#" or frag.startswith("#/$defs/")):
        raise ValueError(f"unexpected reference {ref!r} in metaschema {vocab_uri}")
    return frag


@functools.lru_cache(maxsize=None)
def flat_metaschema(draft: str) -> dict:
    """The merged, dynamic-reference-free metaschema of ``draft`` ("2020-12" or "2019-09")."""
    from jsonschema_specifications import REGISTRY
    base = _BASES[draft]
    top = REGISTRY.contents(base + "schema")
    merged: dict[str, Any] = {"$schema": base + "schema", "type": ["object", "boolean"],
                              "properties": {}, "$defs": {}}
    parts = [(base + "schema", {k: v for k, v in top.items() if k != "allOf"})]
    for sub in top.get("allOf", []):
        uri = base + sub["$ref"]
        parts.append((uri, REGISTRY.contents(uri)))
    for uri, part in parts:
        part = _rewrite(part, base, uri)
        for key, value in part.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    if name in merged[key]:
                        raise ValueError(f"metaschema {uri}: {key}/{name} defined twice")
                    merged[key][name] = sub
            elif key == "type":
                if value != ["object", "boolean"]:
                    raise ValueError(f"metaschema {uri}: unexpected type {value!r}")
            elif key not in ("title", "$comment"):
                raise ValueError(f"metaschema {uri}: unexpected keyword {key!r}")
    return merged


@functools.lru_cache(maxsize=None)
def metaschema_validator(draft: str, cls: type) -> Any:
    """A validator instance for checking schemas of ``draft`` (built once per process)."""
    if draft in _BASES:
        return jsonschema.Draft202012Validator(flat_metaschema(draft))
    return cls(cls.META_SCHEMA)
