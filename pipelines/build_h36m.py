"""The Human3.6M build: VideoPose3D-format 3D + CPN (or GT) 2D files -> one committed corpus version.

The version holds exactly this import (a corpus version is a complete corpus; mix with AMASS at
training time by pinning both versions). Sequences stream from ``pipelines.h36m.import_h36m`` into the
writer one at a time; what cannot be paired becomes reject rows. It returns the same ``BuildResult``
as the AMASS build.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

from pipelines.build_result import BuildResult, on_top_of_conflicts
from pipelines.h36m import H36M_FPS, IMPORTER_VERSION, VP3DFiles, import_h36m, read_vp3d_files
from schemas.versions import check_tag_name
from schemas.reader import CorpusReader
from schemas.records import Reject
from schemas.storage import CorpusLocation


class H36MBuildConfig(BaseModel):
    """What a Human3.6M import writes. Rendered as a form by the Prefect UI."""

    data_dir: Path = Field(description="folder with data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz "
                                       "(or data_2d_h36m_gt.npz)")
    corpus: CorpusLocation = Field(description="corpus repository: a local folder or s3://bucket/prefix "
                                               "(created on first import)")
    # Any VideoPose3D 2D file: "cpn" and "gt" are spelled out, another value names data_2d_h36m_<value>.npz
    # (the CLI took any name, the flow only cpn | gt; an exported AMASS corpus is "projected").
    # a file-name suffix: letters, digits, '_' and '-' only, so it can never name a file outside data_dir
    detections: str = Field("cpn", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                            description="2D keypoints to import: cpn (detected), gt (ground truth) or the "
                                        "suffix of another data_2d file")
    tag: str | None = Field(None, description="tag for the committed version, e.g. h36m-cpn-v1")


def build_info(cfg: H36MBuildConfig, files: VP3DFiles, n_sequences: int, n_views: int, n_rejects: int) -> dict:
    """The version's ``build_info``: how it was built (the writer adds the store format, joint set,
    fps and package version). The files' hashes are those of the bytes imported."""
    return {"source": "h36m", "importer": IMPORTER_VERSION, "detections": cfg.detections,
            "files": {files.p3.name: files.sha3, files.p2.name: files.sha2},
            "n_sequences": n_sequences, "n_views": n_views, "n_rejects": n_rejects}


def build_h36m(cfg: H36MBuildConfig) -> BuildResult:
    """Import the VideoPose3D files into a corpus and commit one version (rejects recorded as rows).

    File-level errors (missing file, forbidden pickle global, wrong nesting) raise before the store
    is opened: nothing is written. When another build commits to the same corpus first, the import
    starts again on top of that version (``pipelines.build_result.on_top_of_conflicts``).
    """
    return on_top_of_conflicts(lambda: _import_once(cfg))


def _import_once(cfg: H36MBuildConfig) -> BuildResult:
    """One import: read, stream every sequence into a writer, commit."""
    from pipelines.writer import CorpusWriter

    t0 = time.perf_counter()
    if cfg.tag is not None:
        check_tag_name(cfg.corpus, cfg.tag)  # before any work (the writer checks the branches again)
    files = read_vp3d_files(cfg.data_dir, cfg.detections)  # file-level errors raise before the store opens
    items = import_h36m(files, cfg.detections)  # then stream, one sequence at a time
    n_seq = n_views = n_trim = source_frames = n_rejects = 0
    with CorpusWriter(cfg.corpus, num_joints=17, fps=H36M_FPS,
                      optional_arrays=("joints_world_32",)) as writer:  # aborts unless committed
        for item in items:
            if isinstance(item, Reject):
                writer.reject(item)
                n_rejects += 1
            else:
                writer.add(item)
                n_seq += 1
                n_views += len(item.views)
                n_trim += sum(1 for v in item.views if v.trimmed_frames)
                source_frames += item.n_source_frames
        msg = f"h36m import ({cfg.detections}): {n_seq} sequences, {n_views} views, {n_rejects} rejects"
        snapshot = writer.commit(msg, tag=cfg.tag, build_info=build_info(cfg, files, n_seq, n_views, n_rejects))
    reader = CorpusReader.open(cfg.corpus, snapshot)
    return BuildResult.from_reader(reader, corpus=cfg.corpus, n_sources=len(reader.source_paths()),
                                   up_to_date=False, elapsed_s=time.perf_counter() - t0, tag=cfg.tag,
                                   n_recomputed=n_seq, source_frames=source_frames, n_trimmed_views=n_trim)
