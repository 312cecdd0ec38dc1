"""``make demo``: the whole pipeline through a real local Prefect server, on synthetic data.

Workspace ``.demo/`` in the repository: synthetic inputs, corpora, run dirs, PREFECT_HOME (SQLite
database, persisted results, logs). Steps: generate the synthetic AMASS-like tree (SMPL+H G mixed with
SMPL-X G and N sequences), body models (SMPL+H, SMPL-X, the deformation transfer), regressor and
H36M/CPN files; start ``prefect server start`` on a free loopback port; serve every deployment;
``prefect deployment run`` build-amass, build-h36m, pretrain, finetune and evaluate; print where things
are; stop every process (also on failure or Ctrl-C). A second run reuses the workspace: the build
commits nothing new and the cached training steps are skipped.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_AMASS_SEQUENCES = 8
# Tiny model, a few hundred steps: enough for the loss and MPJPE curves to move in a demo. The
# published learning rates (4e-5, fine-tuning 2e-5) are for the full model and far longer runs.
PRETRAIN_OVERRIDES = {"epochs": 4, "steps_per_epoch": 60, "lr": 1e-3}
FINETUNE_OVERRIDES = {"epochs": 3, "steps_per_epoch": 40, "lr": 3e-4}


def generate_inputs(ws: Path, seed: int = 0) -> dict[str, Path]:
    """Synthetic stand-ins in the real formats (written once; a marker records completion)."""
    from pipelines.synthetic.body_model import write_body_model_tree
    from pipelines.synthetic.h36m import write_h36m_files
    from pipelines.synthetic.motions import write_amass_tree
    from schemas.files import read_bounded

    data = ws / "data"
    paths = {"amass": data / "amass", "body_models": data / "body_models", "h36m": data / "h36m"}
    marker = data / ".generated"
    if not marker.is_file():
        # SMPL+H and SMPL-X models and the deformation transfer: the AMASS tree mixes SMPL+H G, SMPL-X G and N
        write_body_model_tree(paths["body_models"], seed=seed, smplx=True)
        files = write_amass_tree(paths["amass"], n_sequences=DEMO_AMASS_SEQUENCES, seed=seed,
                                 duration_s=(2.0, 6.0))
        # One broken source shows how a build reports rejects without failing.
        bad = paths["amass"] / "Broken" / "s1" / "truncated_poses.npz"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(read_bounded(files[0], "amass").data[:256])
        write_h36m_files(paths["h36m"], seed=seed)
        marker.write_text("ok\n")
    return paths


def run_deployment_cli(env: dict, deployment: str, params: dict, timeout_s: int = 480, verbose: bool = False) -> str:
    """``prefect deployment run DEPLOYMENT -p k=v ... --watch``; returns the flow run id.

    Quiet by default: one line when the run ends (its state and time); on failure the last lines of the
    watched output. ``verbose`` streams everything ``--watch`` prints (state changes, logs, events)."""
    from flows.server import prefect_exe

    cmd = [prefect_exe(), "deployment", "run", deployment, "--watch", "--watch-timeout", str(timeout_s)]
    for k, v in params.items():
        cmd += ["-p", f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"]
    if verbose:
        print(f"\n$ prefect deployment run {deployment} " + " ".join(f"-p {k}=..." for k in params) + " --watch",
              flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        if verbose:
            sys.stdout.write("  " + line)
    rc = proc.wait()
    text = "".join(out)
    m = re.search(r"UUID: ([0-9a-f-]{36})", text)
    run_id = m.group(1) if m else ""
    if rc != 0:
        if not verbose:
            sys.stdout.write("".join("  " + ln for ln in out[-20:]))
        raise RuntimeError(f"{deployment} did not complete (exit {rc})")
    print(f"{deployment:18s} completed in {time.monotonic() - t0:5.1f} s   flow run {run_id}", flush=True)
    return run_id


def summary(ws: Path, stack, timings: dict) -> str:
    from schemas.versions import list_versions

    lines = ["", "=" * 72, "mocap-corpus demo: done", "=" * 72]
    for name in ("amass", "h36m"):
        corpus = ws / "corpora" / name
        try:
            vs = list_versions(corpus)
            head = vs[0]
            lines.append(f"corpus {name:6s} {corpus}  ({len(vs)} versions; newest {head.id} tags={head.tags}, "
                         f"{head.n_sequences} sequences, {head.n_frames} frames, {head.n_views} views)")
        except Exception as exc:  # the summary must not hide the runs that did work
            lines.append(f"corpus {name}: {corpus} ({exc})")
    for name in ("pretrain", "finetune"):
        run = ws / "runs" / name
        plots = sorted(str(p.relative_to(ws)) for p in run.rglob("*.png")) if run.exists() else []
        lines.append(f"run    {name:9s} {run}  plots: {', '.join(plots) or 'none'}")
    lines.append(f"Prefect: PREFECT_HOME={stack.home}; server logs {stack.log_dir}")
    lines.append(f"         the UI ran at {stack.ui_url}; browse these runs again with:")
    lines.append(f"         .venv/bin/python -m flows up --home {stack.home}")
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return "\n".join(lines)


def main(workspace: Path | None = None, verbose: bool = False) -> int:
    """The demo; ``verbose`` also streams every deployment's ``--watch`` output (``-v``)."""
    from flows.server import LocalStack, free_port, new_tag, tagged_processes
    from schemas.versions import tag_exists

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    ws = (workspace or REPO / ".demo").resolve()
    ws.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    timings: dict[str, float] = {}
    stack = LocalStack(home=ws / "prefect", port=free_port(), tag=new_tag(), ui=True, log_dir=ws / "logs")

    def _term(*_):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    ok = False
    try:
        t0 = time.monotonic()
        inputs = generate_inputs(ws)
        timings["synthetic data"] = time.monotonic() - t0
        timings["server start"] = stack.start_server()
        timings["serve start"] = stack.start_serve(cwd=REPO)
        print(f"Prefect UI: {stack.ui_url}   (API {stack.api_url})", flush=True)
        env = stack.env()
        corpora, runs = ws / "corpora", ws / "runs"
        steps = [
            ("build-amass/local", {"config": {"amass_root": str(inputs["amass"]), "body_models": str(inputs["body_models"]),
                                              "corpus": str(corpora / "amass"), "tag": "demo-amass", "n_workers": 2}}),
            ("build-h36m/local", {"config": {"data_dir": str(inputs["h36m"]), "corpus": str(corpora / "h36m"),
                                             "detections": "cpn", "tag": "demo-h36m-cpn"}}),
            ("pretrain/local", {"corpus": [f"{corpora / 'amass'}@demo-amass"], "out_dir": runs / "pretrain",
                                "config": "tiny", "overrides": PRETRAIN_OVERRIDES}),
            ("finetune/local", {"corpus": [f"{corpora / 'h36m'}@demo-h36m-cpn"], "init": runs / "pretrain",
                                "out_dir": runs / "finetune", "config": "tiny", "overrides": FINETUNE_OVERRIDES}),
            ("evaluate/local", {"checkpoint": runs / "finetune", "corpus": f"{corpora / 'h36m'}@demo-h36m-cpn"}),
        ]
        for deployment, params in steps:
            if deployment == "build-h36m/local" and tag_exists(corpora / "h36m", "demo-h36m-cpn"):
                # Tags are immutable and an import always commits: a second demo keeps the first import.
                print(f"\n{deployment}: {corpora / 'h36m'}@demo-h36m-cpn exists, skipped", flush=True)
                continue
            t0 = time.monotonic()
            run_deployment_cli(env, deployment, {k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
                               verbose=verbose)
            timings[deployment.split("/")[0]] = time.monotonic() - t0
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except Exception as exc:
        print(f"\ndemo failed: {exc}\n(see logs in {stack.log_dir})", file=sys.stderr)
    finally:
        t0 = time.monotonic()
        forced = stack.stop()
        left = tagged_processes(stack.tag)
        timings["shutdown"] = time.monotonic() - t0
        signal.signal(signal.SIGTERM, old)
        if forced:
            print(f"force-killed {len(forced)} processes", file=sys.stderr)
        if left:
            print(f"processes still alive: {[p.pid for p in left]}", file=sys.stderr)
            ok = False
    timings["total"] = time.monotonic() - t_all
    if ok:
        print(summary(ws, stack, timings), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(verbose=any(a in ("-v", "--verbose") for a in sys.argv[1:])))
