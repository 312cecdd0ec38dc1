"""``mocap-corpus``: a thin typer layer over the same functions the Prefect flows call.

Errors from bad inputs print one line and exit 1; long work shows progress.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
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


# Errors a user can cause with a bad path, value or file: one line, exit 1 (a traceback only with -v).
_EXPECTED_ERRORS = (MocapCorpusError, OSError, ValueError, KeyError)
_VERBOSE = {"on": False}


def _error_line(exc: BaseException) -> str:
    """One line: the message (KeyError's quotes dropped), newlines folded."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = " ".join(str(msg).split()) or type(exc).__name__
    return text if isinstance(exc, MocapCorpusError) else f"{text} ({type(exc).__name__})"


def one_line_errors(fn):
    """Turn the project's typed errors (and bad paths / values) into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _EXPECTED_ERRORS as exc:
            if _VERBOSE["on"] and not isinstance(exc, MocapCorpusError):
                raise
            console.print(f"[red]error:[/red] {_error_line(exc)}", highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(1)

    return wrapper


def corpus_arg(value) -> "Path | str":
    """Every corpus argument goes through here: a local folder (Path) or ``s3://bucket/prefix`` (str).

    Typer's ``Path`` would turn ``s3://b/p`` into ``s3:/b/p``, so corpus options are typed ``str``.
    """
    from schemas.storage import parse_location

    return parse_location(value)


CORPUS_HELP = "corpus repository: a local folder or s3://bucket/prefix"


@app.callback()
def _root(verbose: bool = typer.Option(False, "-v", "--verbose",
                                       help="show library logs (Dask, Prefect) and tracebacks"),
          s3_endpoint: Optional[str] = typer.Option(
              None, "--s3-endpoint", envvar="MOCAP_CORPUS_S3_ENDPOINT",
              help="S3-compatible endpoint URL for s3:// corpora (MinIO, Ceph...); default: AWS")):
    """Motion-capture archives -> versioned 2D/3D pose corpora, and the uplifting trainer."""
    from schemas.storage import S3_ENDPOINT_ENV

    configure_logging(verbose)
    if s3_endpoint:
        os.environ[S3_ENDPOINT_ENV] = s3_endpoint  # read by schemas.storage (and inherited by children)


def configure_logging(verbose: bool) -> None:
    """Quiet by default: WARNING for us and the libraries (Dask's INFO chatter hidden); INFO with -v.

    Dask reads its logging levels from config when ``distributed`` is first imported (also in its
    worker processes), so the environment variable is set as well as the in-process levels.
    """
    _VERBOSE["on"] = verbose
    level = logging.INFO if verbose else logging.WARNING
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "info" if verbose else "warning"
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger().setLevel(level)  # quiet leaves the root alone: WARNING unless configured
    for name in ("distributed", "dask", "prefect", "httpx", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(level)


def _table(title: str, rows, columns=("field", "value"), keep: tuple[str, ...] = ("id",)) -> Table:
    """A rich table; the ``keep`` columns (ids, paths) are never cut short, the others wrap."""
    table = Table(title=title, show_header=True)
    for c in columns:
        table.add_column(c, no_wrap=c in keep, overflow="fold")
    for row in rows:
        table.add_row(*[str(x) for x in row])
    return table


_ORDER_HELP = ("auto: check the regressor's left/right rows on the body model's template and swap "
               "mismatched pairs (reported); as-is: trust the file's row order")


def _check_order(order: str) -> None:
    from pipelines.body_model import REGRESSOR_ORDERS
    from schemas.errors import ConfigError

    if order not in REGRESSOR_ORDERS:
        raise ConfigError(f"--regressor-order must be one of {', '.join(REGRESSOR_ORDERS)}, got {order!r}")


# --- synthetic data ---------------------------------------------------------------------------


@synth.command("body-model")
@one_line_errors
def synth_body_model(out_dir: Path, seed: int = typer.Option(0, help="random seed")):
    """Write the procedural SMPL+H-format body model, DMPLs and H36M regressor in the AMASS layout.

    The regressor's rows follow SPIN's J_regressor_h36m.npy (left leg in rows 1-3), like the real file."""
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
           out_file: Path = typer.Option(..., "--out", help="output .npy, (T', N, 3) float32 metres"),
           regressor_order: str = typer.Option("auto", "--regressor-order", help=_ORDER_HELP)):
    """Regress the joints of one AMASS file (mesh-free, exact) and write them as .npy."""
    import numpy as np

    from pipelines.amass import read_amass
    from pipelines.build import REGRESSOR_FILE, resolved_regressor, sequence_joints

    _check_order(regressor_order)
    reg_path = regressor or body_models / REGRESSOR_FILE
    _, order = resolved_regressor(str(reg_path), str(body_models), regressor_order)
    out.print(f"{reg_path}: {order.message}", highlight=False)
    seq = read_amass(file)
    notes: list[str] = []
    result = sequence_joints(seq, body_models, reg_path, fps, regressor_order, notes)
    for note in notes:
        out.print(f"note: {note}", highlight=False)
    np.save(out_file, result)
    out.print(f"{out_file}: {result.shape[0]} frames x {result.shape[1]} joints at {fps:g} Hz "
              f"(from {seq.n_frames} frames at {seq.fps:g} Hz)")


# --- corpus builds ----------------------------------------------------------------------------


@app.command("build-amass")
@one_line_errors
def build_amass_cmd(amass_root: Path,
                    body_models: Path = typer.Option(..., "--body-models"),
                    regressor: Optional[Path] = typer.Option(None),
                    corpus: str = typer.Option(..., "--corpus", help=CORPUS_HELP),
                    tag: Optional[str] = typer.Option(None),
                    rig: str = typer.Option("h36m", help="h36m | 3dhp"),
                    calibration: Optional[Path] = typer.Option(
                        None, help="MPI-INF-3DHP camera.calibration (rig 3dhp): use its cameras"),
                    cameras_per_sequence: int = typer.Option(4),
                    fps: float = typer.Option(50.0),
                    seed: int = typer.Option(0),
                    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address"),
                    workers: int = typer.Option(2, help="LocalCluster workers when no scheduler is given"),
                    regressor_order: str = typer.Option("auto", "--regressor-order", help=_ORDER_HELP)):
    """Build (or incrementally rebuild) an AMASS corpus version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pipelines.build import BuildConfig, build_amass

    _check_order(regressor_order)
    cfg = BuildConfig(amass_root=amass_root, body_models=body_models, regressor=regressor, corpus=corpus_arg(corpus),
                      tag=tag, rig=rig, calibration=calibration, cameras_per_sequence=cameras_per_sequence,
                      fps=fps, seed=seed, scheduler=scheduler, n_workers=workers, regressor_order=regressor_order)
    from rich.progress import TimeElapsedColumn

    with Progress(TextColumn("sequences"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[rate]}"), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("build", total=None, rate="")

        def progress(done, total, info):
            bar.update(task, completed=done, total=total, rate=f"{info['source_fps']:.0f} src frames/s")

        report = build_amass(cfg, progress=progress)
    out.print(_table("build-amass", report.summary_rows()))
    if report.regressor_order:
        out.print(f"regressor: {report.regressor_order.get('message', '')}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    _print_rejects(report.rejects)


@app.command("build-h36m")
@one_line_errors
def build_h36m_cmd(data_dir: Path, corpus: str = typer.Option(..., "--corpus", help=CORPUS_HELP),
                   detections: str = typer.Option("cpn", help="cpn | gt"),
                   tag: Optional[str] = typer.Option(None)):
    """Import VideoPose3D-format Human3.6M 3D + CPN (or GT) 2D files as a corpus version."""
    from pipelines.h36m import build_h36m

    report = build_h36m(data_dir, corpus_arg(corpus), detections=detections, tag=tag)
    rows = report.summary_rows() if hasattr(report, "summary_rows") else list(_as_dict(report).items())
    out.print(_table("build-h36m", rows))
    _print_rejects(getattr(report, "rejects", None) or _as_dict(report).get("rejects", []))


@app.command("export-vp3d")
@one_line_errors
def export_vp3d_cmd(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None),
                    out_dir: Path = typer.Option(..., "--out"),
                    split: Optional[str] = typer.Option(None, help="only this split (train | val | test)"),
                    name: str = typer.Option("h36m", help="file name stem: data_3d_<name>.npz"),
                    joints: int = typer.Option(32, "--joints", help="3D layout: 32 (VideoPose3D's loader; "
                                               "static joints exact or at their parents) | 17")):
    """Export a corpus version as VideoPose3D-style data_3d_*.npz / data_2d_*.npz files."""
    from pipelines.h36m import export_vp3d

    if joints not in (17, 32):
        raise typer.BadParameter(f"--joints must be 17 or 32, got {joints}")
    subset = {"split": split} if split else None
    for key, p in export_vp3d(corpus_arg(corpus), out_dir, version=version, subset=subset, name=name,
                              layout=f"h36m{joints}").items():
        out.print(f"{key}: {p}")


# --- versions ---------------------------------------------------------------------------------


@app.command()
@one_line_errors
def versions(corpus: str = typer.Argument(..., help=CORPUS_HELP),
             as_json: bool = typer.Option(False, "--json", help="one JSON object a line")):
    """List the versions of a corpus (newest first)."""
    from pipelines.versions import list_versions

    vs = list_versions(corpus_arg(corpus))
    if as_json:
        for v in vs:
            _json_line({"id": v.id, "tags": list(v.tags), "time": v.time.isoformat(), "message": v.message,
                        "sequences": v.n_sequences, "frames": v.n_frames, "views": v.n_views,
                        "store_bytes": v.store_bytes})
        return
    import shutil

    width = max(40, min(shutil.get_terminal_size((80, 24)).columns, 120))
    out.print(f"{corpus}: {len(vs)} version{'s' * (len(vs) != 1)}, newest first", highlight=False, markup=False)
    for line in versions_lines(vs, width):
        out.print(line, highlight=False, markup=False)


def versions_lines(vs, width: int = 80) -> list[str]:
    """The version listing as lines that fit ``width`` columns: one line of figures per version (the id
    is never cut), tags after them or on their own line, then the message wrapped and indented. The
    store size is listed only when some version records it (Icechunk 1.1 has no cheap per-snapshot size)."""
    import textwrap

    sized = any(v.store_bytes is not None for v in vs)
    cols = [("id", [v.id for v in vs], "<"), ("time (UTC)", [v.time.strftime("%Y-%m-%d %H:%M") for v in vs], "<"),
            ("seqs", [str(v.n_sequences) for v in vs], ">"), ("frames", [str(v.n_frames) for v in vs], ">"),
            ("views", [str(v.n_views) for v in vs], ">")]
    if sized:
        cols.append(("MB", ["" if v.store_bytes is None else f"{v.store_bytes / 1e6:.1f}" for v in vs], ">"))
    widths = [max([len(h)] + [len(x) for x in vals]) for h, vals, _ in cols]

    def fmt(cells):
        return "  ".join(f"{c:{a}{w}}" for c, w, (_, _, a) in zip(cells, widths, cols))

    lines = [fmt([h for h, _, _ in cols]) + "  tags"]
    for i, v in enumerate(vs):
        head = fmt([vals[i] for _, vals, _ in cols])
        tags = ", ".join(v.tags)
        if tags and len(head) + 2 + len(tags) <= width:
            lines.append(f"{head}  {tags}")
        else:
            lines.append(head)
            if tags:
                lines += textwrap.wrap(f"tags: {tags}", width, initial_indent="  ", subsequent_indent="    ")
        if v.message:
            lines += textwrap.wrap(v.message, width, initial_indent="  ", subsequent_indent="  ")
    return lines


def _json_line(obj: dict) -> None:
    """One JSON object on one stdout line (for scripts: no colour, no wrapping)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


@app.command()
@one_line_errors
def validate(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None)):
    """Check a corpus version's arrays against its manifests."""
    from schemas.validate import validate_corpus

    problems = validate_corpus(corpus_arg(corpus), version)
    if problems:
        for p in problems:
            console.print(f"[red]problem:[/red] {p}", highlight=False)
        raise typer.Exit(1)
    out.print(f"{corpus}@{version or 'main'}: valid")


@app.command()
@one_line_errors
def rejects(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None),
            as_json: bool = typer.Option(False, "--json", help="one JSON object a line")):
    """List the source files a build rejected, with reasons."""
    from schemas.reader import CorpusReader
    from schemas.records import Reject

    reader = CorpusReader.open(corpus_arg(corpus), version)
    if as_json:
        for r in reader.rejects.to_pylist():
            _json_line({"source_path": r["source_path"], "kind": r["kind"], "reason": r["reason"],
                        "source_sha256": r.get("source_sha256")})
        return
    _print_rejects([Reject(r["source_path"], r["reason"], r["kind"]) for r in reader.rejects.to_pylist()],
                   always=True)


@app.command()
@one_line_errors
def gc(corpus: str = typer.Argument(..., help=CORPUS_HELP),
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
    r = collect_garbage(corpus_arg(corpus), grace_s=grace_s, expire_older_than=older, dry_run=dry_run)
    size = lambda b: "n/a (object storage)" if b is None else f"{b:,}"  # noqa: E731
    rows = [("bytes on disk before", size(r.bytes_before)), ("bytes on disk after", size(r.bytes_after)),
            ("bytes deleted" + (" (dry run: would be)" if dry_run else ""), f"{r.bytes_deleted:,}"),
            ("chunks / manifests / snapshots deleted", f"{r.chunks_deleted} / {r.manifests_deleted} / {r.snapshots_deleted}"),
            ("versions expired from history", r.expired_snapshots)]
    out.print(_table(f"gc {corpus}", rows))


@app.command()
@one_line_errors
def diff(corpus: str = typer.Argument(..., help=CORPUS_HELP), v1: str = typer.Argument(...),
         v2: str = typer.Argument(...)):
    """Sequences added, removed and changed between two versions."""
    from pipelines.versions import diff_versions

    d = diff_versions(corpus_arg(corpus), v1, v2)
    for label, keys in (("added", d.added), ("removed", d.removed), ("changed", d.changed)):
        out.print(f"{label} ({len(keys)}):")
        for k in keys:
            out.print(f"  {k}")
    out.print(f"unchanged: {d.unchanged}")


@app.command()
@one_line_errors
def tag(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: str = typer.Argument(...),
        name: str = typer.Argument(...)):
    """Tag a version (tags are immutable)."""
    from pipelines.versions import tag_version

    tag_version(corpus_arg(corpus), version, name)
    out.print(f"tagged {version} as {name}")


# --- pictures and inference -------------------------------------------------------------------


@app.command()
@one_line_errors
def show(corpus: str = typer.Argument(..., help="CORPUS@VERSION (or a path: the tip of main)"),
         sequence: Optional[str] = typer.Option(None, "--sequence",
                                                help="sequence key, e.g. h36m/S1/Walking (default: the first)"),
         view: int = typer.Option(0, "--view", help="which of the sequence's views (0-based)"),
         frames: Optional[str] = typer.Option(None, "--frames", help="frame range A:B (default: all)"),
         out_file: Path = typer.Option(..., "--out", help=".png contact sheet, .gif or .mp4")):
    """Draw a sequence: 2D keypoints in the camera's image (out-of-view joints marked) and the 3D skeleton
    from two angles; left side blue, right orange."""
    from schemas.reader import open_corpus
    from pipelines.render import render_sequence

    reader = open_corpus(corpus)
    if sequence is None:
        keys = sorted(reader.sequences.column("key").to_pylist())
        if not keys:
            raise MocapCorpusError(f"{corpus}: this version holds no sequences")
        sequence = keys[0]
        console.print(f"showing {sequence!r} (1 of {len(keys)}; choose with --sequence)", highlight=False)
    path = render_sequence(reader, sequence, out_file, view=view, frames=frames)
    out.print(f"wrote {path}", highlight=False)


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
          width: Optional[float] = typer.Option(None, help="image width in pixels (.npy input)"),
          height: Optional[float] = typer.Option(None, help="image height in pixels (.npy input)"),
          render: Optional[Path] = typer.Option(None, "--render", help="also draw it: .png / .gif / .mp4")):
    """Uplift 2D keypoints of a video to 3D poses with a trained checkpoint."""
    from uplift.infer import infer_to_file

    result = infer_to_file(checkpoint, input_file, out_file, s_in=s_in, subject=subject, action=action,
                           camera=camera, width=width, height=height, render=render)
    out.print(f"{out_file}: {result['frames']} frames x 17 joints x 3 (root-relative metres), s_in {result['s_in']}",
              highlight=False)
    if render:
        out.print(f"wrote {render}", highlight=False)


# --- training ---------------------------------------------------------------------------------


@app.command()
@one_line_errors
def train(config: str = typer.Option(..., "--config", help="preset name or config file"),
          corpus: list[str] = typer.Option(..., "--corpus", help="PATH@VERSION (repeatable)"),
          init: Optional[Path] = typer.Option(None, "--init", help="checkpoint to start from (fine-tuning)"),
          out_dir: Path = typer.Option(..., "--out", help="run directory"),
          nproc: int = typer.Option(1, "--nproc", help="data-parallel processes on this machine (torch elastic "
                                                        "launcher; one per GPU, gloo on CPU)")):
    """Pre-train or fine-tune the Uplift-Upsample Transformer on pinned corpus versions.

    Corpora may live on S3 (``s3://bucket/prefix@VERSION``). With ``--nproc N`` the global batch is
    split over N processes (same samples as one process); under ``torchrun`` this joins its process group.
    """
    from uplift.distributed import launch_train, teardown
    from uplift.train import load_run_config

    corpus = [_corpus_spec(c) for c in corpus]
    with _bar("steps/s") as tick:
        def progress(step, steps, info):
            tick(step, steps, f"epoch {info['epoch']}/{info['epochs']}", f"loss {info['loss']:.4f}")

        extra = {"progress": progress} if nproc == 1 else {}  # a closure does not cross process boundaries
        try:
            result = launch_train(nproc, load_run_config(config), out_dir, corpus, init=init, **extra)
        finally:
            teardown()  # only does something when torchrun started this process
    if result is None or int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    last = result.history[-1] if result.history else {}
    rows = [("run dir", result.run_dir), ("checkpoint", result.checkpoint), ("corpora", ", ".join(result.corpora))]
    rows += [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in last.items()]
    out.print(_table("train", rows))


@app.command()
@one_line_errors
def evaluate(checkpoint: Path, corpus: str = typer.Option(..., "--corpus", help="PATH@VERSION (PATH may be s3://bucket/prefix)"),
             split: str = typer.Option("test", help="split to evaluate"),
             render: Optional[Path] = typer.Option(None, "--render", help="folder: draw the prediction over the "
                                                   "ground truth for the median and the worst window (PNG)")):
    """Evaluate a checkpoint on a corpus version (MPJPE / P-MPJPE per action, key vs all frames)."""
    from uplift.evaluate import evaluate as run_eval

    with _bar("windows/s") as tick:
        rows = run_eval(checkpoint, _corpus_spec(corpus), split=split,
                        progress=lambda done, total, info: tick(done, total, f"s_in {info['s_in']}", ""))
    header = list(dict.fromkeys(k for r in rows for k in r))
    out.print(_table(f"evaluate {checkpoint.name} on {corpus}",
                     [[f"{r.get(h):.2f}" if isinstance(r.get(h), float) else r.get(h, "") for h in header] for r in rows],
                     header))
    if render is not None:
        from uplift.showcase import render_median_and_worst

        for name, info in render_median_and_worst(checkpoint, corpus, render, split=split).items():
            out.print(f"{name} window ({info['mpjpe_mm']:.1f} mm): {info['path']}", highlight=False)


# --- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _bar(unit: str):
    """A transient rich progress bar on stderr: label, bar, done/total, rate in ``unit``, elapsed, ETA.

    Yields ``tick(done, total, label, extra)``; a new label restarts the bar (a new epoch / stride).
    """
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[extra]}"))
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def tick(done, total, label, extra=""):
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total, rate="", extra="")
            t = tasks[label]
            bar.update(t, completed=done, total=total, extra=extra)
            speed = next((x.speed for x in bar.tasks if x.id == t), None)
            bar.update(t, rate=f"{speed:.1f} {unit}" if speed else "")

        yield tick


def _corpus_spec(spec: str) -> str:
    """``PATH[@VERSION]`` with PATH checked by ``corpus_arg`` (a bad URL fails here, in one line)."""
    from schemas.repository import split_path_at_version

    corpus_arg(split_path_at_version(spec)[0])
    return spec


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


def main(argv: list[str] | None = None) -> int:
    """Console entry: run the command; usage errors are one line on stderr with exit code 2.

    ``-v`` / ``--verbose`` may stand anywhere on the line (it is moved before the command).
    """
    try:  # typer >= 0.20 vendors click; its exceptions live there
        from typer import _click as click
    except ImportError:  # pragma: no cover
        import click

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = [a for a in args if a in ("-v", "--verbose")]
    args = verbose[:1] + [a for a in args if a not in ("-v", "--verbose")]
    configure_logging(bool(verbose))  # before any command imports distributed
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="mocap-corpus", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except click.ClickException as exc:
        hint = f" (see: mocap-corpus {exc.ctx.command_path.partition(' ')[2]} --help)".replace("  ", " ") \
            if getattr(exc, "ctx", None) is not None else ""
        console.print(f"[red]error:[/red] {' '.join(exc.format_message().split()).rstrip('.')}{hint}", highlight=False,
                      soft_wrap=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted", highlight=False)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
