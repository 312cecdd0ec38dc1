"""The metrics plot: epochs are whole numbers on both panels (the MPJPE panel showed 1.5, 2.5 ...)."""

from __future__ import annotations

import numpy as np

from uplift.history import history_figure


def test_both_panels_tick_whole_epochs():
    import matplotlib.pyplot as plt

    rows = [{"epoch": e, "loss": 0.1, "loss_seq": 0.1, "loss_center": 0.1, "mpjpe_mm_s4": 100.0 - e} for e in (1, 2, 3)]
    fig = history_figure(rows)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = ax.get_xticks()
        assert len(ticks) >= 2 and np.array_equal(ticks, np.round(ticks)), ticks
    plt.close(fig)
