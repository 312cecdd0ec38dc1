"""``mocap-corpus``: a thin typer layer over the same functions the Prefect flows call.

Errors from bad inputs print one line and exit 1; long work shows progress.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from schemas.errors import MocapCorpusError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Motion-capture archives -> versioned 2D/3D pose corpora, and the uplifting trainer.")
synth = typer.Typer(no_args_is_help=True, help="Write synthetic stand-ins in the real file formats.")
app.add_typer(synth, name="synth")
console = Console(stderr=True)
out = Console(soft_wrap=True)  # paths and ids stay on one line


def one_line_errors(fn):
    """Turn the project's typed errors into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MocapCorpusError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)

    return wrapper


def _table(title: str, rows, columns=("field", "value"), keep: tuple[str, ...] = ("id",)) -> Table:
    """A rich table; the ``keep`` columns (ids, paths) are never cut short, the others wrap."""
    table = Table(title=title, show_header=True)
    for c in columns:
        table.add_column(c, no_wrap=c in keep, overflow="fold")
    for row in rows:
        table.add_row(*[str(x) for x in row])
    return table


# --- synthetic data ---------------------------------------------------------------------------


@synth.command("body-model")
@one_line_errors
def synth_body_model(out_dir: Path, seed: int = typer.Option(0, help="random seed")):
    """Write the procedural SMPL+H-format body model, DMPLs and H36M regressor in the AMASS layout."""
    from pipelines.synthetic.body_model import write_body_model_tree

    paths = write_body_model_tree(out_dir, seed=seed)
    for name, p in paths.items():
        out.print(f"{name}: {p}")


@synth.command("amass")
@one_line_errors
def synth_amass(out_dir: Path, sequences: int = typer.Option(24, help="number of sequences"),
                seed: int = typer.Option(0, help="random seed")):
    """Write an AMASS-like tree of SMPL+H / SMPL-X motion files."""
    from pipelines.synthetic.motions import write_amass_tree

    paths = write_amass_tree(out_dir, n_sequences=sequences, seed=seed)
    out.print(f"wrote {len(paths)} files under {out_dir}")


@synth.command("h36m")
@one_line_errors
def synth_h36m(out_dir: Path, seed: int = typer.Option(0, help="random seed")):
    """Write VideoPose3D-format data_3d_h36m.npz and CPN / GT 2D files."""
    from pipelines.synthetic.h36m import write_h36m_files

    for name, p in write_h36m_files(out_dir, seed=seed).items():
        out.print(f"{name}: {p}")


# --- single files -----------------------------------------------------------------------------


@app.command()
@one_line_errors
def inspect(file: Path):
    """Print an AMASS file's parsed metadata as JSON (or the typed error)."""
    from pipelines.amass import inspect_amass

    out.print_json(json.dumps(inspect_amass(file), default=str))


@app.command()
@one_line_errors
def joints(file: Path, body_models: Path = typer.Option(..., "--body-models", help="body-model folder"),
           regressor: Optional[Path] = typer.Option(None, help="(N, 6890) regressor; default DIR/J_regressor_h36m.npy"),
           fps: float = typer.Option(50.0, help="target frame rate"),
           out_file: Path = typer.Option(..., "--out", help="output .npy, (T', N, 3) float32 metres")):
    """Regress the joints of one AMASS file (mesh-free, exact) and write them as .npy."""
    import numpy as np

    from pipelines.amass import read_amass
    from pipelines.build import REGRESSOR_FILE, sequence_joints

    seq = read_amass(file)
    result = sequence_joints(seq, body_models, regressor or body_models / REGRESSOR_FILE, fps)
    np.save(out_file, result)
    out.print(f"{out_file}: {result.shape[0]} frames x {result.shape[1]} joints at {fps:g} Hz "
              f"(from {seq.n_frames} frames at {seq.fps:g} Hz)")


# --- corpus builds ----------------------------------------------------------------------------


@app.command("build-amass")
@one_line_errors
def build_amass_cmd(amass_root: Path,
                    body_models: Path = typer.Option(..., "--body-models"),
                    regressor: Optional[Path] = typer.Option(None),
                    corpus: Path = typer.Option(..., "--corpus"),
                    tag: Optional[str] = typer.Option(None),
                    rig: str = typer.Option("h36m", help="h36m | 3dhp"),
                    calibration: Optional[Path] = typer.Option(
                        None, help="MPI-INF-3DHP camera.calibration (rig 3dhp): use its cameras"),
                    cameras_per_sequence: int = typer.Option(4),
                    fps: float = typer.Option(50.0),
                    seed: int = typer.Option(0),
                    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address"),
                    workers: int = typer.Option(2, help="LocalCluster workers when no scheduler is given")):
    """Build (or incrementally rebuild) an AMASS corpus version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pipelines.build import BuildConfig, build_amass

    cfg = BuildConfig(amass_root=amass_root, body_models=body_models, regressor=regressor, corpus=corpus,
                      tag=tag, rig=rig, calibration=calibration, cameras_per_sequence=cameras_per_sequence,
                      fps=fps, seed=seed,
                      scheduler=scheduler, n_workers=workers)
    with Progress(TextColumn("sequences"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[rate]}"), console=console, transient=True) as bar:
        task = bar.add_task("build", total=None, rate="")

        def progress(done, total, info):
            bar.update(task, completed=done, total=total, rate=f"{info['source_fps']:.0f} src frames/s")

        report = build_amass(cfg, progress=progress)
    out.print(_table("build-amass", report.summary_rows()))
    _print_rejects(report.rejects)


@app.command("build-h36m")
@one_line_errors
def build_h36m_cmd(data_dir: Path, corpus: Path = typer.Option(..., "--corpus"),
                   detections: str = typer.Option("cpn", help="cpn | gt"),
                   tag: Optional[str] = typer.Option(None)):
    """Import VideoPose3D-format Human3.6M 3D + CPN (or GT) 2D files as a corpus version."""
    from pipelines.h36m import build_h36m

    report = build_h36m(data_dir, corpus, detections=detections, tag=tag)
    rows = report.summary_rows() if hasattr(report, "summary_rows") else list(_as_dict(report).items())
    out.print(_table("build-h36m", rows))
    _print_rejects(getattr(report, "rejects", None) or _as_dict(report).get("rejects", []))


@app.command("export-vp3d")
@one_line_errors
def export_vp3d_cmd(corpus: Path, version: Optional[str] = typer.Option(None),
                    out_dir: Path = typer.Option(..., "--out"),
                    split: Optional[str] = typer.Option(None, help="only this split (train | val | test)"),
                    name: str = typer.Option("h36m", help="file name stem: data_3d_<name>.npz"),
                    layout: str = typer.Option("h36m17", help="h36m17 | h36m32 (dropped joints padded)")):
    """Export a corpus version as VideoPose3D-style data_3d_*.npz / data_2d_*.npz files."""
    from pipelines.h36m import export_vp3d

    subset = {"split": split} if split else None
    for key, p in export_vp3d(corpus, out_dir, version=version, subset=subset, name=name, layout=layout).items():
        out.print(f"{key}: {p}")


# --- versions ---------------------------------------------------------------------------------


@app.command()
@one_line_errors
def versions(corpus: Path):
    """List the versions of a corpus (newest first)."""
    from pipelines.versions import list_versions

    rows = [(v.id, ",".join(v.tags), v.time.strftime("%Y-%m-%d %H:%M:%S"), v.n_sequences, v.n_frames,
             v.n_views, "" if v.store_bytes is None else f"{v.store_bytes / 1e6:.1f} MB", v.message)
            for v in list_versions(corpus)]
    out.print(_table(str(corpus), rows, ("id", "tags", "time (UTC)", "sequences", "frames", "views", "size", "message")))


@app.command()
@one_line_errors
def validate(corpus: Path, version: Optional[str] = typer.Option(None)):
    """Check a corpus version's arrays against its manifests."""
    from schemas.validate import validate_corpus

    problems = validate_corpus(corpus, version)
    if problems:
        for p in problems:
            console.print(f"[red]problem:[/red] {p}", highlight=False)
        raise typer.Exit(1)
    out.print(f"{corpus}@{version or 'main'}: valid")


@app.command()
@one_line_errors
def rejects(corpus: Path, version: Optional[str] = typer.Option(None)):
    """List the source files a build rejected, with reasons."""
    from pipelines.corpus import CorpusReader
    from pipelines.records import Reject

    reader = CorpusReader.open(corpus, version)
    _print_rejects([Reject(r["source_path"], r["reason"], r["kind"]) for r in reader.rejects.to_pylist()],
                   always=True)


@app.command()
@one_line_errors
def gc(corpus: Path,
       grace_s: float = typer.Option(3600.0, "--grace", help="keep objects younger than this many seconds "
                                     "(a running build's uncommitted data); 0 only when no build runs"),
       expire_days: Optional[float] = typer.Option(None, "--expire-untagged-older-than", help="first drop "
                                                   "UNTAGGED versions older than this many days from branch history"),
       dry_run: bool = typer.Option(False, "--dry-run", help="report what would be deleted, delete nothing")):
    """Reclaim disk space left by killed or aborted builds (Icechunk garbage collection).

    Never touches a tagged version or one a branch's history reaches (unless --expire-untagged-older-than).
    """
    from datetime import datetime, timedelta, timezone

    from pipelines.versions import collect_garbage

    older = None if expire_days is None else datetime.now(timezone.utc) - timedelta(days=expire_days)
    r = collect_garbage(corpus, grace_s=grace_s, expire_older_than=older, dry_run=dry_run)
    rows = [("bytes on disk before", f"{r.bytes_before:,}"), ("bytes on disk after", f"{r.bytes_after:,}"),
            ("bytes deleted" + (" (dry run: would be)" if dry_run else ""), f"{r.bytes_deleted:,}"),
            ("chunks / manifests / snapshots deleted", f"{r.chunks_deleted} / {r.manifests_deleted} / {r.snapshots_deleted}"),
            ("versions expired from history", r.expired_snapshots)]
    out.print(_table(f"gc {corpus}", rows))


@app.command()
@one_line_errors
def diff(corpus: Path, v1: str, v2: str):
    """Sequences added, removed and changed between two versions."""
    from pipelines.versions import diff_versions

    d = diff_versions(corpus, v1, v2)
    for label, keys in (("added", d.added), ("removed", d.removed), ("changed", d.changed)):
        out.print(f"{label} ({len(keys)}):")
        for k in keys:
            out.print(f"  {k}")
    out.print(f"unchanged: {d.unchanged}")


@app.command()
@one_line_errors
def tag(corpus: Path, version: str, name: str):
    """Tag a version (tags are immutable)."""
    from pipelines.versions import tag_version

    tag_version(corpus, version, name)
    out.print(f"tagged {version} as {name}")


# --- training ---------------------------------------------------------------------------------


@app.command()
@one_line_errors
def train(config: str = typer.Option(..., "--config", help="preset name or config file"),
          corpus: list[str] = typer.Option(..., "--corpus", help="PATH@VERSION (repeatable)"),
          init: Optional[Path] = typer.Option(None, "--init", help="checkpoint to start from (fine-tuning)"),
          out_dir: Path = typer.Option(..., "--out", help="run directory")):
    """Pre-train or fine-tune the Uplift-Upsample Transformer on pinned corpus versions."""
    from uplift.train import load_run_config, train as run_train

    result = run_train(load_run_config(config), out_dir, corpus, init=init)
    last = result.history[-1] if result.history else {}
    rows = [("run dir", result.run_dir), ("checkpoint", result.checkpoint), ("corpora", ", ".join(result.corpora))]
    rows += [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in last.items()]
    out.print(_table("train", rows))


@app.command()
@one_line_errors
def evaluate(checkpoint: Path, corpus: str = typer.Option(..., "--corpus", help="PATH@VERSION"),
             split: str = typer.Option("test", help="split to evaluate")):
    """Evaluate a checkpoint on a corpus version (MPJPE / P-MPJPE per action, key vs all frames)."""
    from uplift.evaluate import evaluate as run_eval

    rows = run_eval(checkpoint, corpus, split=split)
    header = list(dict.fromkeys(k for r in rows for k in r))
    out.print(_table(f"evaluate {checkpoint.name} on {corpus}",
                     [[f"{r.get(h):.2f}" if isinstance(r.get(h), float) else r.get(h, "") for h in header] for r in rows],
                     header))


# --- helpers ----------------------------------------------------------------------------------


def _as_dict(obj) -> dict:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return asdict(obj)
    return dict(obj) if isinstance(obj, dict) else {"result": obj}


def _print_rejects(rejects, always: bool = False) -> None:
    """One block per rejected file: its full path, then the kind and reason (paths never cut)."""
    rejects = list(rejects or [])
    if not rejects and not always:
        return
    out.print(f"rejects ({len(rejects)}):")
    for r in rejects:
        get = (lambda k: getattr(r, k, "")) if not isinstance(r, dict) else r.get
        out.print(f"  {get('source_path')}\n    [{get('kind')}] {get('reason')}", highlight=False, markup=False)


def main():  # pragma: no cover - console entry
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
