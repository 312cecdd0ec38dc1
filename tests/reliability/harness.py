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
from contextlib import contextmanager
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
    digest: str = ""  # sha256 of the case's bytes: distinct cases are counted by content
    reasons: list = field(default_factory=list)  # the typed errors' reasons, digits masked (which check fired)

    @property
    def valid(self) -> bool:
        """The mutation still gave a valid file: a loader accepted it (a VideoPose3D 3D file is valid
        for the 3D loader and refused by the 2D one)."""
        return self.loaded > 0 and not self.escaped


def content_digest(path: Path) -> str:
    import hashlib

    if path.is_dir():
        return "directory"
    if not path.exists():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reason_kind(reason: str) -> str:
    import re

    return re.sub(r"[-+]?\d[\d.e+-]*", "#", reason)[:60]


def fuzz_case(kind: str, mutation: str, suffix: str, seed: int, workdir: Path, marker: Path) -> FuzzOutcome:
    """Write one malformed file, feed it to every loader of ``kind``, clean up; report what happened."""
    writer, _ = WRITERS[kind]
    path = workdir / f"case_{kind}_{mutation}_{seed}{suffix}"
    out = FuzzOutcome()
    what = writer(np.random.default_rng(seed), mutation, path, str(marker))
    out.digest = f"{suffix}:{content_digest(path)}"
    try:
        for load in loaders(kind):
            try:
                load(path)
                out.loaded += 1
            except InputError as exc:
                if not exc.reason or str(path) not in str(exc):
                    out.escaped.append((what, f"typed error without file/reason: {exc!r}"))
                out.typed_errors += 1
                out.reasons.append(_reason_kind(str(exc.reason)))
            except Exception as exc:  # noqa: BLE001 - exactly what must never happen
                out.escaped.append((f"{kind}/{mutation}: {what}", f"{type(exc).__name__}: {exc}"))
    finally:
        out.payload_ran = marker.exists()
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return out


@dataclass
class FuzzStats:
    """Per loader: cases, distinct (by content), typed errors, loaded valid, escaped, payloads, reasons."""
    cases: int = 0
    distinct: int = 0
    typed_errors: int = 0
    loaded_valid: int = 0
    escaped: int = 0
    payloads: int = 0
    reasons: set = field(default_factory=set)
    _seen: set = field(default_factory=set, repr=False)

    def add(self, out: FuzzOutcome) -> None:
        self.cases += 1
        if out.digest not in self._seen:
            self._seen.add(out.digest)
            self.distinct += 1
        self.typed_errors += out.typed_errors
        self.loaded_valid += out.valid
        self.escaped += len(out.escaped)
        self.payloads += out.payload_ran
        self.reasons.update(out.reasons)


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
    return [sys.executable, "-m", "flows.cli", "build-amass", str(root / "amass"),
            "--body-models", str(root / "body_models"), "--corpus", str(corpus), "--workers", "1", *extra]


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def visible_version_is_whole(corpus: Path) -> bool:
    """After a crash the repository opens (or was never created) and its latest version, if any, is
    complete and valid (never half-written). A repository that cannot be opened is NOT whole."""
    from schemas.reader import CorpusReader
    from pipelines.versions import list_versions
    from schemas.validate import validate_corpus

    if not repository_created(corpus):
        return True
    try:
        versions = list_versions(corpus)
        if not versions:
            return True
        reader = CorpusReader.open(corpus)
    except Exception:  # noqa: BLE001 - failing to open after a crash is exactly the failure we look for
        return False
    return validate_corpus(corpus, reader.version_id) == []


def repository_created(corpus: Path) -> bool:
    """False while nothing of the repository exists yet (a kill before creation leaves nothing to open)."""
    return corpus.exists() and any(corpus.iterdir())


# Where a kill can land, in build order (``landed_phase`` reads them off the child's trace).
PHASES = ("before_writes", "chunk_write", "between_flushes", "icechunk_commit", "commit_to_tag", "after_tag")
# Named kill points -> (MOCAP_CORPUS_FAULT spec, the phase the kill must land in).
NAMED_KILLS = {
    "chunk_write": [("chunk_write:1", "chunk_write"), ("chunk_write:5", "chunk_write"), ("chunk_write:12", "chunk_write")],
    "between_flushes": [("flush:2", "between_flushes"), ("flush:9", "between_flushes")],
    "icechunk_commit": [("icechunk_commit", "icechunk_commit"), ("icechunk_commit", "icechunk_commit")],
    "commit_to_tag": [("tag", "commit_to_tag")],
}
TRIAL_TAG = "v1"
# Rows per writer flush in trials: the synthetic builds (~2k frames, ~8k view frames) go through tens of
# flushes before their commit, as a real corpus does with the default flush size.
TRIAL_FLUSH_ROWS = 512


def trial_env(trace: Path, fault: str | None = None) -> dict:
    from pipelines.writer import FLUSH_ROWS_ENV
    from schemas.faults import ENV, TRACE_ENV

    env = {**os.environ, FLUSH_ROWS_ENV: str(TRIAL_FLUSH_ROWS), TRACE_ENV: str(trace)}
    env.pop(ENV, None)
    return {**env, ENV: fault} if fault else env


@contextmanager
def trial_flush_size():
    """This process's writers flush every TRIAL_FLUSH_ROWS rows while inside the block."""
    from pipelines.writer import FLUSH_ROWS_ENV

    old = os.environ.get(FLUSH_ROWS_ENV)
    os.environ[FLUSH_ROWS_ENV] = str(TRIAL_FLUSH_ROWS)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FLUSH_ROWS_ENV, None)
        else:
            os.environ[FLUSH_ROWS_ENV] = old


def landed_phase(events: list[str]) -> str:
    """The build phase a trace (the events a killed child passed, in order) ended in."""
    seen = set(events)
    last = next((e for e in reversed(events) if not e.startswith("kill:")), "")
    if "tagged" in seen:
        return "after_tag"
    if "branch_moved" in seen:
        return "commit_to_tag"
    if "icechunk_commit_begin" in seen:
        return "icechunk_commit"
    if last == "chunk_write_begin" or any(e == "kill:chunk_write" for e in events):
        return "chunk_write"
    if "chunk_write_begin" in seen or "commit_begin" in seen:
        return "between_flushes"
    return "before_writes"


@dataclass
class KillTrial:
    fault: str | None  # the named point, or None for a random moment
    delay_s: float | None
    killed: bool  # verified: died by SIGKILL, at the named point when there was one
    phase: str  # where it landed (PHASES)
    repo_opened: bool
    half_written_seen: int  # visible versions that are not whole and equal to the reference
    equal_after_rerun: bool
    bytes_lost: int  # bytes of the reference content missing or different after the rerun
    flushes_before_kill: int
    store_bytes: int  # bytes on disk after the rerun


def timed_build(root: Path, corpus: Path) -> float:
    """Wall time of one uninterrupted build subprocess (imports, Dask start-up, compute, commit)."""
    return timed_build_phases(root, corpus)[0]


def timed_build_phases(root: Path, corpus: Path) -> tuple[float, float]:
    """(wall time of one uninterrupted build subprocess, seconds from its start to its first sequence
    handed to the writer): start-up dominates a small build, so random kills also aim at the rest."""
    trace = corpus.with_name(corpus.name + ".trace")
    trace.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(build_cmd(root, corpus, "--tag", TRIAL_TAG), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=trial_env(trace))
    first_write = wait_for_event(proc, trace, "write")
    first_write = (first_write if first_write is not None else time.perf_counter()) - t0
    if proc.wait(timeout=600) != 0:
        raise RuntimeError(f"the uninterrupted build into {corpus} failed")
    return time.perf_counter() - t0, first_write


def wait_for_event(proc: subprocess.Popen, trace: Path, event: str, timeout_s: float = 600) -> float | None:
    """perf_counter() when ``event`` first appears in the child's trace; None if the child ended first."""
    deadline = time.perf_counter() + timeout_s
    while proc.poll() is None and time.perf_counter() < deadline:
        if trace.exists() and event in trace.read_text().split():
            return time.perf_counter()
        time.sleep(0.005)
    return None


def kill_delays(duration_s: float, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` random moments across ``duration_s`` (a build, or its part after the first write)."""
    return [float(d) for d in rng.uniform(0.0, 0.95, size=n) * duration_s]


def check_visible_versions(corpus: Path, reference: dict) -> tuple[bool, int]:
    """(repository opens, number of visible versions that are half-written). Only one build ever ran
    into ``corpus``, so every visible version (branch history and tags) must validate and equal it."""
    from pipelines.checksums import corpus_checksums
    from schemas.reader import CorpusReader
    from schemas.repository import open_repository
    from pipelines.versions import list_versions
    from schemas.validate import validate_corpus

    if not repository_created(corpus):
        return True, 0
    try:
        repo = open_repository(corpus)
        ids = {v.id for v in list_versions(corpus)} | {repo.lookup_tag(t) for t in repo.list_tags()}
        tip = repo.lookup_branch("main")
        if len(list(repo.ancestry(snapshot_id=tip))) > 1:  # anything but Icechunk's empty first snapshot
            ids.add(tip)
    except Exception:  # noqa: BLE001 - a repository that does not open after a crash is the failure
        return False, 0
    bad = 0
    for vid in sorted(ids):
        try:
            whole = validate_corpus(corpus, vid) == [] and corpus_checksums(CorpusReader.open(corpus, vid)) == reference
        except Exception:  # noqa: BLE001
            whole = False
        bad += not whole
    return True, bad


def kill_build_trial(root: Path, corpus: Path, reference: dict, fault: str | None, delay_s: float | None,
                     after_first_write: bool = False) -> KillTrial:
    """SIGKILL a build (at a named fault point, or ``delay_s`` after its start - or after its first
    sequence reached the writer), check what is visible, rerun it, compare with ``reference`` array by
    array and manifest by manifest."""
    from pipelines.build import build_amass
    from pipelines.checksums import corpus_checksums
    from schemas.reader import CorpusReader
    from pipelines.versions import store_bytes

    trace = corpus.with_name(corpus.name + ".trace")
    trace.unlink(missing_ok=True)
    proc = subprocess.Popen(build_cmd(root, corpus, "--tag", TRIAL_TAG), env=trial_env(trace, fault),
                            start_new_session=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if fault is None:
        if after_first_write:
            wait_for_event(proc, trace, "write")
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            pass
        alive = proc.poll() is None
        kill_group(proc)  # the build and its Dask workers
    else:
        proc.wait(timeout=600)
        alive = True
        kill_group(proc)  # its Dask workers
    events = trace.read_text().split() if trace.exists() else []
    point = fault.partition(":")[0] if fault else None
    killed = alive and proc.returncode == -signal.SIGKILL and (point is None or events[-1:] == [f"kill:{point}"])
    opened, half = check_visible_versions(corpus, reference)
    with trial_flush_size():  # the rerun writes like the killed build did, so bytes on disk compare
        report = build_amass(build_config(root, corpus, tag=TRIAL_TAG))
    reader = CorpusReader.open(corpus, TRIAL_TAG)
    sums = corpus_checksums(reader)
    return KillTrial(fault, delay_s, killed, landed_phase(events), opened, half,
                     sums == reference and reader.version_id == report.version_id,
                     differing_bytes(reader, sums, reference), events.count("flush"), store_bytes(corpus))


def kill_plan(n_random: int, per_phase: int | None = None) -> list[tuple[str, str | None]]:
    """[(chosen phase, fault spec or None)]: the named kill points (the first ``per_phase`` of each, all
    when None), then ``n_random`` random moments."""
    plan = [(phase, spec) for phase, points in NAMED_KILLS.items() for spec, _ in points[:per_phase]]
    return plan + [("random", None)] * n_random


@dataclass
class KillTrials:
    trials: list  # KillTrial
    chosen: list  # the phase each trial was aimed at (NAMED_KILLS keys or "random")
    clean_bytes: int  # bytes on disk of one uninterrupted build with the same settings
    clean_bytes_gc: int  # the same after `mocap-corpus gc --grace 0` (trial flushes rewrite chunks)
    gc_after: list  # bytes on disk of each trial corpus after `mocap-corpus gc --grace 0`
    gc_equal: bool  # every trial corpus still equal to the reference after gc

    def verified(self) -> list:
        return [t for t in self.trials if t.killed]

    def kills_by_phase(self) -> dict[str, int]:
        out = {k: 0 for k in (*NAMED_KILLS, "random")}
        for aim, t in zip(self.chosen, self.trials):
            out[aim] += t.killed
        return out

    def garbage_before_gc(self) -> int:
        return sum(t.store_bytes - self.clean_bytes for t in self.trials)

    def garbage_after_gc(self) -> int:
        # each corpus's snapshot metadata differs by a few bytes (ids, times): count no byte below zero
        return sum(max(0, b - self.clean_bytes_gc) for b in self.gc_after)


def gc_cli(corpus: Path) -> None:
    subprocess.run([sys.executable, "-m", "flows.cli", "gc", str(corpus), "--grace", "0"], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL, timeout=300)


def run_kill_trials(root: Path, work: Path, reference: dict, n_random: int, seed: int,
                    per_phase: int | None = None) -> KillTrials:
    """The kill plan against fresh corpora under ``work``; then ``mocap-corpus gc`` on each one; bytes
    on disk compared with one uninterrupted build under the same settings (before and after gc)."""
    from pipelines.checksums import corpus_checksums
    from schemas.reader import CorpusReader
    from pipelines.versions import store_bytes

    named = kill_plan(0, per_phase)
    duration, first_write = timed_build_phases(root, work / "timed")
    rng = np.random.default_rng(seed)
    trials = [kill_build_trial(root, work / f"kill{i}", reference, spec, None) for i, (_, spec) in enumerate(named)]
    plan = list(named)
    # Random moments until ``n_random`` of them really killed a running build (a moment past the end of a
    # build that ran faster than the timed one is tried, not counted): every other one across the whole
    # build, the others across what follows the first sequence reaching the writer (flushes, the commit,
    # the tag), which start-up would otherwise crowd out.
    whole = iter(kill_delays(duration, 3 * n_random, rng))
    writing = iter(kill_delays(max(duration - first_write, 0.05), 3 * n_random, rng))
    for j in range(3 * n_random):
        if sum(t.killed for t in trials[len(named):]) >= n_random:
            break
        late = j % 2 == 1
        delay = next(writing if late else whole)
        trials.append(kill_build_trial(root, work / f"kill{len(plan)}", reference, None, delay, after_first_write=late))
        plan.append(("random", None))
    clean = store_bytes(work / "timed")
    gc_cli(work / "timed")
    gc_after, equal = [], True
    for i in range(len(plan)):
        corpus = work / f"kill{i}"
        gc_cli(corpus)
        gc_after.append(store_bytes(corpus))
        equal &= corpus_checksums(CorpusReader.open(corpus, TRIAL_TAG)) == reference
    return KillTrials(trials, [aim for aim, _ in plan], clean, store_bytes(work / "timed"), gc_after, equal)


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
    in_sequence: bool = False  # the two new versions are the two builds (fps 25 and 30), each whole


def concurrent_builds(root: Path, corpus: Path) -> ConcurrentOutcome:
    """Tag a first build "old", then run two builds (different fps) into the same corpus at once while
    a reader pinned to "old" keeps re-reading it."""
    import threading

    from pipelines.build import build_amass
    from pipelines.checksums import corpus_checksums
    from schemas.reader import CorpusReader
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
    new = list_versions(corpus)[: len(list_versions(corpus)) - n_before]
    in_sequence = (sorted(CorpusReader.open(corpus, v.id).fps for v in new) == [25.0, 30.0]
                   and all(validate_corpus(corpus, v.id) == [] for v in new))
    return ConcurrentOutcome([p.returncode for p in procs], outputs, len(new), unchanged,
                             validate_corpus(corpus) == [], in_sequence)


_WRITER_SCRIPT = """
import sys, numpy as np
from corpus_fixtures import make_seq
from pipelines.writer import CorpusWriter
from schemas.errors import VersionConflictError
path, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
done = conflicts = 0
while done < rounds and conflicts < 500:
    with CorpusWriter(path) as w:
        w.add(make_seq(np.random.default_rng(1000 * done + ord(who)), f"{who}/{done}", 40 + 10 * done))
        try:
            w.commit(f"{who} {done}")
            done += 1
        except VersionConflictError:
            conflicts += 1
print(done, conflicts)
"""


@dataclass
class RoundsOutcome:
    commits: int  # commits the writers reported
    conflicts: int  # refused commits they retried
    versions_added: int
    all_whole: bool  # every new version validates and holds exactly the sequence its writer added
    pinned_reader_unchanged: bool


def writer_rounds(corpus: Path, writers: int = 3, rounds: int = 5) -> RoundsOutcome:
    """``writers`` processes each commit ``rounds`` versions to one corpus at once (retrying refused
    commits), while a reader pinned to the version before them keeps re-reading it."""
    import threading

    from pipelines.checksums import corpus_checksums
    from schemas.reader import CorpusReader
    from pipelines.writer import CorpusWriter
    from pipelines.versions import list_versions
    from schemas.validate import validate_corpus
    from tests.pipelines.corpus_fixtures import make_seq

    with CorpusWriter(corpus) as w:
        w.add(make_seq(np.random.default_rng(0), "base/0", 30))
        old = w.commit("base")
    before, n_before = corpus_checksums(CorpusReader.open(corpus, old)), len(list_versions(corpus))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "pipelines"), str(REPO)])}
    names = [chr(ord("P") + i) for i in range(writers)]
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(corpus), who, str(rounds)], env=env,
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in names]
    same, stop = [], threading.Event()

    def keep_reading():
        while not stop.is_set():
            same.append(corpus_checksums(CorpusReader.open(corpus, old)) == before)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        outs = [p.communicate(timeout=900) for p in procs]
    finally:
        stop.set()
        reader.join()
    commits = conflicts = 0
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError(f"writer failed: {err[-2000:]}")
        d, c = map(int, out.split()[-2:])
        commits, conflicts = commits + d, conflicts + c
    new = list_versions(corpus)[: len(list_versions(corpus)) - n_before]
    whole = True
    for v in new:
        who, i = v.message.split()
        r = CorpusReader.open(corpus, v.id)
        whole &= (validate_corpus(corpus, v.id) == [] and r.sequences.column("key").to_pylist() == [f"{who}/{i}"]
                  and r.sequences.column("n_frames").to_pylist() == [40 + 10 * int(i)])
    unchanged = bool(same) and all(same) and corpus_checksums(CorpusReader.open(corpus, old)) == before
    return RoundsOutcome(commits, conflicts, len(new), whole, unchanged)


# --- killed training --------------------------------------------------------------------------


def train_cmd(config: Path, corpus: str, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "train", "--config", str(config), "--corpus", corpus,
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


def final_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / "final" / "model.safetensors"))


# Kill points inside ``save_checkpoint`` (the n-th save): while the new files are written, after they
# are written, with the old one aside and the new one not yet in, after it moved in.
CHECKPOINT_KILLS = ["ckpt_aside:2", "ckpt_files:3", "ckpt_written:4", "ckpt_aside:6", "ckpt_in:5", "ckpt_aside:9"]


@dataclass
class CheckpointKill:
    fault: str
    killed: bool  # verified: died by SIGKILL at the named point
    last_complete: tuple | None  # (epoch, batch) of the last checkpoint that finished moving in
    resumed_from: tuple | None  # (epoch, batch) of the checkpoint the resume finds
    equal: bool  # final weights equal to the uninterrupted run


def _ckpt_meta(run_dir: Path) -> tuple | None:
    from uplift.train import find_checkpoint

    try:
        meta = json.loads((find_checkpoint(run_dir / "checkpoints" / "last") / "meta.json").read_text())
    except Exception:  # noqa: BLE001 - no checkpoint at all
        return None
    return int(meta["epoch"]), int(meta["batch"])


def checkpoint_kill_trial(config: Path, corpus: str, out_dir: Path, fault: str, straight: dict) -> CheckpointKill:
    """SIGKILL training inside its n-th ``save_checkpoint``, resume it to the end, compare with ``straight``."""
    import torch

    from schemas.faults import ENV, TRACE_ENV

    trace = out_dir.with_name(out_dir.name + ".trace")
    trace.unlink(missing_ok=True)
    env = {**os.environ, **_TRAIN_ENV, ENV: fault, TRACE_ENV: str(trace)}
    proc = subprocess.Popen(train_cmd(config, corpus, out_dir), start_new_session=True, cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=600)
    kill_group(proc)
    events = trace.read_text().split() if trace.exists() else []
    killed = proc.returncode == -signal.SIGKILL and events[-1:] == [f"kill:{fault.partition(':')[0]}"]
    done = [e.split(":") for e in events if e.startswith("ckpt_complete:last:")]
    last_complete = (int(done[-1][2]), int(done[-1][3])) if done else None
    found = _ckpt_meta(out_dir)
    run_training(config, corpus, out_dir)
    b = final_weights(out_dir)
    equal = straight.keys() == b.keys() and all(torch.equal(straight[k], b[k]) for k in straight)
    return CheckpointKill(fault, killed, last_complete, found, equal)
