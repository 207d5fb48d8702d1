"""Schema compilation pauses the cyclic GC and restores the caller's GC state, also on errors."""
from __future__ import annotations

import gc

import pytest

from structgen.engine import compile_grammar
from structgen.engine.compile import byte_level_tokenizer
from structgen.errors import SchemaError
from structgen.schema import grammar_from_json_schema


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_restored(enabled: bool) -> None:
    seen = []
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        gc.callbacks.append(lambda phase, info: seen.append(phase))
        g = grammar_from_json_schema({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}})
        compile_grammar(g, byte_level_tokenizer(), cache=False)
        assert gc.isenabled() == enabled
        with pytest.raises(SchemaError):
            grammar_from_json_schema({"type": "strin"})
        assert gc.isenabled() == enabled
    finally:
        gc.callbacks.pop()
        gc.enable() if was else gc.disable()


def test_gc_paused_while_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    import structgen.schema.compiler as compiler
    from structgen.engine import lexer

    states = []

    class Spy(compiler.Lowerer):
        def lower(self, *a, **k):
            states.append(gc.isenabled())
            return super().lower(*a, **k)

    real_build = lexer.LexerTables._build

    def spy_build(self, *a, **k):
        states.append(gc.isenabled())
        return real_build(self, *a, **k)

    monkeypatch.setattr(compiler, "Lowerer", Spy)
    monkeypatch.setattr(lexer.LexerTables, "_build", spy_build)
    gc.enable()
    g = grammar_from_json_schema({"type": "object", "properties": {"a": {"type": "integer", "minimum": 2}}})
    compile_grammar(g, byte_level_tokenizer(), cache=False)
    assert states and not any(states)
    assert gc.isenabled()
