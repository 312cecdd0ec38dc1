"""Special files in an AMASS tree (issue 16): rejected by name, the build goes on and commits the rest."""

from __future__ import annotations

import os

import pytest

from pipelines.build_amass import BuildConfig, build_amass


@pytest.mark.slow
@pytest.mark.timeout(300)  # hashing or reading the FIFO / /dev/zero would block or never end
def test_fifo_and_dev_zero_sources_become_rejects(tmp_path):
    from tests.support.builds import make_inputs

    root = make_inputs(tmp_path / "in", n_sequences=2, seed=4, duration_s=(1.0, 1.5))
    folder = next(p.parent for p in (root / "amass").rglob("*_poses.npz"))
    os.mkfifo(folder / "fifo_poses.npz")
    os.symlink("/dev/zero", folder / "zero_poses.npz")
    report = build_amass(BuildConfig(amass_root=root / "amass", body_models=root / "body_models",
                                     corpus=tmp_path / "corpus", n_workers=1))
    reasons = {os.path.basename(r.source_path): r.reason for r in report.rejects}
    assert set(reasons) == {"fifo_poses.npz", "zero_poses.npz"}
    assert "FIFO" in reasons["fifo_poses.npz"] and "character device" in reasons["zero_poses.npz"]
    assert all(r.kind == "amass" for r in report.rejects)
    assert report.n_sequences >= 2
