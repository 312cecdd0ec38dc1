"""Integrity cases (issue 23): one crafted input per way in, each a class of attack found next to the
doors that were hardened before.

Every case writes its input under its own folder and names the entry point that must refuse it
(a typed error naming the file and the limit it broke) or, where a build must go on, a function that
returns what the build recorded (a reject row with its reason, ``main`` unchanged). They run through
``hostile_runner.run_case``: one forked child each, under a memory and a CPU limit, so a case that
hangs, bombs or crashes fails alone. The inputs are generated here and never committed.

Classes (``Case.category``): ``amplification`` (shared references multiplied downstream),
``work_before_budget`` (formatting, multiplying before a bound), ``unbounded_reader`` (special,
sparse and oversized files), ``parameter_range`` (settings outside their documented range),
``implausible_value`` (values no body has, non-finite after a cast), ``lying_version`` (what a
version records vs what was read), ``failure_after_commit`` (errors after a commit, a build aborted
by one file) and ``untyped`` (errors that were not typed).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np

from tests.support.hostile_bytes import (BUILD, FALSE, MARK, PROTO, STOP, array_op, bytes_op, dtype_op, int_op,
                                              str_op, tuple_op, write_zip_many_members)
from tests.support.hostile_cases import Case, amass_arrays, vp3d_2d_arrays

# ---------------------------------------------------------------------------------------------
# Builders: work dir -> (target "module:function", args, what the error must name)


def _amass_file(work: Path, name: str = "CMU/01/01_01_poses.npz", **overrides) -> Path:
    p = work / name
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:  # np.savez would append ".npz" to a name ending in ".NPZ"
        np.savez(fh, **{**amass_arrays(), **overrides})
    return p


def _case(target: str, path: Path, *extra, named: str | None = None):
    """(target, its arguments as strings, what its error must name: ``path`` unless ``named``)."""
    return target, [str(path), *map(str, extra)], str(path) if named is None else named


# -- amplification --------------------------------------------------------------------------------

def _vp3d_shared_actions(work: Path):
    """One (2000, 32, 3) float32 array (750 KB) referenced by 1500 actions: 1.1 GB once each action is
    imported, from a file of a few KB (zeros deflate, the pickle memoises the array once)."""
    from pipelines.h36m import save_vp3d_npz

    arr = np.zeros((2000, 32, 3), np.float32)
    p = work / "data_3d_h36m.npz"
    save_vp3d_npz(p, positions_3d={"S1": {f"Action {i}": arr for i in range(1500)}})
    return _case("pipelines.h36m:load_positions_3d", p)


def _fake_chumpy():
    """A class that pickles as ``chumpy.ch.Ch`` (NEWOBJ + BUILD of its __dict__), chumpy not needed."""
    mod = sys.modules.get("chumpy.ch")
    if mod is None:
        sys.modules.setdefault("chumpy", types.ModuleType("chumpy"))
        mod = sys.modules["chumpy.ch"] = types.ModuleType("chumpy.ch")

        class Ch:
            pass

        Ch.__module__, Ch.__qualname__, Ch.__name__ = "chumpy.ch", "Ch", "Ch"
        mod.Ch = Ch
    return mod.Ch


def _chumpy_stacked_list(work: Path):
    """A chumpy ``x`` that is a list of 3000 references to one 1 MB array: ``np.asarray`` stacks 3 GB."""
    ch = _fake_chumpy()()
    ch.x = [np.zeros(1 << 17)] * 3000
    p = work / "model.pkl"
    p.write_bytes(pickle.dumps({"v_template": ch}, protocol=2))
    return _case("pipelines.safe_pickle:safe_load_pickle", p)


def _npz_members_share_budget(work: Path):
    """Three object members of 400 MB each: each alone fits the per-file budget, together they do not."""
    from pipelines.h36m import save_vp3d_npz

    arr = np.zeros((1000, 32, 3), np.float32)  # 384 KB, referenced 1100 times a member
    p = work / "data_3d_h36m.npz"
    members = {k: {"S1": {f"A{i}": arr for i in range(1100)}} for k in ("positions_3d", "metadata", "extra")}
    save_vp3d_npz(p, **members)
    return _case("tests.support.integrity_cases:load_all_members", p)


def load_all_members(path: str) -> int:
    from pipelines.safe_pickle import safe_load_npz

    return len(safe_load_npz(path, allow_object=True))


# -- work before budgets ----------------------------------------------------------------------------

def _nested_shared_dtype(levels: int = 50) -> bytes:
    """A structured dtype of ``levels`` levels, each holding the level below twice at offset 0 (one memo
    entry, so the file is small): ``str()`` of it would expand 2^levels fields."""
    out = dtype_op("f8", "<") + b"q\x00"  # BINPUT 0
    for i in range(levels):
        fields = b"}" + MARK + str_op("a") + tuple_op(b"h" + bytes([i]), int_op(0)) \
            + str_op("b") + tuple_op(b"h" + bytes([i]), int_op(0)) + b"u"
        out += dtype_op("V8", names=("a", "b"), fields=fields, elsize=8, flags=0) + b"q" + bytes([i + 1])
    return out


def _dtype_2_to_50_fields(work: Path):
    body = b"0" + array_op((3,), b"h" + bytes([50]), bytes_op(bytes(7)))  # POP the dtype, then an array of it
    p = work / "model.pkl"
    p.write_bytes(PROTO + _nested_shared_dtype(50) + body + STOP)
    return _case("pipelines.safe_pickle:safe_load_pickle", p)


def _long_shape(work: Path):
    """An array whose shape holds two 8 MB integers (LONG4): ``math.prod`` of them runs for minutes."""
    big = b"\x8b" + struct.pack("<I", 8 << 20) + b"\xff" * ((8 << 20) - 1) + b"\x7f"
    head = (b"c" + b"numpy._core.multiarray\n_reconstruct\n" + tuple_op(b"cnumpy\nndarray\n", tuple_op(int_op(0)),
                                                                         bytes_op(b"b")) + b"R")
    state = tuple_op(int_op(1), tuple_op(big, big), dtype_op("f8", "<"), FALSE, bytes_op(b""))
    p = work / "model.pkl"
    p.write_bytes(PROTO + head + state + BUILD + STOP)
    return _case("pipelines.safe_pickle:safe_load_pickle", p)


# -- unbounded readers -----------------------------------------------------------------------------

def _sparse_source(work: Path):
    """A 4 TiB sparse file (no data on disk) named like a motion file: listing must not hash it."""
    root = work / "amass"
    p = root / "CMU" / "01" / "huge_poses.npz"
    p.parent.mkdir(parents=True)
    with open(p, "wb") as fh:
        fh.truncate(4 << 40)
    return _case("tests.support.integrity_cases:listing_rejects", root)


def listing_rejects(root: str) -> str:
    """The reject reasons ``list_sources`` records, one line (a build records exactly these rows)."""
    from pipelines.rebuild import list_sources

    sources, rejects = list_sources(Path(root).resolve())
    return f"{len(sources)} sources; rejects: " + " | ".join(f"{Path(p).name}: {r.reason}" for p, r in rejects.items())


def _special_file(kind: str, name: str, target: str):
    def build(work: Path):
        p = work / name
        if kind == "devzero":
            os.symlink("/dev/zero", p)
        else:
            os.mkfifo(p)
        return _case(target, p)
    return build


def _oversized(name: str, target: str, size: int, head: bytes, pad: bytes = b" "):
    """A file of ``size`` bytes that is valid for its reader: ``head`` then ``pad`` repeated (whitespace
    a parser skips), so only a byte limit refuses it."""
    def build(work: Path):
        p = work / name
        with open(p, "wb") as fh:
            fh.write(head)
            fh.write(pad * ((size - len(head)) // len(pad)))
        return _case(target, p)
    return build


_CALIBRATION = b"""Skeletool Camera Calibration File V1.0
name          0
  size        2048 2048
  intrinsic   1500 0 1024 0 0 1500 1024 0 0 0 1 0 0 0 0 1
  extrinsic   1 0 0 0 0 1 0 0 0 0 1 3000 0 0 0 1
  radial      0
"""


def _sparse_npy(work: Path):
    """A .npy whose header declares (2**32, 17, 2) float64 (1.1 TB) and whose size on disk matches (sparse)."""
    from tests.support.hostile_bytes import npy_header

    p = work / "keypoints.npy"
    head = npy_header("<f8", (1 << 32, 17, 2))
    with open(p, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + (1 << 32) * 17 * 2 * 8)
    return _case("tests.support.integrity_cases:read_pixels", p)


def _yaml_alias_bomb(work: Path):
    """A 1 KB YAML whose ``train_subjects`` expands to 10^9 strings through nested aliases."""
    levels = [f"  - &a0 [{', '.join(['x'] * 10)}]"]
    levels += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    p = work / "run.yaml"
    p.write_text("preset: tiny\ntrain_subjects:\n" + "\n".join(levels) + "\n")
    return _case("tests.support.integrity_cases:run_config_as_json", p)


def run_config_as_json(path: str) -> str:
    """``load_run_config`` then what a run writes to config.json (``model_dump``): the whole tree is walked."""
    from uplift.run_config import load_run_config

    return json.dumps(load_run_config(path).model_dump(mode="json"))[:100]


def _safetensors_header_claim(work: Path):
    """A checkpoint whose model.safetensors claims a 1 TB header."""
    ck = _tiny_checkpoint(work)
    (ck / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    return _case("uplift.checkpoint:load_checkpoint", ck, named=str(ck / "model.safetensors"))


def _tiny_checkpoint(work: Path, **model) -> Path:
    """A checkpoint directory of the tiny preset (``model``: ModelConfig fields written into meta.json)."""
    import torch

    from uplift.checkpoint import save_checkpoint
    from uplift.config import get_preset
    from uplift.model import build_model

    ucfg = get_preset("tiny")
    path = work / "ckpt"
    save_checkpoint(path, build_model(ucfg, seed=0), None, ucfg, {"epoch": 1, "batch": 0},
                    {"epoch": torch.tensor(1), "batch": torch.tensor(0)})
    if model:
        meta = json.loads((path / "meta.json").read_text())
        meta["config"]["model"].update(model)
        (path / "meta.json").write_text(json.dumps(meta))
    return path


def _meta_fifo(work: Path):
    ck = _tiny_checkpoint(work)
    (ck / "meta.json").unlink()
    os.mkfifo(ck / "meta.json")
    return _case("uplift.checkpoint:load_checkpoint", ck, named=str(ck / "meta.json"))


# -- parameter ranges -----------------------------------------------------------------------------

def _amass_fps(fps: float):
    def build(work: Path):
        return _case("pipelines.amass:read_amass", _amass_file(work, mocap_framerate=np.array(fps)))
    return build


def _target_fps(work: Path):
    return _case("tests.support.integrity_cases:joints_at_fps", _amass_file(work), "1e7",
                 named="target frame rate")


def joints_at_fps(path: str, fps: str):
    """The ``joints --fps`` command's checks (the range is checked before any body model is loaded)."""
    from pipelines.amass import read_amass
    from pipelines.sequence import sequence_joints

    return sequence_joints(read_amass(path), "/nonexistent-body-models", "/nonexistent-regressor", float(fps)).shape


def _run_config(settings: dict, name: str = "run.json"):
    def build(work: Path):
        p = work / name
        p.write_text(json.dumps({"preset": "tiny", **settings}))
        return _case("uplift.run_config:load_run_config", p)
    return build


def _checkpoint_model(**model):
    def build(work: Path):
        ck = _tiny_checkpoint(work, **model)
        return _case("uplift.checkpoint:load_checkpoint", ck, named=str(ck / "meta.json"))
    return build


# -- implausible values ----------------------------------------------------------------------------

def _h36m_far_3d(work: Path):
    from pipelines.h36m import save_vp3d_npz

    d = work / "vp3d"
    d.mkdir()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 32, 3)).astype(np.float32)
    save_vp3d_npz(d / "data_3d_h36m.npz", positions_3d={"S1": {"Walking 1": x * 1e30}, "S5": {"Walking 1": x}})
    arrays = vp3d_2d_arrays(None, ("S1", "S5"))
    np.savez(d / "data_2d_h36m_cpn_ft_h36m_dbb.npz", **arrays)
    return _case("tests.support.integrity_cases:h36m_rejects", d)


def h36m_rejects(folder: str) -> str:
    """What an import yields: sequences kept and the reasons of the rejects (one line)."""
    from pipelines.h36m import import_h36m
    from schemas.records import Reject

    items = list(import_h36m(folder))
    rejects = [f"{r.source_path.rsplit('#', 1)[-1]}: {r.reason}" for r in items if isinstance(r, Reject)]
    return f"{sum(not isinstance(r, Reject) for r in items)} sequences kept; rejects: {' | '.join(rejects)}"


def _nan_weights(work: Path):
    from safetensors.torch import load_file, save_file

    ck = _tiny_checkpoint(work)
    w = load_file(str(ck / "model.safetensors"))
    first = sorted(w)[0]
    w[first] = w[first].clone().fill_(float("nan"))
    save_file(w, str(ck / "model.safetensors"))
    return _case("uplift.checkpoint:load_checkpoint", ck, named=str(ck / "model.safetensors"))


def read_pixels(path: str):
    from flows.inference import read_keypoints

    return read_keypoints(path, width=1000, height=1000)[0].shape


def _nan_pixels_api(work: Path):
    ck = _tiny_checkpoint(work)
    px = np.full((20, 17, 2), 500.0)
    px[4, 4, 0] = np.nan  # a key frame (s_in 4): its 2D is read
    np.save(work / "pixels.npy", px)
    return _case("tests.support.integrity_cases:infer_pixels", ck, work / "pixels.npy", named="<keypoints>")


def infer_pixels(checkpoint: str, pixels: str):
    """``infer_keypoints`` (the API the flow and the CLI share) on pixels loaded by the caller."""
    from flows.inference import infer_keypoints

    poses = infer_keypoints(checkpoint, np.load(pixels), 1000, 1000, device="cpu")
    return f"{np.isnan(poses).sum()} NaN of {poses.size}"


# -- lying versions ---------------------------------------------------------------------------------

def _symlink_out_of_root(work: Path):
    outside = _amass_file(work, "elsewhere/secret_poses.npz")
    root = work / "amass"
    (root / "CMU" / "01").mkdir(parents=True)
    _amass_file(root, "CMU/01/ok_poses.npz")
    os.symlink(outside, root / "CMU" / "01" / "link_poses.npz")
    return _case("tests.support.integrity_cases:listing_and_reading", root, named=str(root))


def listing_and_reading(root: str) -> str:
    """The listing's reject for a link out of the root, and the reader's own refusal of it."""
    from pipelines.amass import read_amass
    from schemas.errors import AmassFormatError

    listed = listing_rejects(root)
    link = Path(root) / "CMU" / "01" / "link_poses.npz"
    try:
        read_amass(link, root=Path(root))
        return listed + "; the reader READ it"
    except AmassFormatError as exc:
        return f"{listed}; the reader refused it: {exc.reason}"


def _tampered_manifest(work: Path):
    from tests.support.corpus_fixtures import make_seqs, write_corpus

    p = work / "corpus"
    write_corpus(p, make_seqs(0, lengths=(30, 70, 15)))
    tamper_offsets(p)
    return _case("schemas.reader:open_corpus", p, named=str(p))


def tamper_offsets(path: Path) -> None:
    """Commit a sequences manifest whose second row starts at -5 (as an edit on disk would leave it)."""
    import icechunk
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    from schemas import manifests as M
    from schemas import store as S
    from schemas.manifests import read_manifest

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    seqs = read_manifest(root, "sequences")
    off = seqs.column("offset").to_numpy().copy()
    off[1] = -5
    seqs = seqs.set_column(seqs.schema.get_field_index("offset"), M.SEQUENCES.field("offset"), pa.array(off, pa.int64()))
    buf = io.BytesIO()
    pq.write_table(seqs, buf)
    data = np.frombuffer(buf.getvalue(), np.uint8)
    root[S.MANIFESTS_GROUP].create_array("sequences", shape=data.shape, dtype=np.uint8, chunks=data.shape,
                                         overwrite=True)[:] = data
    s.commit("tampered")


def _swapped_source(work: Path):
    from pipelines.synthetic.body_model import write_body_model_tree

    files = write_body_model_tree(work / "models")
    root = work / "amass"
    a = _amass_file(root, "CMU/01/a_poses.npz")
    rng = np.random.default_rng(9)
    other = {**amass_arrays(), "poses": rng.normal(scale=0.2, size=(12, 156))}
    b = work / "b.npz"
    np.savez(b, **other)
    return _case("tests.support.integrity_cases:swap_then_process", root, a, b, work / "models",
                 files["J_regressor_h36m"], named=str(a))


def swap_then_process(root: str, path: str, replacement: str, models: str, regressor: str) -> str:
    """List ``root`` (hashing ``path``), replace ``path``'s bytes, then process it as a build worker
    would: the sequence must be recorded under the hash of the bytes it was computed from."""
    import hashlib

    from pipelines.rebuild import list_sources
    from pipelines.sequence import WorkerSettings, process_source

    sources, _ = list_sources(Path(root).resolve())
    src = next(s for s in sources if s.path.endswith("a_poses.npz"))
    Path(src.path).write_bytes(Path(replacement).read_bytes())  # swapped after the listing
    swapped_sha = hashlib.sha256(Path(src.path).read_bytes()).hexdigest()
    settings = WorkerSettings(rig="h36m", cameras_per_sequence=1, fps=30.0, seed=0, val_fraction=0.0,
                              source_root=str(Path(root).resolve()))
    out = process_source(src.path, src.key, src.dataset, src.subject, src.name, src.sha256, models, regressor,
                         settings, "cfg")
    recorded = {getattr(x, "source_sha256", None) for x in (out if isinstance(out, list) else [out])}
    if recorded != {swapped_sha}:
        raise AssertionError(f"recorded {recorded} for bytes {swapped_sha[:12]} (listing said {src.sha256[:12]})")
    return f"recorded the hash of the bytes parsed ({swapped_sha[:12]}), not the listing's ({src.sha256[:12]})"


# -- failures after the commit ----------------------------------------------------------------------

def _bad_tag(tag: str):
    def build(work: Path):
        from tests.support.corpus_fixtures import make_seqs, write_corpus

        p = work / "corpus"
        write_corpus(p, make_seqs(0, lengths=(30,)), tag="v1")
        return _case("tests.support.integrity_cases:commit_with_tag", p, tag, named=str(p))
    return build


def commit_with_tag(path: str, tag: str) -> str:
    """Commit a version tagged ``tag``; when refused, say whether ``main`` and the tags stayed unchanged."""
    from tests.support.corpus_fixtures import make_seqs, write_corpus
    from schemas.errors import CorpusError
    from schemas.repository import open_repository

    repo = open_repository(path)
    before = (repo.lookup_branch("main"), sorted(repo.list_tags()), len(list(repo.ancestry(branch="main"))))
    try:
        write_corpus(path, make_seqs(1, lengths=(20,)), tag=tag)
    except CorpusError as exc:
        repo = open_repository(path)
        after = (repo.lookup_branch("main"), sorted(repo.list_tags()), len(list(repo.ancestry(branch="main"))))
        state = "main and tags unchanged" if after == before else f"CHANGED: {before} -> {after}"
        return f"refused: {exc}; {state}"
    return "committed"


def _case_collision(work: Path):
    root = work / "amass"
    _amass_file(root, "CMU/01/a_poses.npz")
    _amass_file(root, "CMU/01/a_poses.NPZ")
    _amass_file(root, "CMU/01/b_poses.npz")
    return _case("tests.support.integrity_cases:listing_rejects", root)


def _zip_directory_lies(work: Path):
    """A zip whose end record claims one entry while its central directory holds a million (96 MB)."""
    p = work / "CMU" / "01" / "lie_poses.npz"
    p.parent.mkdir(parents=True)
    write_zip_many_members(p, 1_000_000, claimed=1)
    return _case("pipelines.amass:read_amass", p)


# -- formerly untyped ------------------------------------------------------------------------------

def _newobj_stub(work: Path):
    """``chumpy.ch.Ch`` made by NEWOBJ with no state at all: the stub never ran ``__init__``."""
    p = work / "model.pkl"
    p.write_bytes(pickle.dumps({"v_template": _fake_chumpy()()}, protocol=2))
    return _case("pipelines.safe_pickle:safe_load_pickle", p)


def _zero_d_cameras(work: Path):
    box = np.empty((), dtype=object)
    box[()] = np.zeros((4, 17, 2), np.float32)
    cams = np.empty((), dtype=object)
    cams[()] = box  # a 0-d object array where a list of cameras belongs
    p = work / "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    from pipelines.h36m import save_vp3d_npz

    save_vp3d_npz(p, positions_2d={"S1": {"Walking 1": cams}})
    return _case("pipelines.h36m:load_positions_2d", p)


def _config_text(name: str, text: str):
    def build(work: Path):
        p = work / name
        p.write_text(text)
        return _case("uplift.run_config:load_run_config", p)
    return build


def _missing_config(work: Path):
    return _case("uplift.run_config:load_run_config", work / "runs" / "missing.json")


CASES: tuple[Case, ...] = (
    # amplification: every reference counted at its converted size, one budget per file
    Case("vp3d_one_array_1500_actions", "amplification", _vp3d_shared_actions, match="every reference"),
    Case("chumpy_x_list_of_3000_refs", "amplification", _chumpy_stacked_list, match="every reference"),
    Case("npz_three_members_one_budget", "amplification", _npz_members_share_budget, match="limit for one file"),
    # work before budgets: nothing formatted or multiplied before it is bounded
    Case("dtype_50_levels_shared", "work_before_budget", _dtype_2_to_50_fields, match="nested dtypes are refused"),
    Case("shape_of_8MB_integers", "work_before_budget", _long_shape, match="64-bit limit"),
    # unbounded readers: the regular-file gate and a byte limit for every kind
    Case("source_sparse_4TiB_listing", "unbounded_reader", _sparse_source, expect="loads",
         match="over the 1073741824-byte limit for an AMASS motion file"),
    Case("calibration_dev_zero", "unbounded_reader",
         _special_file("devzero", "camera.calibration", "pipelines.calibration:parse_3dhp_calibration"),
         match="character device"),
    Case("calibration_fifo", "unbounded_reader",
         _special_file("fifo", "camera.calibration", "pipelines.calibration:parse_3dhp_calibration"), match="FIFO"),
    Case("calibration_2MiB", "unbounded_reader",
         _oversized("camera.calibration", "pipelines.calibration:parse_3dhp_calibration", 2 << 20, _CALIBRATION,
                    b"\n"), match="over the 1048576-byte limit"),
    Case("infer_npy_fifo", "unbounded_reader",
         _special_file("fifo", "keypoints.npy", "tests.support.integrity_cases:read_pixels"), match="FIFO"),
    Case("infer_npy_sparse_1TB", "unbounded_reader", _sparse_npy, match="over the 536870912-byte limit"),
    Case("run_config_fifo", "unbounded_reader", _special_file("fifo", "run.json", "uplift.run_config:load_run_config"),
         match="FIFO"),
    Case("run_config_2MiB", "unbounded_reader",
         _oversized("run.json", "uplift.run_config:load_run_config", 2 << 20, b'{"preset": "tiny"}'),
         match="over the 1048576-byte limit"),
    Case("run_config_yaml_alias_bomb", "unbounded_reader", _yaml_alias_bomb, match="anchors and aliases"),
    Case("checkpoint_meta_fifo", "unbounded_reader", _meta_fifo, match="FIFO"),
    Case("checkpoint_safetensors_header_1TB", "unbounded_reader", _safetensors_header_claim,
         match="over the 16777216-byte limit"),
    # parameter ranges: checked before work starts
    Case("amass_framerate_1e-6", "parameter_range", _amass_fps(1e-6), match="1-1000 Hz"),
    Case("amass_framerate_1e7", "parameter_range", _amass_fps(1e7), match="1-1000 Hz"),
    Case("joints_target_fps_1e7", "parameter_range", _target_fps, match="1-1000 Hz"),
    Case("run_config_prefetch_factor_1e6", "parameter_range", _run_config({"prefetch_factor": 1_000_000}),
         match="[1, 64]"),
    Case("run_config_num_workers_10000", "parameter_range", _run_config({"num_workers": 10_000}), match="[0, 64]"),
    Case("run_config_batch_size_float", "parameter_range", _run_config({"train": {"batch_size": 16.5}}),
         match="batch_size must be int"),
    Case("run_config_d_temp_1e6", "parameter_range", _run_config({"model": {"d_temp": 1_000_000}}),
         match="[1, 4096]"),
    Case("checkpoint_model_d_temp_4096_depth_64", "parameter_range",
         _checkpoint_model(d_temp=4096, depth_temp=64, num_heads=8), match="over the limit"),
    # implausible values: finite and within the documented bounds after the last cast
    Case("amass_trans_3_4e38", "implausible_value", lambda w: _case("pipelines.amass:read_amass", _amass_file(
        w, trans=np.full((12, 3), 3.4e38))), match="beyond the documented bound of 10000"),
    Case("amass_poses_1e300", "implausible_value", lambda w: _case("pipelines.amass:read_amass", _amass_file(
        w, poses=np.full((12, 156), 1e300))), match="beyond the documented bound of 1000"),
    Case("h36m_3d_1e30_rejected", "implausible_value", _h36m_far_3d, expect="loads",
         match="1 sequences kept; rejects: S1/Walking 1: joints_world holds"),
    Case("checkpoint_nan_weights", "implausible_value", _nan_weights, match="NaN or inf"),
    Case("infer_nan_pixels_api", "implausible_value", _nan_pixels_api, match="non-finite"),
    # lying versions: what a version records is what was read
    Case("source_swapped_after_listing", "lying_version", _swapped_source, expect="loads", budget_mb=600,
         match="recorded the hash of the bytes parsed"),
    Case("source_symlink_out_of_root", "lying_version", _symlink_out_of_root, expect="loads",
         match="outside the AMASS root"),
    Case("manifest_negative_offset", "lying_version", _tampered_manifest, match="manifests do not match"),
    # failures after the commit: nothing committed that the command then reports as failed
    Case("tag_main", "failure_after_commit", _bad_tag("main"), expect="loads",
         match="a branch's name; main and tags unchanged"),
    Case("tag_300_characters", "failure_after_commit", _bad_tag("t" * 300), expect="loads",
         match="invalid tag name"),
    Case("sequence_keys_differ_in_case", "failure_after_commit", _case_collision, expect="loads",
         match="collides with that of"),
    Case("zip_end_record_claims_one_of_1M", "failure_after_commit", _zip_directory_lies,
         match="zip directory holds more than 10000 entries"),
    # formerly untyped errors
    Case("newobj_stub_without_state", "untyped", _newobj_stub, match="without a numeric value"),
    Case("vp3d_cameras_0d_object_array", "untyped", _zero_d_cameras, match="expected a list of per-camera arrays"),
    Case("yaml_config_empty", "untyped", _config_text("run.yaml", ""), match="config file is empty"),
    Case("json_config_a_list", "untyped", _config_text("run.json", "[1, 2]"), match="expected a mapping"),
    Case("config_file_missing", "untyped", _missing_config, match="config file not found"),
)

CATEGORIES = tuple(dict.fromkeys(c.category for c in CASES))
