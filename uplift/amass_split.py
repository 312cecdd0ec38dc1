"""The AMASS training / validation split by sub-dataset name.

AMASS is a collection of datasets (CMU, KIT, BMLmovi, ...); a corpus keeps each sequence's
sub-dataset in the ``dataset`` column of its manifest (the top-level folder of its source key). The
authors' pre-training (``common/dataset/amass_dataset.py`` of uplift-upsample-3dhpe) trains on 14 of
them and validates on three others (``OFFICIAL_TRAIN`` and ``OFFICIAL_VALIDATION``); datasets in
neither list are not used. A run config may replace either list (``RunConfig.amass_train_datasets``,
``amass_val_datasets``); ``["*"]`` as the training list means every dataset not held out.

Names are compared after ``dataset_name``: case, ``_``/``-``/spaces and a leading ``Synth`` (the
project's synthetic stand-ins: ``SynthCMU`` stands in for ``CMU``) are ignored, and the names some
AMASS releases use for the same data map to the authors' (``MPI_HDM05`` and ``HDM05`` are
``MPIHDM05``; ``MoSh`` is ``MPImosh``; ``PosePrior`` is ``MPILimits``; ``BioMotionLab_NTroje`` is
``BMLrub``). Only sequences whose ``source`` is ``"amass"`` are split; others (Human3.6M) pass through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from schemas.errors import ConfigError

# The authors' lists (amass_splits in amass_dataset.py), in their spelling.
OFFICIAL_TRAIN = ("CMU", "DanceDB", "MPILimits", "TotalCapture", "EyesJapanDataset", "HUMAN4D", "KIT",
                  "BMLhandball", "BMLmovi", "BMLrub", "EKUT", "TCDhandMocap", "ACCAD", "Transitionsmocap")
OFFICIAL_VALIDATION = ("MPIHDM05", "SFU", "MPImosh")
ALL_OTHERS = "*"  # as the training list: every dataset not in the validation list

# Other spellings of the same datasets across AMASS releases (normalised form -> the authors' name)
_ALIASES = {"hdm05": "MPIHDM05", "mosh": "MPImosh", "poseprior": "MPILimits", "biomotionlabntroje": "BMLrub",
            "transitions": "Transitionsmocap", "tcdhands": "TCDhandMocap"}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def dataset_name(name: str) -> str:
    """The canonical (normalised) form of a sub-dataset name: ``"Synth_MPI_HDM05"`` -> ``"mpihdm05"``."""
    n = _norm(name)
    if n.startswith("synth") and len(n) > len("synth"):
        n = n[len("synth"):]
    alias = _ALIASES.get(n)
    return _norm(alias) if alias else n


def source_key(key: str) -> str:
    """A corpus key without the ``#nnn`` of a cut segment: the source it came from."""
    return key.split("#", 1)[0]


def amass_datasets(sequences: pa.Table) -> np.ndarray:
    """``(S,)`` object: each AMASS sequence's sub-dataset (the ``dataset`` column, else the key's first
    folder); None for sequences from other sources."""
    keys = sequences["key"].to_pylist()
    ds = sequences["dataset"].to_pylist() if "dataset" in sequences.column_names else [None] * len(keys)
    src = sequences["source"].to_pylist() if "source" in sequences.column_names else ["amass"] * len(keys)
    return np.array([(d or k.split("/", 1)[0]) if s == "amass" else None for k, d, s in zip(keys, ds, src)], object)


def split_sequences(sequences: pa.Table, train: Sequence[str], validation: Sequence[str]) -> dict[str, list[str]]:
    """Keys of ``sequences`` on each side: ``{"train": [...], "val": [...], "unused": [...]}``.

    ``train`` (or ``["*"]``) and ``validation``: sub-dataset names (see ``dataset_name``). Sequences
    that are not AMASS are always on the training side. A name in both lists is refused.
    """
    val = {dataset_name(n) for n in validation}
    both = {dataset_name(n) for n in train} & val
    if both:
        raise ConfigError(f"AMASS datasets {sorted(both)} are in both the training and the validation list")
    everything = ALL_OTHERS in train
    tr = {dataset_name(n) for n in train if n != ALL_OTHERS}
    out: dict[str, list[str]] = {"train": [], "val": [], "unused": []}
    for key, ds in zip(sequences["key"].to_pylist(), amass_datasets(sequences)):
        if ds is None:
            out["train"].append(key)
            continue
        n = dataset_name(ds)
        side = "val" if n in val else "train" if (everything or n in tr) else "unused"
        out[side].append(key)
    return out


def split_report(tables: Iterable[tuple[str, pa.Table]], train: Sequence[str], validation: Sequence[str]) -> dict:
    """``split.json``: the lists, then per side the sub-datasets found and the source keys of each.

    ``tables``: ``(corpus spec, sequences table)`` of every training corpus.
    """
    report: dict = {"train_datasets": list(train), "val_datasets": list(validation), "corpora": {}}
    for spec, seq in tables:
        sides = split_sequences(seq, train, validation)
        ds = dict(zip(seq["key"].to_pylist(), amass_datasets(seq)))
        entry = {}
        for side, keys in sides.items():
            by_ds: dict[str, list[str]] = {}
            for k in keys:
                by_ds.setdefault(ds[k] or "(not AMASS)", []).append(source_key(k))
            entry[side] = {d: sorted(set(v)) for d, v in sorted(by_ds.items())}
        report["corpora"][spec] = entry
    return report
