"""``python -m flows``: serve the deployments, or run a local Prefect server and serve in one command.

    python -m flows serve          # against $PREFECT_API_URL (your server)
    python -m flows up             # local server (SQLite, loopback, ./.prefect) + serve; Ctrl-C stops both
    python -m flows demo           # the whole `make demo`
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def serve(limit: Optional[int] = typer.Option(None, help="max concurrent flow runs")):
    """Serve every flow as <flow>/local against the configured PREFECT_API_URL (blocks)."""
    from flows.serve import serve as do_serve

    do_serve(limit=limit)


@app.command()
def up(home: Path = typer.Option(Path(".prefect"), help="PREFECT_HOME (database, results, logs)"),
       port: int = typer.Option(4200, help="server port on 127.0.0.1 (0 = any free port)"),
       ui: bool = typer.Option(True, help="serve the Prefect UI")):
    """Start a local Prefect server and serve every deployment; Ctrl-C stops both, leaving no process behind."""
    from flows.server import LocalStack, free_port, new_tag

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stack = LocalStack(home=home.resolve(), port=port or free_port(), tag=new_tag(), ui=ui,
                       log_dir=home.resolve() / "logs")
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops both, even if started with SIGINT ignored
    try:
        stack.start_server()
        stack.start_serve(cwd=Path.cwd())
        typer.echo(f"Prefect UI:   {stack.ui_url}\nAPI:          {stack.api_url}\n"
                   f"logs:         {stack.log_dir}\n"
                   f"paths:        relative paths in run parameters resolve against {Path.cwd()}\n"
                   f"In another shell:\n  export PREFECT_API_URL={stack.api_url}\n"
                   f"  prefect deployment run build-amass/local -p 'config={{\"amass_root\": ...}}' --watch\nCtrl-C stops.")
        while not stopping and all(p.poll() is None for p in stack.procs.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping ...")
        stack.stop()


@app.command()
def demo(verbose: bool = typer.Option(False, "-v", "--verbose", help="stream every run's --watch output")):
    """Run the whole demo (same as `make demo`; `make demo V=1` is -v)."""
    from flows.demo import main

    raise typer.Exit(main(verbose=verbose))


if __name__ == "__main__":
    app()
