"""Schema compilation pauses the cyclic GC and restores the caller's GC state, also on errors."""
from __future__ import annotations

import gc
import sys

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


def test_freeze_long_lived_exempts_existing_objects() -> None:
    from structgen.gcpolicy import freeze_long_lived
    keep = [[i] for i in range(1000)]
    # No thread switch from the collection to the count: another thread (tqdm's monitor, started
    # by earlier tests' progress bars) preempted in the middle of its loop holds temporaries that
    # get frozen, and freeing them when it resumes shrinks the frozen count (CI saw n - 2 once).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        n = freeze_long_lived()
        count = gc.get_freeze_count()
        sys.setswitchinterval(interval)
        assert n >= 1000 and count == n
        scanned = {id(o) for o in gc.get_objects()}  # generations 0-2: what collections walk
        assert gc.is_tracked(keep[0]) and not any(id(x) in scanned for x in keep)
    finally:
        sys.setswitchinterval(interval)
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
