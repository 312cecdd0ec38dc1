"""The demo's synthetic inputs make a mixed AMASS tree: SMPL+H G with SMPL-X G and N files, and the body
models for all of them (SMPL+H, SMPL-X and the deformation transfer)."""

from __future__ import annotations

from pipelines.amass import iter_amass, read_amass


def test_demo_inputs_mix_smplh_and_smplx_g_and_n(tmp_path, monkeypatch):
    import pipelines.synthetic.body_model as body_model
    import pipelines.synthetic.h36m as h36m
    from flows.demo import generate_inputs

    calls = {}
    monkeypatch.setattr(body_model, "write_body_model_tree", lambda d, **kw: calls.setdefault("body", kw))
    monkeypatch.setattr(h36m, "write_h36m_files", lambda d, **kw: calls.setdefault("h36m", kw))
    paths = generate_inputs(tmp_path)
    assert calls["body"].get("smplx") is True  # SMPL-X models and the transfer beside the SMPL+H ones
    seqs = [read_amass(s.path) for s in iter_amass(paths["amass"]) if s.dataset != "Broken"]
    kinds = {(s.model_type, "N" if s.gender == "neutral" else "G") for s in seqs}
    assert {("smplh", "G"), ("smplx", "G"), ("smplx", "N")} <= kinds
