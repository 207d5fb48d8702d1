"""CLI commands ``generate``, ``run``, ``serve``, ``demo`` (wired into ``structgen.cli`` via register())."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import StructgenError
from .cache import DEFAULT_SHARED_MASK_BYTES

DEMO_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1,
                      "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}
DEMO_PROMPT = ("Describe a fictional software engineer as JSON with their name, age and up to three "
               "programming languages.")


def _default_model() -> str:
    from ..models import DEFAULT_MODEL
    return DEFAULT_MODEL


def load(name: str):
    """Load a model by registry name or path (kept for the process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .modelio import resolve
    return resolve(name)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read_json_file(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read {what} {str(path)!r}: {exc.strerror}")
    except ValueError as exc:
        _fail(f"{what} {str(path)!r} is not valid JSON: {exc}")


def register(app: typer.Typer) -> None:
    """Add the generation commands to the ``structgen`` typer app."""

    @app.command("generate")
    def generate_cmd(
        prompt: str = typer.Option(..., "--prompt", "-p", help="Prompt text (chat template applied)."),
        schema: Optional[Path] = typer.Option(None, "--schema", help="JSON Schema file."),
        regex: Optional[str] = typer.Option(None, "--regex", help="Regex the whole output must match."),
        grammar: Optional[Path] = typer.Option(None, "--grammar", help="Grammar file (.lark or .gbnf)."),
        choices: Optional[str] = typer.Option(None, "--choices", help="Comma-separated allowed outputs."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry name or path."),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1),
        temperature: float = typer.Option(0.0, "--temperature", min=0.0),
        top_p: float = typer.Option(1.0, "--top-p"),
        seed: Optional[int] = typer.Option(None, "--seed"),
        chat: bool = typer.Option(True, "--chat/--no-chat", help="Use the tokenizer's chat template."),
        whitespace: str = typer.Option("compact", "--whitespace", help="compact | flexible (JSON)."),
        strict: bool = typer.Option(True, "--strict/--no-strict",
                                    help="Refuse schema keywords that cannot be enforced."),
    ) -> None:
        """Generate one constrained output and report whether it validated."""
        from .generation import generate
        given = [n for n, v in (("--schema", schema), ("--regex", regex), ("--grammar", grammar),
                                ("--choices", choices)) if v is not None]
        if len(given) > 1:
            _fail(f"give at most one of --schema/--regex/--grammar/--choices (got {', '.join(given)})", 2)
        kwargs: dict = {}
        if schema is not None:
            kwargs["schema"] = _read_json_file(schema, "schema file")
        elif regex is not None:
            kwargs["regex"] = regex
        elif grammar is not None:
            try:
                kwargs["grammar"] = grammar.read_text(encoding="utf-8")
            except OSError as exc:
                _fail(f"cannot read grammar file {str(grammar)!r}: {exc.strerror}")
            kwargs["grammar_syntax"] = "gbnf" if grammar.suffix.lower() in (".gbnf", ".ebnf") else "lark"
        elif choices is not None:
            kwargs["choices"] = [c for c in choices.split(",")]
        try:
            lm = load(model or _default_model())
            result = generate(lm, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                              seed=seed, chat=chat, whitespace=whitespace, strict=strict, **kwargs)
        except StructgenError as exc:
            _fail(str(exc))
        typer.echo(result.text)
        what = given[0].lstrip("-") if given else "text"
        stats = f"{result.usage.completion_tokens} tokens, finish={result.finish_reason}"
        if not result.complete:
            typer.echo(f"INCOMPLETE: stopped before the {what} could end ({stats}); raise --max-new-tokens",
                       err=True)
            raise typer.Exit(3)
        if result.validation_error:
            typer.echo(f"INVALID: {result.validation_error} ({stats})", err=True)
            raise typer.Exit(3)
        typer.echo(f"valid: output matches the {what} ({stats})", err=True)

    @app.command("run")
    def run_cmd(
        input: Path = typer.Argument(..., help="JSONL: {\"prompt\", \"id\"?, \"schema\"?} per line."),
        output: Path = typer.Option(..., "--output", "-o", help="Output JSONL (appended; resumable)."),
        schema: Optional[Path] = typer.Option(None, "--schema", help="Schema for lines without their own."),
        model: Optional[str] = typer.Option(None, "--model", "-m"),
        max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1),
        temperature: float = typer.Option(0.0, "--temperature", min=0.0),
        seed: Optional[int] = typer.Option(None, "--seed"),
        strict: bool = typer.Option(True, "--strict/--no-strict"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Generate + validate for every prompt; an interrupted run resumes without redoing lines."""
        from .pipeline import run_pipeline
        if not input.is_file():
            _fail(f"input file {str(input)!r} does not exist")
        default_schema = _read_json_file(schema, "schema file") if schema is not None else None
        try:
            if progress:
                summary = _run_with_progress(run_pipeline, model, input, output, default_schema,
                                             max_new_tokens, temperature, seed, strict)
            else:
                summary = run_pipeline(_model_for(model), input, output, schema=default_schema,
                                       max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                       strict=strict)
        except StructgenError as exc:
            _fail(str(exc))
        _print_summary(summary, output)
        if summary.interrupted:
            typer.echo(f"interrupted: rerun the same command to resume ({output})", err=True)
            raise typer.Exit(130)

    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
        model: Optional[str] = typer.Option(None, "--model", "-m"),
        speculative: bool = typer.Option(False, "--speculative",
                                         help="decode non-streamed single-choice requests speculatively"),
        mask_cache_mb: int = typer.Option(DEFAULT_SHARED_MASK_BYTES >> 20, "--mask-cache-mb", min=0,
                                          help="memory for cached token masks, shared by all grammars"),
    ) -> None:
        """Serve the model over an OpenAI-compatible HTTP API."""
        from ..server import create_app
        import uvicorn
        try:
            app_ = create_app(load(model or _default_model()), model_id=model or _default_model(),
                              speculative=speculative, mask_cache_mb=mask_cache_mb)
        except StructgenError as exc:
            _fail(str(exc))
        uvicorn.run(app_, host=host, port=port)

    @app.command("demo")
    def demo_cmd(
        model: Optional[str] = typer.Option(None, "--model", "-m"),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1),
    ) -> None:
        """Generate a JSON object for a built-in schema with the bundled model and validate it."""
        import jsonschema
        from .generation import generate
        name = model or _default_model()
        typer.echo(f"model: {name}")
        typer.echo("schema: " + json.dumps(DEMO_SCHEMA))
        typer.echo(f"prompt: {DEMO_PROMPT}")
        try:
            result = generate(load(name), DEMO_PROMPT, schema=DEMO_SCHEMA, max_new_tokens=max_new_tokens)
        except StructgenError as exc:
            _fail(str(exc))
        typer.echo("output: " + result.text)
        if not result.complete:
            typer.echo(f"INCOMPLETE after {max_new_tokens} tokens", err=True)
            raise typer.Exit(3)
        try:
            jsonschema.validate(json.loads(result.text), DEMO_SCHEMA)
        except (ValueError, jsonschema.ValidationError) as exc:
            typer.echo(f"INVALID: {exc}", err=True)
            raise typer.Exit(3)
        typer.echo(f"validated against the schema with jsonschema ({result.usage.completion_tokens} tokens, "
                   f"{result.timing.total:.1f}s)")


def _model_for(model: Optional[str]):
    return load(model or _default_model())


def _run_with_progress(run_pipeline, model, input, output, default_schema, max_new_tokens, temperature, seed,
                       strict):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]structgen run"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[status]}"), transient=False, console=_console()) as bar:
        task = bar.add_task("run", total=None, status="")
        counts = {"valid": 0, "invalid": 0, "incomplete": 0, "error": 0}

        def wrap(items):
            bar.update(task, total=len(items))
            for item in items:
                yield item

        def on_record(out):
            counts[out["status"]] += 1
            bar.update(task, advance=1, status=" ".join(f"{k}={v}" for k, v in counts.items() if v))

        return run_pipeline(_model_for(model), input, output, schema=default_schema,
                            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, strict=strict,
                            on_record=on_record, progress=wrap)


def _console():
    from rich.console import Console
    return Console(stderr=True)


def _print_summary(summary, output: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"structgen run -> {output}")
    for col in ("lines", "resumed", "valid", "invalid", "incomplete", "errors", "tokens", "tokens/s"):
        table.add_column(col, justify="right")
    table.add_row(str(summary.total), str(summary.skipped), str(summary.valid), str(summary.invalid),
                  str(summary.incomplete), str(summary.errors), str(summary.completion_tokens),
                  f"{summary.tokens_per_second:.1f}")
    Console(file=sys.stdout, width=120).print(table)
