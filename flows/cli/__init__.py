"""``mocap-corpus``: a thin typer layer over the same functions the Prefect flows call.

``root`` holds the app and its global options, ``corpus`` the data commands (synth, inspect, joints,
builds, export, versions, show), ``training`` train / evaluate / infer, ``output`` what they print.
Errors from bad inputs print one line and exit 1; long work shows progress. Importing this package
does not import Prefect.
"""

from __future__ import annotations

import sys

import typer

from flows.cli import corpus, training  # noqa: F401  (register their commands on ``app``)
from flows.cli.output import console
from flows.cli.root import app, configure_logging
from schemas.errors import one_line

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry: run the command; usage errors are one line on stderr with exit code 2.

    ``-v`` / ``--verbose`` may stand anywhere on the line (it is moved before the command).
    """
    try:  # typer >= 0.20 vendors click; its exceptions live there
        from typer import _click as click
    except ImportError:  # pragma: no cover
        import click

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = [a for a in args if a in ("-v", "--verbose")]
    args = verbose[:1] + [a for a in args if a not in ("-v", "--verbose")]
    configure_logging(bool(verbose))  # before any command imports distributed
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="mocap-corpus", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except click.ClickException as exc:
        hint = f" (see: mocap-corpus {exc.ctx.command_path.partition(' ')[2]} --help)".replace("  ", " ") \
            if getattr(exc, "ctx", None) is not None else ""
        console.print(f"[red]error:[/red] {one_line(exc.format_message()).rstrip('.')}{hint}", highlight=False,
                      soft_wrap=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted", highlight=False)
        return 130
    return rv if isinstance(rv, int) else 0
