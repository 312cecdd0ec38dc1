"""Model commands: ``train`` (pre-train / fine-tune), ``evaluate`` and ``infer`` (2D file -> 3D poses)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from flows.cli.output import at_least, corpus_spec, one_line_errors, out, positive, table
from flows.cli.root import app
from flows.progress import bar


@app.command()
@one_line_errors
def infer(checkpoint: Path = typer.Argument(..., help="checkpoint dir or run dir"),
          input_file: Path = typer.Argument(..., metavar="INPUT",
                                            help="VideoPose3D 2D .npz, or a (T, 17, 2) .npy in pixels"),
          out_file: Path = typer.Option(..., "--out", help="output .npy: (T, 17, 3) root-relative metres"),
          s_in: Optional[int] = typer.Option(None, "--s-in", help="2D every s_in-th frame "
                                             "(default: the checkpoint's largest training stride)"),
          subject: Optional[str] = typer.Option(None, help=".npz input: subject, e.g. S9"),
          action: Optional[str] = typer.Option(None, help=".npz input: action, e.g. 'Walking 1'"),
          camera: Optional[str] = typer.Option(None, help=".npz input: camera index 0..3 or H36M id"),
          width: Optional[float] = typer.Option(None, help="image width in pixels (.npy input)", callback=positive),
          height: Optional[float] = typer.Option(None, help="image height in pixels (.npy input)", callback=positive),
          render: Optional[Path] = typer.Option(None, "--render", help="also draw it: .png / .gif / .mp4"),
          fps: Optional[float] = typer.Option(None, "--fps", callback=positive, help="the video's frame rate, for --render to play in "
                                              "real time (default 50, Human3.6M's)")):
    """Uplift 2D keypoints of a video to 3D poses with a trained checkpoint."""
    from flows.inference import infer_to_file

    with bar("frames/s") as tick:
        result = infer_to_file(checkpoint, input_file, out_file, s_in=s_in, subject=subject, action=action,
                               camera=camera, width=width, height=height, render=render, fps=fps,
                               progress=lambda done, total: tick(done, total, f"drawing {render}"))
    out.print(f"{out_file}: {result['frames']} frames x 17 joints x 3 (root-relative metres), s_in {result['s_in']}",
              highlight=False)
    if render:
        out.print(f"wrote {render}", highlight=False)


@app.command()
@one_line_errors
def train(config: str = typer.Option(..., "--config", help="preset name or config file"),
          corpus: list[str] = typer.Option(..., "--corpus", help="PATH@VERSION (repeatable)"),
          init: Optional[Path] = typer.Option(None, "--init", help="checkpoint to start from (fine-tuning)"),
          out_dir: Path = typer.Option(..., "--out", help="run directory"),
          nproc: int = typer.Option(1, "--nproc", callback=at_least(1), help="data-parallel processes on this machine (torch elastic "
                                                        "launcher; one per GPU, gloo on CPU)")):
    """Pre-train or fine-tune the Uplift-Upsample Transformer on pinned corpus versions.

    Corpora may live on S3 (``s3://bucket/prefix@VERSION``). With ``--nproc N`` the global batch is
    split over N processes (same samples as one process); under ``torchrun`` this joins its process group.
    """
    from uplift.distributed import teardown
    from uplift.launch import launch_train
    from uplift.run_config import load_run_config

    corpus = [corpus_spec(c) for c in corpus]
    with bar("steps/s") as tick, bar("windows/s") as eval_tick:
        def progress(done, total, info):
            if info.get("phase") == "evaluate":  # the per-epoch evaluation: windows, per input stride
                eval_tick(done, total, f"epoch {info['epoch']}/{info['epochs']} evaluation, s_in {info['s_in']}")
            else:
                tick(done, total, f"epoch {info['epoch']}/{info['epochs']}", f"loss {info['loss']:.4f}")

        extra = {"progress": progress} if nproc == 1 else {}  # a closure does not cross process boundaries
        try:
            result = launch_train(nproc, load_run_config(config), out_dir, corpus, init=init, **extra)
        finally:
            teardown()  # only does something when torchrun started this process
    if result is None or int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    out.print(table("train", train_summary_rows(result)))


def train_summary_rows(result) -> list[tuple[str, object]]:
    """What ``train`` prints: where the run is, the exact corpus versions it read (``PATH@SNAPSHOT``), and
    its last epoch's figures, each named with its unit (``steps`` are optimizer steps in that epoch)."""
    rows = [("run dir", result.run_dir), ("checkpoint", result.checkpoint)]
    train_specs, eval_specs = result.corpora.get("train", []), result.corpora.get("eval", [])
    rows.append(("train corpora", ", ".join(train_specs)))
    if eval_specs != train_specs:
        rows.append(("eval corpora", ", ".join(eval_specs)))
    last = dict(result.history[-1]) if result.history else {}
    if last:
        epoch = last.pop("epoch", None)
        rows.append(("epochs done", epoch))
        names = {"steps": f"optimizer steps in epoch {epoch}", "seconds": f"seconds in epoch {epoch}",
                 "loss": "loss (m, epoch mean)", "loss_seq": "loss_seq (m)", "loss_center": "loss_center (m)"}
        rows += [(names.get(k, k), f"{v:.4g}" if isinstance(v, float) else v) for k, v in last.items()]
    return rows


@app.command()
@one_line_errors
def evaluate(checkpoint: Path, corpus: str = typer.Option(..., "--corpus", help="PATH@VERSION (PATH may be s3://bucket/prefix)"),
             split: str = typer.Option("test", help="split to evaluate"),
             render: Optional[Path] = typer.Option(None, "--render", help="folder: draw the prediction over the "
                                                   "ground truth for the median and the worst window (PNG)")):
    """Evaluate a checkpoint on a corpus version (MPJPE / P-MPJPE per action, key vs all frames)."""
    from flows.artifacts import table_rows
    from uplift.evaluate import evaluate as run_eval

    with bar("windows/s") as tick:
        rows = run_eval(checkpoint, corpus_spec(corpus), split=split,
                        progress=lambda done, total, info: tick(done, total, f"s_in {info['s_in']}", ""))
    header, cells = table_rows(rows)
    out.print(table(f"evaluate {checkpoint.name} on {corpus}", cells, header))
    if render is not None:
        from flows.rendering import render_median_and_worst

        for name, info in render_median_and_worst(checkpoint, corpus, render, split=split).items():
            out.print(f"{name} window ({info['mpjpe_mm']:.1f} mm): {info['path']}", highlight=False)
