"""Reliability report: malformed inputs, killed builds / workers / training, concurrent writers, garbage.

    .venv/bin/python -m benchmarks.reliability_report [--fuzz-cases 1000] [--kill-random 14] [--seed 0]
                                                      [--sections fuzz,kill,checkpoint,concurrency,hostile,integrity]

Runs the same experiments as ``tests/reliability`` (through ``tests.support``) with
seeds instead of hypothesis and longer counts, prints a table, and ends with one JSON line that counts
only what really happened (a kill counts when the child died by SIGKILL where it was aimed):

    kill_trials, kills_by_phase, equal_builds, bytes_lost, half_written_seen, repo_open_failures,
    checkpoint_kills, checkpoint_resumes_equal, fuzz_cases, fuzz_distinct, fuzz_escaped,
    payloads_executed, concurrent_commits, garbage_bytes_before_gc, garbage_bytes_after_gc,
    hostile_*, integrity_cases, integrity_failures, integrity_by_class

(``checkpoint_resumes_equal`` counts trials where training itself reported loading the last complete
checkpoint and took exactly the remaining steps, besides ending with equal weights.)

The report is a list of named sections (``SECTIONS``, ``--sections`` picks some); each is a function
``(args, work) -> Section`` whose ``summary`` dict is merged into the final JSON line. Add a section to
add figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support import checkpoint_kills, concurrency, hostile_runner, kill_trials
from tests.support.builds import build_config, make_inputs
from tests.support.fuzz import FuzzStats, fuzz_case
from tests.support.training_corpus import projected_corpus
from pipelines.build_amass import build_amass
from pipelines.hashing import corpus_checksums
from tests.support.malformed import WRITERS, mutations
from schemas.reader import CorpusReader


@dataclass
class Section:
    rows: list = field(default_factory=list)  # (experiment, tried, survived / equal, notes)
    summary: dict = field(default_factory=dict)  # merged into the final JSON line


def fuzz_section(args, work: Path) -> Section:
    """Every loader against ``--fuzz-cases`` malformed files (body models: full 6890-vertex models)."""
    rng = np.random.default_rng(args.seed)
    marker = work / "payload.executed"
    sec, totals = Section(), FuzzStats()
    for kind, (_, suffixes) in sorted(WRITERS.items()):
        s = FuzzStats()
        for _ in range(args.fuzz_cases):
            out = fuzz_case(kind, str(rng.choice(mutations(kind))), str(rng.choice(suffixes)),
                                    int(rng.integers(2**32)), work, marker)
            s.add(out)
            totals.add(out)
            for what, exc in out.escaped:
                print(f"ESCAPED {what}: {exc}", file=sys.stderr)
        sec.rows.append((f"fuzz: {kind}", str(s.cases), str(s.cases - s.escaped),
                         f"{s.distinct} distinct, {s.typed_errors} typed errors, {s.loaded_valid} loaded valid, "
                         f"{s.escaped} escaped, {s.payloads} payloads ran, {len(s.reasons)} distinct reasons"))
    sec.summary = {"fuzz_cases": totals.cases, "fuzz_distinct": totals.distinct, "fuzz_escaped": totals.escaped,
                   "payloads_executed": totals.payloads}
    return sec


def kill_section(args, work: Path) -> Section:
    """SIGKILLed builds at every named point and at random moments; rerun; gc; a killed Dask worker."""
    root = make_inputs(work / "inputs")
    build_amass(build_config(root, work / "reference", tag=kill_trials.TRIAL_TAG))
    reference = corpus_checksums(CorpusReader.open(work / "reference"))
    out = kill_trials.run_kill_trials(root, work / "kills", reference, n_random=args.kill_random, seed=args.seed)
    killed = out.verified()
    landed = {}
    for aim, t in zip(out.chosen, out.trials):
        if t.killed and aim == "random":
            landed[t.phase] = landed.get(t.phase, 0) + 1
    sec = Section()
    sec.rows.append(("SIGKILL build + rerun", str(len(out.trials)), str(sum(t.equal_after_rerun for t in killed)),
                     f"{len(killed)} verified kills: {out.kills_by_phase()}; random ones landed in {landed}; "
                     f"most flushes before a kill: {max((t.flushes_before_kill for t in killed), default=0)}"))
    sec.rows.append(("garbage after the kills", str(len(out.trials)), "gc: " + ("equal" if out.gc_equal else "DIFFERS"),
                     f"{out.garbage_before_gc():,} bytes before gc, {out.garbage_after_gc():,} after "
                     f"(against one clean build of {out.clean_bytes:,} bytes, {out.clean_bytes_gc:,} after its gc)"))
    worker_ok = kill_trials.killed_worker_build(root, work / "worker_kill") and corpus_checksums(
        CorpusReader.open(work / "worker_kill")) == reference
    sec.rows.append(("SIGKILL a Dask worker", "1", str(int(worker_ok)), "build equal to the reference"))
    sec.summary = {
        "kill_trials": len(killed),
        "kills_by_phase": out.kills_by_phase(),
        "equal_builds": sum(t.equal_after_rerun for t in killed),
        "bytes_lost": sum(t.bytes_lost for t in out.trials),
        "half_written_seen": sum(t.half_written_seen for t in out.trials),
        "repo_open_failures": sum(not t.repo_opened for t in out.trials),
        "garbage_bytes_before_gc": out.garbage_before_gc(),
        "garbage_bytes_after_gc": out.garbage_after_gc(),
    }
    return sec


def checkpoint_section(args, work: Path) -> Section:
    """SIGKILLed inside save_checkpoint at each named point, resumed to the end."""
    corpus = projected_corpus(work / "train_corpus", n_seq=3, n_frames=160)
    config = checkpoint_kills.write_train_config(work / "tiny.json")
    checkpoint_kills.run_training(config, corpus, work / "straight")
    straight = checkpoint_kills.final_weights(work / "straight")
    trials = [checkpoint_kills.checkpoint_kill_trial(config, corpus, work / f"ckpt{i}", f, straight)
              for i, f in enumerate(checkpoint_kills.CHECKPOINT_KILLS)]
    good = [t for t in trials if t.ok]
    sec = Section()
    sec.rows.append(("SIGKILL in save_checkpoint + resume", str(len(trials)), str(len(good)),
                     "; ".join(f"{t.fault}: {'killed' if t.killed else 'NOT killed'}, training loaded "
                               f"{t.resumed_from} (last complete {t.last_complete}) and took {t.steps_after} "
                               f"steps (the rest: {t.expected_steps})" for t in trials)))
    sec.summary = {"checkpoint_kills": sum(t.killed for t in trials), "checkpoint_resumes_equal": len(good)}
    return sec


def concurrency_section(args, work: Path) -> Section:
    """Two builds started together; 3 writers x 5 rounds; readers pinned to an older version."""
    root = make_inputs(work / "conc_inputs")
    two = concurrency.concurrent_builds(root, work / "concurrent")
    two_ok = two.exit_codes == [0, 0] and two.in_sequence and two.pinned_reader_unchanged and two.valid
    rounds = concurrency.writer_rounds(work / "rounds", writers=3, rounds=5)
    sec = Section()
    sec.rows.append(("two builds started together", "2", str(two.versions_added),
                     f"exit codes {two.exit_codes}, in sequence: {two.in_sequence}, "
                     f"pinned reader unchanged: {two.pinned_reader_unchanged}"))
    sec.rows.append(("3 writers x 5 rounds", "15", str(rounds.versions_added),
                     f"{rounds.conflicts} refused commits retried, every version whole: {rounds.all_whole}, "
                     f"pinned reader unchanged: {rounds.pinned_reader_unchanged}"))
    landed = (two.versions_added if two_ok else 0) + (rounds.versions_added if rounds.all_whole
                                                      and rounds.pinned_reader_unchanged else 0)
    sec.summary = {"concurrent_commits": landed}
    return sec


def hostile_section(args, work: Path) -> Section:
    """Issue 16: every hostile-file case in its own forked child (crash, hang, memory budget)."""
    results = hostile_runner.run_suite(work / "hostile")
    for r in results:
        if not r["ok"]:
            print(f"HOSTILE {r['name']}: {r['outcome']}: {r['message']}", file=sys.stderr)
    counts = hostile_runner.summary(results)
    sec = Section()
    sec.rows.append(("hostile files (crafted pickles, bombs, special files)", str(counts["hostile_cases"]),
                     str(counts["hostile_cases"] - counts["hostile_crashes"] - counts["hostile_hangs"]
                         - counts["hostile_over_budget"]),
                     f"{counts['hostile_crashes']} crashes, {counts['hostile_hangs']} hangs, "
                     f"{counts['hostile_over_budget']} over budget"))
    sec.summary = counts
    return sec


def integrity_section(args, work: Path) -> Section:
    """Issue 23: one crafted input per way in (amplification, work before budgets, unbounded readers,
    parameter ranges, implausible values, lying versions, failures after a commit, untyped errors),
    each in its own forked child; ``integrity_cases`` and ``integrity_failures`` count them."""
    results = hostile_runner.run_suite(work / "integrity", suite="integrity")
    for r in results:
        if not r["ok"]:
            print(f"INTEGRITY {r['name']}: {r['outcome']}: {r['message']}", file=sys.stderr)
    counts = hostile_runner.integrity_summary(results)
    sec = Section()
    for cls, n in counts["integrity_by_class"].items():
        sec.rows.append((f"integrity: {cls}", str(n["cases"]), str(n["cases"] - n["failures"]),
                         ", ".join(r["name"] for r in results
                                   if r.get("category") == cls and not r["ok"]) or "each a typed error or a reject row"))
    sec.summary = counts
    return sec


SECTIONS = {"fuzz": fuzz_section, "kill": kill_section, "checkpoint": checkpoint_section,
            "concurrency": concurrency_section, "hostile": hostile_section, "integrity": integrity_section}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz-cases", type=int, default=1000, help="malformed files per input kind")
    ap.add_argument("--kill-random", type=int, default=14, help="random-moment kills besides the named points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="comma-separated subset of: " + ", ".join(SECTIONS))
    args = ap.parse_args()
    chosen = [s for s in args.sections.split(",") if s]
    if unknown := set(chosen) - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}")

    work = Path(tempfile.mkdtemp(prefix="reliability_"))
    rows, summary = [], {}
    for name in chosen:
        t0 = time.perf_counter()
        sec = SECTIONS[name](args, work)
        rows += sec.rows
        summary.update(sec.summary)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="reliability report")
    for col in ("experiment", "tried", "survived / equal", "notes"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    print(f"work dir {work}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
