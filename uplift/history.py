"""What a run records about its progress: epoch statistics, ``steps.jsonl``, ``metrics.json/.csv/.png``.

Only rank 0 writes (``uplift.distributed``); the loss terms it records are the global batch's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class EpochStats:
    """Running sums of the loss terms over the steps of one epoch (metres)."""

    loss: float = 0.0
    loss_seq: float = 0.0
    loss_center: float = 0.0
    steps: int = 0

    def add(self, loss: float, loss_seq: float, loss_center: float) -> None:
        self.loss += loss
        self.loss_seq += loss_seq
        self.loss_center += loss_center
        self.steps += 1

    def means(self) -> dict:
        """``{"steps", "loss", "loss_seq", "loss_center"}``: the epoch's row of ``metrics.json``."""
        n = max(self.steps, 1)
        return {"steps": self.steps, "loss": self.loss / n, "loss_seq": self.loss_seq / n,
                "loss_center": self.loss_center / n}

    def to_tensor(self) -> torch.Tensor:
        """``(4,)`` float64, the ``sums`` entry of ``state.pt`` (a resume mid-epoch continues the sums)."""
        return torch.tensor([self.loss, self.loss_seq, self.loss_center, self.steps], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> EpochStats:
        loss, loss_seq, loss_center, steps = t.tolist()
        return cls(loss, loss_seq, loss_center, int(steps))


def append_step(run_dir: Path, epoch: int, batch: int, terms: list[float]) -> None:
    """Append the global batch's loss terms to ``RUN/steps.jsonl``: per-step curves, checks."""
    with open(Path(run_dir) / "steps.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch, "batch": batch, "loss": terms[0], "loss_seq": terms[1],
                            "loss_center": terms[2]}) + "\n")


def read_history(run_dir: Path) -> list[dict]:
    """The rows ``write_history`` wrote ([] when there are none yet)."""
    from schemas.errors import CheckpointError
    from schemas.files import read_text_bounded

    f = Path(run_dir) / "metrics.json"
    if not f.exists():
        return []
    try:  # a resumed run's own file, still read through the bounded reader (a regular file, size limit)
        rows = json.loads(read_text_bounded(f, "run_history", CheckpointError))
    except (ValueError, RecursionError):
        raise CheckpointError(f, "not valid JSON; remove it to resume without the earlier epochs' rows") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CheckpointError(f, "expected a JSON list of per-epoch rows")
    return rows


def write_history(run_dir: Path, history: list[dict]) -> None:
    """``metrics.json``, ``metrics.csv`` (one row per epoch) and the ``metrics.png`` curves."""
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for h in history for k in h))
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    plot_history(history, run_dir / "metrics.png")


def plot_history(history: list[dict], path: Path) -> None:
    """Training loss (mm) and evaluation MPJPE per input stride over the epochs."""
    import matplotlib.pyplot as plt

    fig = history_figure(history)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def history_figure(history: list[dict]):
    """The figure ``plot_history`` writes: two panels, epochs (whole numbers) along both x axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for k in ("loss", "loss_seq", "loss_center"):
        ax[0].plot(ep, [h[k] * 1000 for h in history], label=k)
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("mm"), ax[0].legend(), ax[0].set_title("training loss")
    keys = sorted({k for h in history for k in h if k.startswith("mpjpe_mm_s")})
    for k in keys:
        pts = [(h["epoch"], h[k]) for h in history if k in h]
        ax[1].plot(*zip(*pts), marker="o", label=k)
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("MPJPE (mm)"), ax[1].set_title("evaluation")
    if keys:
        ax[1].legend()
    else:  # e.g. an AMASS corpus: every sequence is in the train split
        ax[1].text(0.5, 0.5, "no evaluation split in this run's corpora", ha="center", va="center",
                   transform=ax[1].transAxes)
        ax[1].set_xticks([]), ax[1].set_yticks([])
    for a in ax if keys else ax[:1]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # no fractional epochs
    fig.tight_layout()
    return fig
