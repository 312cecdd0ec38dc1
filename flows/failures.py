"""How a flow run fails: expected errors end it Failed with their one-line reason, unexpected ones keep
their traceback; Prefect retries a task only for infrastructure failures.

Which errors are expected and which are transient is decided by class in ``schemas.errors``
(``EXPECTED_ERRORS``, ``is_transient``). A version conflict is not retried here: the build retries its
own commit on top of the new version (``pipelines.build_result.on_top_of_conflicts``), the one layer that
knows what to carry over; retrying the whole task as well would run up to 9 builds for one conflict.
"""

from __future__ import annotations

import functools
import inspect
import typing

from flows.logs import install_log_filters, run_logger
from schemas.errors import EXPECTED_ERRORS, MocapCorpusError, is_transient, one_line

STATE_MESSAGE_LIMIT = 1000  # characters of a Failed state's message


class ExpectedFailure(MocapCorpusError):
    """A failure the flow expected and can state in one line (e.g. a build that rejected every file,
    a committed version that failed validation): the run ends Failed with this line, no traceback."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that end a run Failed with their one-line reason: ``schemas.errors.EXPECTED_ERRORS`` (the
    project's typed errors, ``ExpectedFailure`` among them) and a task or subflow that already failed
    that way (Prefect's ``FailedRun``)."""
    from prefect.exceptions import FailedRun

    return (*EXPECTED_ERRORS, FailedRun)


def state_message(exc: BaseException) -> str:
    """A Failed state's message: the error on one line (``schemas.errors.one_line``), at most
    ``STATE_MESSAGE_LIMIT`` characters."""
    return one_line(exc, STATE_MESSAGE_LIMIT)


def infrastructure_errors() -> tuple[type[BaseException], ...]:
    """Failures of the machinery rather than of the inputs, beyond ``schemas.errors.TRANSIENT_ERRORS``:
    a Dask worker lost mid-task."""
    from distributed import KilledWorker

    return (KilledWorker,)


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures (``schemas.errors.is_transient``:
    I/O, connections, a lost Dask worker), never bad input, bad config or a version conflict."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as e:  # a result we cannot read: be conservative
            exc = e
    return isinstance(exc, BaseException) and is_transient(exc, infrastructure_errors())


def fail_with_reason(fn):
    """Decorator under ``@flow``: an expected error ends the run in ``Failed`` with its one-line reason as
    the state message (shown by ``prefect deployment run --watch``, ``prefect flow-run inspect`` and the
    UI) and one error log line, without a traceback. Unexpected errors propagate unchanged, so Prefect
    logs them with their traceback. Installs ``flows.logs.install_log_filters`` as the run starts."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        install_log_filters()  # in this process: a served run executes in a process of its own
        try:
            return fn(*args, **kwargs)
        except expected_errors() as exc:
            from prefect.states import Failed

            msg = state_message(exc)
            run_logger().error(msg)
            _send_logs_now()  # before the Failed state: `--watch` stops streaming logs at the final state
            return Failed(message=msg)

    # Prefect builds its parameter model from the signature: give it resolved types (the string
    # annotations of ``from __future__ import annotations`` would be looked up in this module).
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)
    wrapper.__annotations__ = typing.get_type_hints(fn)
    return wrapper


def _send_logs_now(timeout_s: float = 5.0) -> None:
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - logs are best effort; the state message still says why
        pass
