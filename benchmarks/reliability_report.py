"""Reliability report: malformed inputs, killed builds / workers / training, concurrent builds.

    .venv/bin/python benchmarks/reliability_report.py [--fuzz-cases 1000] [--kill-trials 10]

Runs the same experiments as ``tests/reliability`` (through ``tests/reliability/harness.py``) with
seeds instead of hypothesis, prints a table, and ends with one JSON line: fuzz_cases, kill_trials,
equal_builds, bytes_lost, payloads_executed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.reliability

import numpy as np  # noqa: E402

from pipelines.synthetic.malformed import MUTATIONS, WRITERS  # noqa: E402
from tests.reliability import harness  # noqa: E402


def fuzz(cases: int, work: Path, seed: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    marker = work / "payload.executed"
    stats = {}
    for kind, (_, suffixes) in sorted(WRITERS.items()):
        s = {"cases": 0, "typed_errors": 0, "loaded": 0, "escaped": 0, "payloads": 0}
        for _ in range(cases):
            out = harness.fuzz_case(kind, str(rng.choice(MUTATIONS)), str(rng.choice(suffixes)),
                                    int(rng.integers(2**32)), work, marker)
            s["cases"] += 1
            s["typed_errors"] += out.typed_errors
            s["loaded"] += out.loaded
            s["escaped"] += len(out.escaped)
            s["payloads"] += int(out.payload_ran)
            for what, exc in out.escaped:
                print(f"ESCAPED {what}: {exc}", file=sys.stderr)
        stats[kind] = s
    return stats


def killed_training(work: Path) -> bool:
    import torch

    from tests.uplift.test_train import projected_corpus

    corpus = projected_corpus(work / "train_corpus", n_seq=3, n_frames=160)
    config = harness.write_train_config(work / "tiny.json")
    harness.run_training(config, corpus, work / "straight")
    killed = harness.kill_training_trial(config, corpus, work / "killed", delay_s=0.3)
    a, b = harness.final_weights(work / "straight"), harness.final_weights(work / "killed")
    return killed and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def hostile_files(work: Path) -> dict:
    """Issue 16: every hostile-file case in its own forked child; counts for the JSON line."""
    from tests.reliability import hostile

    results = hostile.run_suite(work / "hostile")
    for r in results:
        if not r["ok"]:
            print(f"HOSTILE {r['name']}: {r['outcome']}: {r['message']}", file=sys.stderr)
    return hostile.summary(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz-cases", type=int, default=1000, help="malformed files per input kind")
    ap.add_argument("--kill-trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from pipelines.build import build_amass
    from pipelines.checksums import corpus_checksums
    from pipelines.corpus import CorpusReader

    work = Path(tempfile.mkdtemp(prefix="reliability_"))
    t0 = time.perf_counter()
    fz = fuzz(args.fuzz_cases, work, args.seed)
    fuzz_s = time.perf_counter() - t0

    root = harness.make_inputs(work / "inputs")
    build_amass(harness.build_config(root, work / "reference"))
    reference = corpus_checksums(CorpusReader.open(work / "reference"))
    faults = (["write:1", "write:3", "write:6", "commit"] + [None] * args.kill_trials)[: args.kill_trials]
    delays = harness.kill_delays(harness.timed_build(root, work / "timed"), len(faults),
                                 np.random.default_rng(args.seed))
    trials = [harness.kill_build_trial(root, work / f"kill{i}", reference, f, d)
              for i, (f, d) in enumerate(zip(faults, delays))]
    worker_ok = harness.killed_worker_build(root, work / "worker_kill") and corpus_checksums(
        CorpusReader.open(work / "worker_kill")) == reference
    conc = harness.concurrent_builds(root, work / "concurrent")
    committed = sum(c == 0 for c in conc.exit_codes)
    concurrent_ok = (conc.pinned_reader_unchanged and conc.valid and conc.versions_added == committed
                     and all(c == 0 or "conflict" in o.lower() for c, o in zip(conc.exit_codes, conc.outputs)))
    training_ok = killed_training(work)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="reliability report")
    for col in ("experiment", "tried", "survived / equal", "notes"):
        table.add_column(col)
    for kind, s in fz.items():
        table.add_row(f"fuzz: {kind}", str(s["cases"]), f"{s['cases'] - s['escaped']}",
                      f"{s['typed_errors']} typed errors, {s['loaded']} loads, {s['escaped']} escaped, "
                      f"{s['payloads']} payloads ran")
    table.add_row("SIGKILL build + rerun", str(len(trials)), f"{sum(t.equal_after_rerun for t in trials)}",
                  f"{sum(t.killed for t in trials)} killed before the end; "
                  f"half-written versions seen: {sum(not t.whole_after_crash for t in trials)}")
    table.add_row("SIGKILL a Dask worker", "1", str(int(worker_ok)), "build equal to the reference")
    table.add_row("two concurrent builds", "1", str(int(concurrent_ok)), f"{committed} versions committed in sequence")
    table.add_row("SIGKILL training + resume", "1", str(int(training_ok)), "same final weights as uninterrupted")
    Console().print(table)
    print(f"fuzzing took {fuzz_s:.0f} s; work dir {work}")
    print(json.dumps({
        "fuzz_cases": sum(s["cases"] for s in fz.values()),
        "fuzz_escaped": sum(s["escaped"] for s in fz.values()),
        "kill_trials": len(trials),
        "equal_builds": sum(t.equal_after_rerun for t in trials) + int(worker_ok),
        "bytes_lost": sum(t.bytes_lost for t in trials),
        "payloads_executed": sum(s["payloads"] for s in fz.values()),
        "half_written_seen": sum(not t.whole_after_crash for t in trials),
        "concurrent_ok": concurrent_ok, "training_resume_equal": training_ok,
        **hostile_files(work),
    }))


if __name__ == "__main__":
    main()
