"""uplift.showcase: which windows an evaluation shows (the drawing is flows.rendering's)."""

from __future__ import annotations

from uplift.showcase import Window, median_and_worst


def test_median_is_the_lower_median_and_worst_the_highest():
    ws = [Window("a", 0, 0, 10, 30.0), Window("b", 1, 0, 10, 10.0), Window("c", 2, 0, 10, 50.0),
          Window("d", 3, 0, 10, 20.0)]
    picked = median_and_worst(ws)
    assert picked["median"].key == "d" and picked["worst"].key == "c"  # sorted 10, 20, 30, 50: lower median 20
    assert median_and_worst([]) == {}
