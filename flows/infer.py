"""Prefect flow ``infer``: a checkpoint + 2D keypoints of a video -> (T, 17, 3) root-relative 3D poses (.npy).

The same function as ``mocap-corpus infer`` (``flows.inference.infer_to_file``); the output file (and
the optional rendering) are published as link / image artifacts.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import publish_image, publish_link, run_logger

FLOW_NAME = "infer"


@task(name="infer-video", retries=0, cache_policy=NO_CACHE)
def run_infer(checkpoint: str, input_path: str, out: str, options: dict) -> dict:
    from flows.inference import infer_to_file

    return infer_to_file(checkpoint, input_path, out, **options)


@flow(name=FLOW_NAME, log_prints=True)
def infer_flow(checkpoint: Path, input_path: Path, out: Path, s_in: int | None = None,
               subject: str | None = None, action: str | None = None, camera: str | None = None,
               width: float | None = None, height: float | None = None, render: Path | None = None) -> dict:
    """Uplift 2D keypoints to 3D poses with a trained checkpoint.

    Args:
        checkpoint: Checkpoint directory, or a run directory holding one.
        input_path: VideoPose3D-format 2D .npz (with subject/action/camera) or a (T, 17, 2) .npy in pixels.
        out: Output .npy: (T, 17, 3) float32, root-relative metres in camera axes.
        s_in: 2D every s_in-th frame; default the checkpoint's largest training stride.
        subject: .npz input: subject, e.g. S9.
        action: .npz input: action, e.g. Walking 1.
        camera: .npz input: camera index 0..3 or H36M camera id.
        width: Image width in pixels (.npy input).
        height: Image height in pixels (.npy input).
        render: Also draw the result (.png contact sheet, .gif or .mp4).
    """
    logger = run_logger()
    options = {"s_in": s_in, "subject": subject, "action": action, "camera": camera, "width": width,
               "height": height, "render": str(render) if render else None}
    result = run_infer(str(checkpoint), str(input_path), str(out), options)
    logger.info("infer: %s -> %s (%d frames, s_in %d)", input_path, result["out"], result["frames"], result["s_in"])
    publish_link(result["out"], key=f"{FLOW_NAME}-poses", text=f"3D poses {result['out']}")
    if result["render"]:
        publish_image(result["render"], key=f"{FLOW_NAME}-render", description=f"3D poses of {input_path}")
    return result
