"""Killed builds: SIGKILL a build at a named fault point or a random moment, check what stays visible,
rerun it and compare with an uninterrupted build; a killed Dask worker; garbage left and collected.
The killed builds run under ``tests.support.faults``, which puts the named points into the product
from outside (in the build and in its Dask workers).

Each function runs one kind of trial and returns what happened; ``tests/reliability`` asserts on it,
``benchmarks/reliability_report.py`` counts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from distributed import LocalCluster

from tests.support import REPO
from tests.support.builds import CLI, build_cmd, build_config, kill_group
from tests.support.faults import FAULT_ENV, FLUSH_ROWS_ENV, TRACE_ENV, flush_every, trial_cli
from pipelines.build_amass import build_amass
from pipelines.hashing import corpus_checksums
from pipelines.gc import store_bytes
from schemas.versions import list_versions
from schemas.reader import CorpusReader
from schemas.repository import open_repository
from schemas.store import ARRAYS
from schemas.validate import validate_corpus


def repository_created(corpus: Path) -> bool:
    """False while nothing of the repository exists yet (a kill before creation leaves nothing to open)."""
    return corpus.exists() and any(corpus.iterdir())


# Where a kill can land, in build order (``landed_phase`` reads them off the child's trace).
PHASES = ("before_writes", "chunk_write", "between_flushes", "icechunk_commit", "commit_to_tag", "after_tag")
# Named kill points (tests.support.faults) -> (MOCAP_TRIAL_FAULT spec, the phase the kill must land in).
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
    env = {**os.environ, FLUSH_ROWS_ENV: str(TRIAL_FLUSH_ROWS), TRACE_ENV: str(trace)}
    env.pop(FAULT_ENV, None)
    return {**env, FAULT_ENV: fault} if fault else env


def trial_build_cmd(root: Path, corpus: Path) -> list[str]:
    """The CLI build a trial runs (and kills), with the build's fault points installed from outside."""
    cmd = build_cmd(root, corpus, "--tag", TRIAL_TAG)
    return [*trial_cli("build"), *cmd[len(CLI):]]


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


def timed_build_phases(root: Path, corpus: Path) -> tuple[float, float]:
    """(wall time of one uninterrupted build subprocess, seconds from its start to its first sequence
    handed to the writer): start-up dominates a small build, so random kills also aim at the rest."""
    trace = corpus.with_name(corpus.name + ".trace")
    trace.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(trial_build_cmd(root, corpus), cwd=REPO, stdout=subprocess.DEVNULL,
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
    trace = corpus.with_name(corpus.name + ".trace")
    trace.unlink(missing_ok=True)
    proc = subprocess.Popen(trial_build_cmd(root, corpus), env=trial_env(trace, fault),
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
    with flush_every(TRIAL_FLUSH_ROWS):  # the rerun writes like the killed build did, so bytes on disk compare
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
    subprocess.run([*CLI, "gc", str(corpus), "--grace", "0"], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL, timeout=300)


def run_kill_trials(root: Path, work: Path, reference: dict, n_random: int, seed: int,
                    per_phase: int | None = None) -> KillTrials:
    """The kill plan against fresh corpora under ``work``; then ``mocap-corpus gc`` on each one; bytes
    on disk compared with one uninterrupted build under the same settings (before and after gc)."""
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
