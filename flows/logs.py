"""What flows log: Prefect's run logger inside a run, and the filter that keeps Prefect's engine traceback
of an expected failure out of a run's logs.

The filter is installed explicitly where flows start (``fail_with_reason`` at the start of every flow
run, ``flows.serve.serve``), never as a side effect of an import. Importing this module does not import
Prefect.
"""

from __future__ import annotations

import logging

from schemas.errors import one_line

log = logging.getLogger("flows")


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a run (shows in the UI), the module logger outside one."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return log


class FailedRunWithoutTraceback(logging.Filter):
    """Prefect's deployment engine re-raises a run's final ``Failed`` state as ``FailedRun`` and logs it
    with a traceback of its own internals. That state came from ``fail_with_reason`` (its reason is the
    state message and was logged); an unexpected error's final state holds the error itself, which is
    re-raised as such and keeps its traceback. So drop only the engine traceback of a ``FailedRun``."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.exceptions import FailedRun  # installed where flows run: Prefect is imported there

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, FailedRun):
            record.msg, record.args = f"Flow run failed: {one_line(exc, 1000)}", ()
            record.exc_info, record.exc_text = None, None
        return True


def install_log_filters() -> None:
    """Install ``FailedRunWithoutTraceback`` on Prefect's flow-run logger, once per process."""
    logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, FailedRunWithoutTraceback) for f in logger.filters):
        logger.addFilter(FailedRunWithoutTraceback())
