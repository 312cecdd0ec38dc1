"""Crash points and a trace for the kill trials, injected into the product from outside.

The product has no hooks. A trial starts its child through this module instead of the console script,

    python -m tests.support.faults {build,training} MOCAP-CORPUS-ARGS...

with some of these variables in its environment:

    MOCAP_TRIAL_FAULT=name[:n]   SIGKILL the process the n-th time (default: the first) it passes ``name``
    MOCAP_TRIAL_TRACE=FILE       append every point passed to FILE (and ``kill:name`` just before a planted
                                 kill), unbuffered, so a trial can tell where a kill really landed
    MOCAP_TRIAL_FLUSH_ROWS=N     writers flush every N rows (small builds go through many flushes)

Before the command runs, ``install_build_points`` / ``install_training_points`` wrap the product
functions at the points below. A build's Dask workers are other processes: the child names this
module as their preload (``distributed.worker.preload``), so each worker wraps the same functions
(``dask_setup``), and a point passed in a worker kills the build process too (its pid is in
``MOCAP_TRIAL_BUILD_PID``), as a dying machine would.

Points (where they are):
    write           build worker: before each sequence of its shard is written (``write_shard``)
    chunk_write     writer (a build worker): inside one flush of an array, after its first half of rows
                    (while armed, the flush is written in two halves)
    flush           writer (a build worker): after a flush of an array completed (between flushes)
    commit          build: after the last shard, before ``ForkedCorpusWriter.commit``
    icechunk_commit writer: inside the Icechunk commit, after data, manifests and the snapshot are
                    written, before the branch moves
    tag             writer: after the branch moved, before the tag is created
    ckpt_files      ``save_checkpoint``: the new model file written, the others not yet
    ckpt_written    ``save_checkpoint``: the new checkpoint written and synced beside the old one
    ckpt_aside      ``save_checkpoint``: the old one moved aside, the new one not yet in
    ckpt_in         ``save_checkpoint``: the new one moved in, the aside copy not yet deleted
Trace-only events: ``chunk_write_begin``, ``commit_begin``, ``icechunk_commit_begin``, ``branch_moved``,
``tagged``, ``ckpt_complete:NAME:EPOCH:BATCH``, and for each ``train`` call ``train_start:EPOCH:BATCH``
(the position of the checkpoint it resumed from, ``0:0`` for a fresh start) and ``train_steps:N`` (the
optimizer steps it took): what training loaded and did, so a trial tells a resume from a restart.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

FAULT_ENV = "MOCAP_TRIAL_FAULT"
TRACE_ENV = "MOCAP_TRIAL_TRACE"
FLUSH_ROWS_ENV = "MOCAP_TRIAL_FLUSH_ROWS"
BUILD_PID_ENV = "MOCAP_TRIAL_BUILD_PID"
PRELOAD = "tests.support.faults"  # this module, as Dask workers import it
_passes: Counter = Counter()


def trial_cli(group: str) -> tuple[str, ...]:
    """The ``mocap-corpus`` command line with the ``group`` points ("build" or "training") installed."""
    return (sys.executable, "-m", PRELOAD, group)


# -- points ---------------------------------------------------------------------------------------
def armed(name: str) -> bool:
    """True when ``MOCAP_TRIAL_FAULT`` targets ``name``."""
    spec = os.environ.get(FAULT_ENV)
    return bool(spec) and spec.partition(":")[0] == name


def trace(event: str) -> None:
    """Append ``event`` to the trace file, if one is set (unbuffered: survives a SIGKILL right after)."""
    path = os.environ.get(TRACE_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event}\n".encode())
        finally:
            os.close(fd)


def fault_point(name: str) -> None:
    """Trace ``name``; SIGKILL this process (and the build, from a worker) on the armed pass."""
    trace(name)
    if not armed(name):
        return
    _passes[name] += 1
    if _passes[name] == int(os.environ[FAULT_ENV].partition(":")[2] or 1):
        trace(f"kill:{name}")
        build = int(os.environ.get(BUILD_PID_ENV) or 0)
        if build and build != os.getpid():
            try:
                os.kill(build, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)


# -- wrapping the product -------------------------------------------------------------------------
def _wrap(owner, name: str, make) -> None:
    """Replace ``owner.name`` (a module's function or a class's method) by ``make(original)``; for a
    module, also where other loaded modules imported it by name (``from owner import name``). A name
    the product no longer has fails here, loudly, instead of leaving a trial without its point."""
    original = getattr(owner, name)
    new = make(original)
    setattr(owner, name, new)
    if isinstance(owner, ModuleType):
        for mod in list(sys.modules.values()):
            if mod is not owner and isinstance(mod, ModuleType) and getattr(mod, name, None) is original:
                setattr(mod, name, new)


class _Forward:
    """Forwards every attribute it does not define to the object it wraps."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name):
        return getattr(self._target, name)


class _FlushedArray(_Forward):
    """A zarr array as ``_Appender._write`` sees it during one flush: traces the flush's start,
    writes in two halves around ``chunk_write`` while that point is armed, passes ``flush`` after."""

    def __init__(self, arr):
        super().__init__(arr)
        self._begun = False

    def _begin(self) -> None:
        if not self._begun:
            trace("chunk_write_begin")
            self._begun = True

    def resize(self, *args, **kwargs):
        self._begin()
        return self._target.resize(*args, **kwargs)

    def __setitem__(self, rows: slice, block) -> None:
        self._begin()
        if armed("chunk_write"):
            half = rows.start + (rows.stop - rows.start) // 2
            self._target[rows.start:half] = block[:half - rows.start]
            fault_point("chunk_write")
            self._target[half:rows.stop] = block[half - rows.start:]
        else:
            self._target[rows] = block
        fault_point("flush")


class _PassingShard(_Forward):
    """A build shard whose sequences pass ``write`` as ``write_shard`` takes each one."""

    @property
    def parts(self):
        for part in self._target.parts:
            fault_point("write")
            yield part


class _BranchMover(_Forward):
    """The writer's repository, passing ``icechunk_commit`` before its branch moves."""

    def reset_branch(self, *args, **kwargs):
        fault_point("icechunk_commit")
        out = self._target.reset_branch(*args, **kwargs)
        trace("branch_moved")
        return out


def _flush_rows(original):
    def flush_rows(chunk: int) -> tuple[int, int]:
        rows = int(os.environ.get(FLUSH_ROWS_ENV) or 0)
        return (rows, min(rows, chunk)) if rows > 0 else original(chunk)
    return flush_rows


def install_build_points() -> None:
    """Wrap the writer, the forked writer and the build's commit at the build points (module doc)."""
    import pipelines.forked_writer as F
    import pipelines.writer as W

    def flushing(original):
        def _write(self, final):
            arr, self.arr = self.arr, _FlushedArray(self.arr)
            try:
                return original(self, final)
            finally:
                self.arr = arr
        return _write

    def passing(original):
        return lambda fork, shard, starts: original(fork, _PassingShard(shard), starts)

    def build_commit(original):
        def commit(self, *args, **kwargs):
            fault_point("commit")
            return original(self, *args, **kwargs)
        return commit

    def commit_begin(original):
        def commit(self, *args, **kwargs):
            trace("commit_begin")
            return original(self, *args, **kwargs)
        return commit

    def snapshot(original):
        def _commit_snapshot(self, *args, **kwargs):
            trace("icechunk_commit_begin")
            repo, self._repo = self._repo, _BranchMover(self._repo)
            try:
                return original(self, *args, **kwargs)
            finally:
                self._repo = repo
        return _commit_snapshot

    def tagging(original):
        def _tag_or_move_back(self, *args, **kwargs):
            fault_point("tag")
            out = original(self, *args, **kwargs)
            trace("tagged")
            return out
        return _tag_or_move_back

    _wrap(W, "_flush_rows", _flush_rows)
    _wrap(W._Appender, "_write", flushing)
    _wrap(F, "write_shard", passing)
    _wrap(F.ForkedCorpusWriter, "commit", build_commit)
    _wrap(W.CorpusWriter, "commit", commit_begin)
    _wrap(W.CorpusWriter, "_commit_snapshot", snapshot)
    _wrap(W.CorpusWriter, "_tag_or_move_back", tagging)


def install_training_points() -> None:
    """Wrap ``save_checkpoint``'s steps at the checkpoint points, and record what ``train`` loaded and
    how many optimizer steps it took (module doc)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    import uplift.checkpoint as C
    import uplift.train as T

    def model_file(original):
        def save_file(tensors, filename, *args, **kwargs):
            out = original(tensors, filename, *args, **kwargs)
            if Path(filename).name == "model.safetensors":
                fault_point("ckpt_files")
            return out
        return save_file

    def synced(original):
        def _fsync_tree(path):
            original(path)
            fault_point("ckpt_written")
        return _fsync_tree

    def replace(src, dst):
        if Path(src) != C._tmp_dir(Path(dst)):  # moving the old one aside, or a recovery
            return os.replace(src, dst)
        fault_point("ckpt_aside")
        os.replace(src, dst)
        meta = json.loads((Path(dst) / "meta.json").read_text())
        trace(f"ckpt_complete:{Path(dst).name}:{meta.get('epoch')}:{meta.get('batch')}")
        fault_point("ckpt_in")

    loaded: list[tuple[int, int]] = []

    def loading(original):
        def load_checkpoint(*args, **kwargs):
            ck = original(*args, **kwargs)
            if ck.state is not None:  # a resume: the position training continues from
                loaded.append((int(ck.state["epoch"]), int(ck.state["batch"])))
            return ck
        return load_checkpoint

    def training(original):
        def train(*args, **kwargs):
            loaded.clear()
            steps = [0]
            hook = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
            try:
                result = original(*args, **kwargs)
            finally:
                hook.remove()
            epoch, batch = loaded[-1] if loaded else (0, 0)
            trace(f"train_start:{epoch}:{batch}")
            trace(f"train_steps:{steps[0]}")
            return result
        return train

    _wrap(C, "save_file", model_file)
    _wrap(C, "_fsync_tree", synced)
    C.os = _Forward(os)
    C.os.replace = replace
    _wrap(C, "load_checkpoint", loading)
    _wrap(T, "train", training)


def dask_setup(worker) -> None:
    """Dask preload entry: a build worker wraps the same functions as the build (module doc)."""
    install_build_points()


@contextmanager
def flush_every(rows: int):
    """This process's writers, and the workers of builds started inside the block, flush every
    ``rows`` rows (a trial's rerun in the test process writes like its killed child did)."""
    import dask

    import pipelines.writer as W

    original, old_env = W._flush_rows, os.environ.get(FLUSH_ROWS_ENV)
    os.environ[FLUSH_ROWS_ENV] = str(rows)
    W._flush_rows = _flush_rows(original)
    try:
        with dask.config.set({"distributed.worker.preload": [PRELOAD]}):
            yield
    finally:
        W._flush_rows = original
        if old_env is None:
            os.environ.pop(FLUSH_ROWS_ENV, None)
        else:
            os.environ[FLUSH_ROWS_ENV] = old_env


INSTALL = {"build": install_build_points, "training": install_training_points}


def main(argv: list[str]) -> int:
    """``python -m tests.support.faults GROUP ARGS...``: the CLI with GROUP's points installed."""
    group, *args = argv
    INSTALL[group]()
    if group == "build":
        import dask

        os.environ[BUILD_PID_ENV] = str(os.getpid())  # a point passed in a worker kills this build too
        dask.config.set({"distributed.worker.preload": [PRELOAD]})
    from flows.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
