"""Corpus commands: synthetic inputs, one file (inspect, joints), builds, export, versions, pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from flows.cli.output import (CORPUS_HELP, at_least, console, corpus_arg, json_line, one_line_errors, one_of,
                              out, positive, print_rejects, table, versions_lines)
from flows.cli.root import app
from flows.progress import bar
from schemas.errors import MocapCorpusError

synth = typer.Typer(no_args_is_help=True, help="Write synthetic stand-ins in the real file formats.")
app.add_typer(synth, name="synth")

_ORDER_HELP = ("auto: check the regressor's left/right rows on the body model's template and swap "
               "mismatched pairs (reported); as-is: trust the file's row order")
REGRESSOR_ORDERS = ("auto", "as-is")  # pipelines.regressor_order.REGRESSOR_ORDERS (checked by a test)


# --- synthetic data ---------------------------------------------------------------------------


@synth.command("body-model")
@one_line_errors
def synth_body_model(out_dir: Path, seed: int = typer.Option(0, help="random seed"),
                     smplx: bool = typer.Option(True, "--smplx/--no-smplx",
                                                help="also the SMPL-X models and the SMPL-X -> SMPL deformation "
                                                     "transfer (about 360 MB)")):
    """Write the procedural SMPL+H-format body model, DMPLs and H36M regressor in the AMASS layout, and
    beside them the SMPL-X models (smplx/) and the deformation transfer (transfer/smplx2smpl_deftrafo_setup.pkl).

    The regressor's rows follow SPIN's J_regressor_h36m.npy (left leg in rows 1-3), like the real file."""
    from pipelines.synthetic.body_model import write_body_model_tree

    paths = write_body_model_tree(out_dir, seed=seed, smplx=smplx)
    for name, p in paths.items():
        out.print(f"{name}: {p}")


@synth.command("amass")
@one_line_errors
def synth_amass(out_dir: Path, sequences: int = typer.Option(24, help="number of sequences", callback=at_least(1)),
                seed: int = typer.Option(0, help="random seed"),
                smplx_fraction: float = typer.Option(0.15, "--smplx-fraction", min=0.0, max=1.0,
                                                     help="share of SMPL-X sequences (G and N; 0: SMPL+H only)")):
    """Write an AMASS-like tree of motion files: SMPL+H G, mixed with SMPL-X G and SMPL-X N (*_stageii.npz)."""
    from pipelines.synthetic.motions import write_amass_tree

    paths = write_amass_tree(out_dir, n_sequences=sequences, seed=seed, smplx_fraction=smplx_fraction)
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


_DEFTRAFO_HELP = ("SMPL-X -> SMPL deformation transfer (smplx2smpl_deftrafo_setup.pkl) for SMPL-X files; "
                  "default DIR/transfer/smplx2smpl_deftrafo_setup.pkl")
_SMPLX_REG_HELP = "ready (17, 10475) regressor for SMPL-X files, instead of the regressor composed with the transfer"


def _check_files(**given) -> None:
    from schemas.errors import ConfigError

    for name, path in given.items():
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: --{name.replace('_', '-')} file not found")


@app.command()
@one_line_errors
def joints(file: Path, body_models: Path = typer.Option(..., "--body-models", help="body-model folder"),
           regressor: Optional[Path] = typer.Option(None, help="(N, 6890) regressor; default DIR/J_regressor_h36m.npy"),
           fps: float = typer.Option(50.0, help="target frame rate", callback=positive),
           out_file: Path = typer.Option(..., "--out", help="output .npy, (T', N, 3) float32 metres"),
           regressor_order: str = typer.Option("auto", "--regressor-order", help=_ORDER_HELP,
                                               callback=one_of(*REGRESSOR_ORDERS)),
           deftrafo: Optional[Path] = typer.Option(None, "--deftrafo", help=_DEFTRAFO_HELP),
           smplx_regressor: Optional[Path] = typer.Option(None, "--smplx-regressor", help=_SMPLX_REG_HELP)):
    """Regress the joints of one AMASS file (SMPL+H or SMPL-X; mesh-free, exact) and write them as .npy."""
    import numpy as np

    from pipelines.amass import read_amass
    from pipelines.sequence import REGRESSOR_FILE, default_deftrafo, family_regressor, sequence_joints

    _check_files(deftrafo=deftrafo, smplx_regressor=smplx_regressor)
    reg_path = regressor or body_models / REGRESSOR_FILE
    seq = read_amass(file)
    if seq.model_type == "smplx" and deftrafo is None:
        deftrafo = default_deftrafo(body_models)
    notes: list[str] = []
    result = sequence_joints(seq, body_models, reg_path, fps, regressor_order, notes, deftrafo=deftrafo,
                             smplx_regressor=smplx_regressor)
    _, order = family_regressor(seq.model_type, body_models, reg_path, regressor_order, deftrafo, smplx_regressor)
    used = smplx_regressor if seq.model_type == "smplx" and smplx_regressor else reg_path
    out.print(f"{used}: {order.message}", highlight=False)
    out.print(f"body model: {seq.model_type} {seq.gender}", highlight=False)
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
                    rig: str = typer.Option("h36m", help="h36m | 3dhp", callback=one_of("h36m", "3dhp")),
                    calibration: Optional[Path] = typer.Option(
                        None, help="MPI-INF-3DHP camera.calibration (rig 3dhp): use its cameras"),
                    placement: str = typer.Option("rig", help="rig: turn, move into the rig's volume and cut "
                                                              "where needed | raw: keep the mocap trajectory "
                                                              "as it is (recipe official-code)",
                                                  callback=one_of("rig", "raw")),
                    cameras_per_sequence: int = typer.Option(4, callback=at_least(1)),
                    fps: float = typer.Option(50.0, callback=positive),
                    seed: int = typer.Option(0),
                    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address"),
                    workers: int = typer.Option(2, help="LocalCluster workers when no scheduler is given",
                                                callback=at_least(1)),
                    shard_mb: float = typer.Option(64.0, "--shard-mb", help="source megabytes per worker task",
                                                   callback=positive),
                    regressor_order: str = typer.Option("auto", "--regressor-order", help=_ORDER_HELP,
                                                        callback=one_of(*REGRESSOR_ORDERS)),
                    deftrafo: Optional[Path] = typer.Option(None, "--deftrafo", help=_DEFTRAFO_HELP),
                    smplx_regressor: Optional[Path] = typer.Option(None, "--smplx-regressor", help=_SMPLX_REG_HELP),
                    verify: bool = typer.Option(False, "--verify", help="re-hash every source and input file "
                                                "instead of trusting an unchanged size, mtime and inode")):
    """Build (or incrementally rebuild) an AMASS corpus version (SMPL+H and SMPL-X files, mixed or not)."""
    from pipelines.build_amass import BuildConfig, build_amass

    cfg = BuildConfig(amass_root=amass_root, body_models=body_models, regressor=regressor, corpus=corpus_arg(corpus),
                      tag=tag, rig=rig, calibration=calibration, placement=placement,
                      cameras_per_sequence=cameras_per_sequence,
                      fps=fps, seed=seed, scheduler=scheduler, n_workers=workers, shard_mb=shard_mb,
                      regressor_order=regressor_order,
                      deftrafo=deftrafo, smplx_regressor=smplx_regressor, verify=verify)
    with bar("sequences/s") as tick:
        report = build_amass(cfg, progress=lambda done, total, info: tick(
            done, total, "sequences", f"{info['source_fps']:.0f} src frames/s"))
    out.print(table("build-amass", report.summary_rows()))  # its "regressor rows" rows say how they were read
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    print_rejects(report.rejects)


@app.command("build-h36m")
@one_line_errors
def build_h36m_cmd(data_dir: Path, corpus: str = typer.Option(..., "--corpus", help=CORPUS_HELP),
                   detections: str = typer.Option("cpn", help="cpn | gt"),
                   tag: Optional[str] = typer.Option(None)):
    """Import VideoPose3D-format Human3.6M 3D + CPN (or GT) 2D files as a corpus version."""
    from pipelines.build_h36m import H36MBuildConfig, build_h36m

    report = build_h36m(H36MBuildConfig(data_dir=data_dir, corpus=corpus_arg(corpus), detections=detections, tag=tag))
    out.print(table("build-h36m", report.summary_rows()))
    print_rejects(report.rejects)


@app.command("export-vp3d")
@one_line_errors
def export_vp3d_cmd(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None),
                    out_dir: Path = typer.Option(..., "--out"),
                    split: Optional[str] = typer.Option(None, help="only this split (train | val | test)"),
                    name: str = typer.Option("h36m", help="file name stem: data_3d_<name>.npz"),
                    joints: int = typer.Option(32, "--joints", callback=one_of(17, 32),
                                               help="3D layout: 32 (default; what VideoPose3D's Human36mDataset "
                                                    "loads) | 17 (the training joints as they are, for other "
                                                    "loaders: Human36mDataset cannot load it)"),
                    keep_incomplete: bool = typer.Option(False, "--keep-incomplete",
                                                         help="keep actions missing a camera's 2D (None in that "
                                                              "slot; VideoPose3D's run.py fails on them)")):
    """Export a corpus version as VideoPose3D data_3d_*.npz / data_2d_*.npz files (float32, 4 cameras).

    Actions missing a camera's 2D are left out of every file and listed, as VideoPose3D's own data
    preparation leaves out what run.py cannot load."""
    from pipelines.h36m_export import export_vp3d

    subset = {"split": split} if split else None
    skipped: list[str] = []
    with bar("sequences/s") as tick:
        paths = export_vp3d(corpus_arg(corpus), out_dir, version=version, subset=subset, name=name,
                            layout=f"h36m{joints}", incomplete="keep" if keep_incomplete else "drop",
                            skipped=skipped, progress=lambda done, total: tick(done, total, "exporting sequences"))
    for key, p in paths.items():
        out.print(f"{key}: {p}")
    for line in skipped:
        out.print(f"left out {line} (--keep-incomplete keeps it)", highlight=False, markup=False)


# --- versions ---------------------------------------------------------------------------------


@app.command()
@one_line_errors
def versions(corpus: str = typer.Argument(..., help=CORPUS_HELP),
             as_json: bool = typer.Option(False, "--json", help="one JSON object a line")):
    """List the versions of a corpus (newest first)."""
    from schemas.versions import list_versions

    vs = list_versions(corpus_arg(corpus))
    if as_json:
        for v in vs:
            row = {"id": v.id, "tags": list(v.tags), "time": v.time.isoformat(), "message": v.message,
                   "sequences": v.n_sequences, "frames": v.n_frames, "views": v.n_views}
            if v.store_bytes is not None:  # Icechunk has no cheap per-version size: only when recorded
                row["store_bytes"] = v.store_bytes
            json_line(row)
        return
    import shutil

    width = max(40, min(shutil.get_terminal_size((80, 24)).columns, 120))
    out.print(f"{corpus}: {len(vs)} version{'s' * (len(vs) != 1)}, newest first", highlight=False, markup=False)
    for line in versions_lines(vs, width):
        out.print(line, highlight=False, markup=False)


@app.command()
@one_line_errors
def validate(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None)):
    """Check a corpus version's arrays against its manifests."""
    from schemas.validate import validate_corpus

    problems = validate_corpus(corpus_arg(corpus), version)
    if problems:
        for p in problems:  # one error line a problem, as every command prints its errors
            console.print(f"[red]error:[/red] {p}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"{corpus}@{version or 'main'}: valid")


@app.command()
@one_line_errors
def rejects(corpus: str = typer.Argument(..., help=CORPUS_HELP), version: Optional[str] = typer.Option(None),
            as_json: bool = typer.Option(False, "--json", help="one JSON object a line")):
    """List the source files a build rejected, with reasons."""
    from schemas.reader import CorpusReader

    records = CorpusReader.open(corpus_arg(corpus), version).reject_records()
    if as_json:
        for r in records:
            json_line({"source_path": r.source_path, "kind": r.kind, "reason": r.reason,
                       "source_sha256": r.source_sha256 or None})
        return
    print_rejects(records, always=True)


@app.command()
@one_line_errors
def gc(corpus: str = typer.Argument(..., help=CORPUS_HELP),
       grace_s: float = typer.Option(3600.0, "--grace", callback=at_least(0), help="keep objects younger than this many seconds "
                                     "(a running build's uncommitted data); 0 only when no build runs"),
       expire_days: Optional[float] = typer.Option(None, "--expire-untagged-older-than", help="first drop "
                                                   "UNTAGGED versions older than this many days from branch history"),
       dry_run: bool = typer.Option(False, "--dry-run", help="report what would be deleted, delete nothing")):
    """Reclaim disk space left by killed or aborted builds (Icechunk garbage collection).

    Never touches a tagged version or one a branch's history reaches (unless --expire-untagged-older-than).
    """
    from datetime import datetime, timedelta, timezone

    from pipelines.gc import collect_garbage

    older = None if expire_days is None else datetime.now(timezone.utc) - timedelta(days=expire_days)
    r = collect_garbage(corpus_arg(corpus), grace_s=grace_s, expire_older_than=older, dry_run=dry_run)
    size = lambda b: "n/a (object storage)" if b is None else f"{b:,}"  # noqa: E731
    rows = [("bytes on disk before", size(r.bytes_before)), ("bytes on disk after", size(r.bytes_after)),
            ("bytes deleted" + (" (dry run: would be)" if dry_run else ""), f"{r.bytes_deleted:,}"),
            ("chunks / manifests / snapshots deleted", f"{r.chunks_deleted} / {r.manifests_deleted} / {r.snapshots_deleted}"),
            ("half-written object files deleted (killed writes)", f"{r.half_written_deleted} ({r.half_written_bytes:,} bytes)"),
            ("versions expired from history", r.expired_snapshots)]
    out.print(table(f"gc {corpus}", rows))


@app.command()
@one_line_errors
def diff(corpus: str = typer.Argument(..., help=CORPUS_HELP), v1: str = typer.Argument(...),
         v2: str = typer.Argument(...)):
    """Sequences added, removed and changed between two versions."""
    from schemas.versions import diff_versions

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
    from schemas.versions import tag_version

    tag_version(corpus_arg(corpus), version, name)
    out.print(f"tagged {version} as {name}")


# --- pictures -------------------------------------------------------------------------------


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
    with bar("frames/s") as tick:
        path = render_sequence(reader, sequence, out_file, view=view, frames=frames,
                               progress=lambda done, total: tick(done, total, f"drawing {out_file}"))
    out.print(f"wrote {path}", highlight=False)
