"""The pre-training ablation's variants: both recipes, then each item flipped alone (nothing else)."""

from __future__ import annotations

from benchmarks.pretrain_gain import NOT_APPLICABLE, _run_config, variants
from uplift.config import RECIPE_ITEMS, recipe_values


def test_each_variant_flips_exactly_its_item():
    v = variants("paper")
    assert {"paper", "official-code"} <= set(v)
    flips = {k for k in v if "=" in k}
    assert {k.split("=")[0] for k in flips} == set(RECIPE_ITEMS) - set(NOT_APPLICABLE)
    paper = recipe_values("paper")
    for name in flips:
        item, value = name.split("=")
        for pretraining in (True, False):
            items = _run_config(v[name], 10, 0, 8, 1e-3, pretraining).recipe_items()
            assert {k for k in items if items[k] != paper[k]} == {item} and items[item] == value
    assert _run_config(v["official-code"], 10, 0, 8, 1e-3, True).recipe_items() == recipe_values("official-code")
    assert _run_config({}, 10, 0, 8, 1e-3, True).camera_mode == "per-window"
    assert _run_config({}, 10, 0, 8, 1e-3, False).camera_mode == "precomputed"
