"""The AMASS split by sub-dataset: the authors' lists, name matching, split.json, validation every epoch."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from pipelines.writer import CorpusWriter
from schemas.errors import ConfigError
from schemas.records import SequenceData, ViewData
from uplift.amass_split import OFFICIAL_TRAIN, OFFICIAL_VALIDATION, dataset_name, split_sequences
from uplift.run_config import RunConfig
from uplift.train import train


def test_official_lists():
    # common/dataset/amass_dataset.py of the authors' code: 14 training datasets, 3 for validation
    assert len(OFFICIAL_TRAIN) == 14 and set(OFFICIAL_VALIDATION) == {"MPIHDM05", "SFU", "MPImosh"}
    assert RunConfig(preset="amass_351").amass_lists() == (list(OFFICIAL_TRAIN), list(OFFICIAL_VALIDATION))
    assert RunConfig(preset="h36m_351").amass_lists() == (["*"], [])  # no split unless asked for
    assert RunConfig(preset="amass_351", amass_val_datasets=["SFU"]).amass_lists()[1] == ["SFU"]


@pytest.mark.parametrize("name, official", [("MPI_HDM05", "MPIHDM05"), ("HDM05", "MPIHDM05"), ("MPI_mosh", "MPImosh"),
                                            ("MoSh", "MPImosh"), ("Eyes_Japan_Dataset", "EyesJapanDataset"),
                                            ("Transitions_mocap", "Transitionsmocap"), ("SynthCMU", "CMU"),
                                            ("BioMotionLab_NTroje", "BMLrub"), ("sfu", "SFU")])
def test_release_spellings_and_synthetic_stand_ins_match(name, official):
    assert dataset_name(name) == dataset_name(official)


def test_split_sequences_sides():
    seq = pa.table({"key": ["CMU/a", "SFU/b", "MPI_HDM05/c#001", "GRAB/d", "h36m/S1/x"],
                    "dataset": ["CMU", "SFU", "MPI_HDM05", "GRAB", "h36m"],
                    "source": ["amass", "amass", "amass", "amass", "h36m"]})
    s = split_sequences(seq, OFFICIAL_TRAIN, OFFICIAL_VALIDATION)
    assert s == {"train": ["CMU/a", "h36m/S1/x"], "val": ["SFU/b", "MPI_HDM05/c#001"], "unused": ["GRAB/d"]}
    assert split_sequences(seq, ["*"], ["SFU"])["train"] == ["CMU/a", "MPI_HDM05/c#001", "GRAB/d", "h36m/S1/x"]
    with pytest.raises(ConfigError, match="both"):
        split_sequences(seq, ["CMU", "SFU"], ["sfu"])


def _amass_corpus(path):
    """Smooth motion 4 m in front of a pinhole camera, in four sub-datasets (two of them held out)."""
    rng = np.random.default_rng(0)
    bone = rng.normal(scale=0.3, size=(17, 3))
    w = CorpusWriter(path, num_joints=17, fps=50.0)
    for i, ds in enumerate(["CMU", "SynthKIT", "MPI_HDM05", "SFU", "GRAB"]):
        t = np.arange(80)[:, None, None] / 50.0
        j = (bone[None] + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 1, (1, 17, 3)) * t) + [0, 0, 4.0]).astype(np.float32)
        kp = (j[..., :2] / j[..., 2:] * 2.0).astype(np.float32)
        views = [ViewData("h36m", "0", "S1", "projected", kp, j, np.ones((80, 17), bool), np.zeros(11), np.zeros((3, 4)))]
        for part in range(2 if ds == "SFU" else 1):  # a cut source: two segments, one source key
            key = f"{ds}/s{i}/take" + (f"#{part:03d}" if ds == "SFU" else "")
            w.add(SequenceData(key=key, source="amass", dataset=ds, joints_world=j, views=views, split="train",
                               subject=f"s{i}", action=""))
    w.commit("amass-like", tag="v1")
    return f"{path}@v1"


def test_pretraining_validates_every_epoch_and_keeps_the_best(tmp_path, monkeypatch):
    import uplift.train as T

    streams = []

    class Recorded(T.WindowStream):  # the training stream train() builds: which sequences it reads
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            streams.append(sorted(set(self.views["key"].to_pylist())))

    monkeypatch.setattr(T, "WindowStream", Recorded)
    corpus = _amass_corpus(tmp_path / "amass")
    cfg = RunConfig(preset="tiny", train={"batch_size": 16, "epochs": 3, "lr": 1e-3}, steps_per_epoch=4,
                    block_frames=64, buffer_blocks=2, eval_every=1, amass_train_datasets=list(OFFICIAL_TRAIN),
                    amass_val_datasets=list(OFFICIAL_VALIDATION))
    res = train(cfg, tmp_path / "run", corpus)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    sides = split["corpora"][res.corpora["train"][0]]
    assert sides["train"] == {"CMU": ["CMU/s0/take"], "SynthKIT": ["SynthKIT/s1/take"]}
    assert sides["val"] == {"MPI_HDM05": ["MPI_HDM05/s2/take"], "SFU": ["SFU/s3/take"]}  # source keys, once
    assert sides["unused"] == {"GRAB": ["GRAB/s4/take"]}
    assert split["missing_val_datasets"] == ["MPImosh"]
    vals = [h["val_mpjpe_mm"] for h in res.history]
    assert len(vals) == 3 and all(v > 0 for v in vals)
    assert all(f"val_mpjpe_mm_s{s}" in res.history[0] for s in (2, 4))
    assert (tmp_path / "run" / "val_epoch003.json").exists()
    best_meta = json.loads((tmp_path / "run" / "checkpoints" / "best" / "meta.json").read_text())
    assert best_meta["val_mpjpe_mm"] == pytest.approx(min(vals)) and best_meta["epoch"] == 1 + int(np.argmin(vals))
    # the training stream never saw a held-out or unused sequence
    assert streams == [["CMU/s0/take", "SynthKIT/s1/take"]]
