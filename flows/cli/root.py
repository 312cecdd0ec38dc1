"""The ``mocap-corpus`` typer app, its global options (-v, --s3-endpoint) and the logging they set.

The commands register themselves on ``app`` in ``flows.cli.corpus`` and ``flows.cli.training``.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import typer

from flows.cli.output import VERBOSE

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Motion-capture archives -> versioned 2D/3D pose corpora, and the uplifting trainer.")


@app.callback()
def _root(verbose: bool = typer.Option(False, "-v", "--verbose",
                                       help="show library logs (Dask, Prefect) and tracebacks"),
          s3_endpoint: Optional[str] = typer.Option(
              None, "--s3-endpoint", envvar="MOCAP_CORPUS_S3_ENDPOINT",
              help="S3-compatible endpoint URL for s3:// corpora (MinIO, Ceph...); default: AWS")):
    """Motion-capture archives -> versioned 2D/3D pose corpora, and the uplifting trainer."""
    from schemas.storage import S3_ENDPOINT_ENV

    configure_logging(verbose)
    if s3_endpoint:
        os.environ[S3_ENDPOINT_ENV] = s3_endpoint  # read by schemas.storage (and inherited by children)


def configure_logging(verbose: bool) -> None:
    """Quiet by default: WARNING for us and the libraries (Dask's INFO chatter hidden); INFO with -v.

    Dask reads its logging levels from config when ``distributed`` is first imported (also in its
    worker processes), so the environment variable is set as well as the in-process levels.
    """
    VERBOSE["on"] = verbose
    level = logging.INFO if verbose else logging.WARNING
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "info" if verbose else "warning"
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger().setLevel(level)  # quiet leaves the root alone: WARNING unless configured
    for name in ("distributed", "dask", "prefect", "httpx", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(level)
