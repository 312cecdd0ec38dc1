"""What parsing an untrusted pickle in a worker process would cost, on a full-size VideoPose3D file.

    .venv/bin/python -m benchmarks.bench_pickle_isolation [--frames 950] [--repeats 3]

Issue 16 asks whether the allow-listed unpickler can be made safe in-process, and if not, what a
short-lived worker per file (memory/CPU limits through ``setrlimit``) would cost. ``safe_pickle``
now parses into inert stand-ins and builds arrays only after validation, so the build keeps the
in-process path; this script measures the alternative side by side on the same file:

- ``inprocess``: ``load_positions_3d`` in this process (prescan + parse + validated conversion);
- ``worker_fresh``: a new interpreter per file (``RLIMIT_AS``/``RLIMIT_CPU``), which loads the file
  and hands the arrays back as a flat uncompressed ``.npz`` read with ``allow_pickle=False`` (a
  worker's output must not be a pickle either);
- ``worker_forkserver``: the same from a forkserver with the modules preloaded (warm pool).

The 3D file is the synthetic H36M generator at full size: 7 subjects x 30 actions (~50 MB, like
VideoPose3D's ``data_3d_h36m.npz``). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.support import REPO
from pipelines.h36m import load_positions_3d
from pipelines.safe_pickle import prescan_pickle

ACTIONS = tuple(f"{a} {i}" for a in ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing",
                                     "Purchases", "Sitting", "SittingDown", "Smoking", "Photo", "Waiting",
                                     "Walking", "WalkDog", "WalkTogether") for i in (1, 2))
LIMIT_AS = 4 << 30
LIMIT_CPU_S = 60


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))
    resource.setrlimit(resource.RLIMIT_CPU, (LIMIT_CPU_S, LIMIT_CPU_S))


def worker_main(src: str, out: str) -> None:
    """In the worker: limits, parse, write a flat npz of plain arrays ("subject/action" keys)."""
    _limits()
    from pipelines.h36m import load_positions_3d as load

    flat = {f"{s}/{a}": x for s, acts in load(src).items() for a, x in acts.items()}
    np.savez(out, **flat)


def read_flat(path: str) -> dict:
    out: dict = {}
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            s, a = k.split("/", 1)
            out.setdefault(s, {})[a] = z[k]
    return out


def via_fresh_worker(src: Path, tmp: Path) -> dict:
    out = tmp / "fresh.npz"
    code = "import sys; from benchmarks.bench_pickle_isolation import worker_main; worker_main(sys.argv[1], sys.argv[2])"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, cwd=REPO, env=env)
    return read_flat(str(out))


def via_forkserver(ctx, src: Path, tmp: Path) -> dict:
    out = tmp / "fork.npz"
    p = ctx.Process(target=worker_main, args=(str(src), str(out)))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"worker exited {p.exitcode}")
    return read_flat(str(out))


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=950, help="3D frames per sequence (950 -> ~50 MB file)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pickle_isolation_") as tmp:
        measure(Path(tmp), args.frames, args.repeats)


def measure(tmp: Path, frames: int, repeats: int) -> None:
    """Write a VideoPose3D-style file of ``frames`` frames a sequence under ``tmp``, time the loads, print."""
    from pipelines.synthetic.h36m import write_h36m_files

    files = write_h36m_files(tmp / "vp3d", actions=ACTIONS, frames=frames)
    src = files["3d"]
    size_mb = src.stat().st_size / 2**20
    import zipfile

    def pickle_body(path, key):  # the pickle stream after the .npy header
        import io

        with zipfile.ZipFile(path) as zf:
            fh = io.BytesIO(zf.read(f"{key}.npy"))
        np.lib.format.read_array_header_1_0(fh) if np.lib.format.read_magic(fh) == (1, 0) else \
            np.lib.format.read_array_header_2_0(fh)
        return fh.read()

    body = pickle_body(src, "positions_3d")
    t0 = time.perf_counter()
    ops = prescan_pickle(body, src)
    prescan_s = time.perf_counter() - t0
    ops_2d = prescan_pickle(pickle_body(files["cpn"], "positions_2d"), files["cpn"])

    ref = load_positions_3d(src)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["pipelines.h36m", "numpy"])
    got_fresh, got_fork = via_fresh_worker(src, tmp), via_forkserver(ctx, src, tmp)
    same = all(np.array_equal(ref[s][a], g[s][a]) for g in (got_fresh, got_fork) for s in ref for a in ref[s])

    inproc = best(lambda: load_positions_3d(src), repeats)
    fresh = best(lambda: via_fresh_worker(src, tmp), repeats)
    fork = best(lambda: via_forkserver(ctx, src, tmp), repeats)
    n_seq = sum(len(v) for v in ref.values())
    print(f"3D file {size_mb:.1f} MB, {n_seq} sequences, {ops} opcodes (2D CPN file: {ops_2d}); prescan {prescan_s * 1e3:.1f} ms")
    print(f"in-process      {inproc:7.3f} s")
    print(f"fresh worker    {fresh:7.3f} s  (x{fresh / inproc:.1f}, +{fresh - inproc:.3f} s a file)")
    print(f"forkserver      {fork:7.3f} s  (x{fork / inproc:.1f}, +{fork - inproc:.3f} s a file)")
    print(json.dumps({"file_mb": round(size_mb, 1), "sequences": n_seq, "opcodes_3d": ops, "opcodes_2d_cpn": ops_2d,
                      "prescan_s": round(prescan_s, 4), "inprocess_s": round(inproc, 3),
                      "worker_fresh_s": round(fresh, 3), "worker_forkserver_s": round(fork, 3),
                      "fresh_ratio": round(fresh / inproc, 2), "forkserver_ratio": round(fork / inproc, 2),
                      "identical": bool(same)}))


if __name__ == "__main__":
    main()
