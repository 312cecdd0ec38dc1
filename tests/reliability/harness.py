"""The reliability experiments, shared by the pytest suite and ``benchmarks/reliability_report.py``.

Each function runs one kind of trial and returns what happened; the tests assert on it, the report
counts it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.synthetic.malformed import WRITERS
from schemas.errors import InputError

REPO = Path(__file__).resolve().parents[2]


# --- malformed inputs -------------------------------------------------------------------------


def loaders(kind: str) -> list:
    if kind == "amass":
        from pipelines.amass import read_amass

        return [read_amass]
    if kind == "body_model":
        from pipelines.body_model import load_body_model

        return [load_body_model]
    if kind == "regressor":
        from pipelines.body_model import load_regressor

        return [load_regressor]
    from pipelines.h36m import load_positions_2d, load_positions_3d

    return [load_positions_3d, load_positions_2d]


@dataclass
class FuzzOutcome:
    typed_errors: int = 0
    loaded: int = 0
    escaped: list = field(default_factory=list)  # (description, exception repr)
    payload_ran: bool = False


def fuzz_case(kind: str, mutation: str, suffix: str, seed: int, workdir: Path, marker: Path) -> FuzzOutcome:
    """Write one malformed file, feed it to every loader of ``kind``, clean up; report what happened."""
    writer, _ = WRITERS[kind]
    path = workdir / f"case_{kind}_{mutation}_{seed}{suffix}"
    out = FuzzOutcome()
    what = writer(np.random.default_rng(seed), mutation, path, str(marker))
    try:
        for load in loaders(kind):
            try:
                load(path)
                out.loaded += 1
            except InputError as exc:
                if not exc.reason or str(path) not in str(exc):
                    out.escaped.append((what, f"typed error without file/reason: {exc!r}"))
                out.typed_errors += 1
            except Exception as exc:  # noqa: BLE001 - exactly what must never happen
                out.escaped.append((f"{kind}/{mutation}: {what}", f"{type(exc).__name__}: {exc}"))
    finally:
        out.payload_ran = marker.exists()
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return out


# --- killed builds ----------------------------------------------------------------------------


def make_inputs(root: Path, n_sequences: int = 8, seed: int = 5, duration_s=(2.0, 6.0), broken: bool = False) -> Path:
    """Synthetic body models under ``root/body_models`` and an AMASS-like tree under ``root/amass``
    (SMPL+H only); with ``broken``, one truncated file ``Broken/s1/cut_poses.npz`` among them."""
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.motions import write_amass_tree

    write_body_model_tree(root / "body_models", seed=0)
    files = write_amass_tree(root / "amass", n_sequences=n_sequences, seed=seed, duration_s=duration_s,
                             smplx_fraction=0.0)
    if broken:
        bad = root / "amass" / "Broken" / "s1" / "cut_poses.npz"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(files[0].read_bytes()[:200])  # a truncated zip
    return root


def build_config(root: Path, corpus: Path, **kw):
    from pipelines.build import BuildConfig

    return BuildConfig(amass_root=root / "amass", body_models=root / "body_models", corpus=corpus, n_workers=1, **kw)


def build_cmd(root: Path, corpus: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "build-amass", str(root / "amass"),
            "--body-models", str(root / "body_models"), "--corpus", str(corpus), "--workers", "1", *extra]


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def visible_version_is_whole(corpus: Path) -> bool:
    """After a crash the latest version is absent or complete and valid (never half-written)."""
    from pipelines.corpus import CorpusReader
    from schemas.errors import CorpusError
    from schemas.validate import validate_corpus

    if not corpus.exists():
        return True
    try:
        reader = CorpusReader.open(corpus)
    except CorpusError:
        return True
    return validate_corpus(corpus, reader.version_id) == []


@dataclass
class KillTrial:
    fault: str | None
    killed: bool
    whole_after_crash: bool
    equal_after_rerun: bool
    bytes_lost: int  # bytes of the reference content missing or different after the rerun


def timed_build(root: Path, corpus: Path) -> float:
    """Wall time of one uninterrupted build subprocess (imports, Dask start-up, compute, commit)."""
    t0 = time.perf_counter()
    subprocess.run(build_cmd(root, corpus), check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - t0


def kill_delays(duration_s: float, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` random moments inside a build of ``duration_s`` (before its end, after start-up began)."""
    return [float(d) for d in rng.uniform(0.15, 0.85, size=n) * duration_s]


def kill_build_trial(root: Path, corpus: Path, reference: dict, fault: str | None, delay_s: float) -> KillTrial:
    """SIGKILL a build (at a named fault point, or after ``delay_s``), rerun it, compare with ``reference``."""
    from pipelines.build import build_amass
    from pipelines.checksums import corpus_checksums
    from pipelines.corpus import CorpusReader
    from pipelines.faults import ENV

    env = {**os.environ, **({ENV: fault} if fault else {})}
    proc = subprocess.Popen(build_cmd(root, corpus), env=env, start_new_session=True, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if fault is None:
        time.sleep(delay_s)
    else:
        proc.wait(timeout=300)
    killed = proc.poll() is None or proc.returncode == -signal.SIGKILL
    kill_group(proc)
    whole = visible_version_is_whole(corpus)
    report = build_amass(build_config(root, corpus))
    reader = CorpusReader.open(corpus, report.version_id)
    sums = corpus_checksums(reader)
    return KillTrial(fault, killed, whole, sums == reference, differing_bytes(reader, sums, reference))


def differing_bytes(reader, sums: dict, reference: dict) -> int:
    """Bytes of the arrays and manifests whose content differs from the reference (0 when equal)."""
    from schemas.store import ARRAYS

    lost = 0
    for spec in ARRAYS:
        key = f"array:{spec.path}"
        if sums.get(key) != reference.get(key):
            lost += max(reader.array(spec).nbytes, 1)
    for name in ("sequences", "views", "rejects"):
        key = f"manifest:{name}"
        if sums.get(key) != reference.get(key):
            lost += max(getattr(reader, name).nbytes, 1)
    return lost


def killed_worker_build(root: Path, corpus: Path) -> bool:
    """Build on a 2-worker LocalCluster and SIGKILL one worker after the first result; True if killed."""
    import psutil
    from distributed import LocalCluster

    from pipelines.build import build_amass

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        killed = []

        def kill_one_worker(done, total, info):
            if not killed and done >= 1:
                pid = next(iter(cluster.workers.values())).process.pid
                for proc in psutil.Process(pid).children(recursive=True) or [psutil.Process(pid)]:
                    proc.kill()
                killed.append(pid)

        build_amass(build_config(root, corpus, scheduler=cluster.scheduler_address, max_in_flight=8),
                    progress=kill_one_worker)
    return bool(killed)


@dataclass
class ConcurrentOutcome:
    exit_codes: list
    outputs: list
    versions_added: int
    pinned_reader_unchanged: bool
    valid: bool


def concurrent_builds(root: Path, corpus: Path) -> ConcurrentOutcome:
    """Tag a first build "old", then run two builds (different fps) into the same corpus at once while
    a reader pinned to "old" keeps re-reading it."""
    import threading

    from pipelines.build import build_amass
    from pipelines.checksums import corpus_checksums
    from pipelines.corpus import CorpusReader
    from pipelines.versions import list_versions
    from schemas.validate import validate_corpus

    build_amass(build_config(root, corpus, tag="old"))
    before, n_before = corpus_checksums(CorpusReader.open(corpus, "old")), len(list_versions(corpus))
    procs = [subprocess.Popen(build_cmd(root, corpus, "--fps", fps), start_new_session=True, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for fps in ("25", "30")]
    same, stop = [], threading.Event()

    def keep_reading():
        while not stop.is_set():
            same.append(corpus_checksums(CorpusReader.open(corpus, "old")) == before)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        stop.set()
        reader.join()
        for p in procs:
            if p.poll() is None:
                kill_group(p)
    unchanged = bool(same) and all(same) and corpus_checksums(CorpusReader.open(corpus, "old")) == before
    return ConcurrentOutcome([p.returncode for p in procs], outputs, len(list_versions(corpus)) - n_before,
                             unchanged, validate_corpus(corpus) == [])


# --- killed training --------------------------------------------------------------------------


def train_cmd(config: Path, corpus: str, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "train", "--config", str(config), "--corpus", corpus,
            "--out", str(out_dir)]


def write_train_config(path: Path) -> Path:
    """A tiny config that checkpoints every 2 steps inside an epoch."""
    path.write_text(json.dumps({"preset": "tiny", "train": {"batch_size": 16, "epochs": 3, "lr": 1e-3},
                                "steps_per_epoch": 8, "checkpoint_every": 2, "block_frames": 64,
                                "buffer_blocks": 2, "eval_every": 0, "seed": 3}))
    return path


_TRAIN_ENV = {"OMP_NUM_THREADS": "1"}  # same thread count in every run: bit-identical CPU results


def run_training(config: Path, corpus: str, out_dir: Path) -> None:
    """Train (or resume an interrupted run in ``out_dir``) to the end, as a user would from the CLI."""
    subprocess.run(train_cmd(config, corpus, out_dir), check=True, cwd=REPO, env={**os.environ, **_TRAIN_ENV},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def kill_training_trial(config: Path, corpus: str, out_dir: Path, delay_s: float) -> bool:
    """Start training, SIGKILL it ``delay_s`` after its first checkpoint, then resume it to the end.

    Returns whether the process was killed before finishing.
    """
    proc = subprocess.Popen(train_cmd(config, corpus, out_dir), start_new_session=True, cwd=REPO,
                            env={**os.environ, **_TRAIN_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    last = out_dir / "checkpoints" / "last" / "model.safetensors"
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    killed = proc.poll() is None
    kill_group(proc)
    run_training(config, corpus, out_dir)
    return killed


def final_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / "final" / "model.safetensors"))
