"""Prefect flow ``infer``: a checkpoint + 2D keypoints of a video -> (T, 17, 3) root-relative 3D poses (.npy).

The same function as ``mocap-corpus infer`` (``flows.inference.infer_to_file``); the output file is
published as a link artifact and the optional rendering as an image embedded in a markdown artifact
(a GIF or PNG small enough to embed; otherwise a PNG contact sheet of the clip drawn beside it).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import image_data_uri, publish_image, publish_link
from flows.failures import fail_with_reason
from flows.logs import run_logger
from flows.paths import log_resolved, resolve_path
from flows.progress import Progress

FLOW_NAME = "infer"


@task(name="infer-video", retries=0, cache_policy=NO_CACHE)
def run_infer(checkpoint: str, input_path: str, out: str, options: dict) -> dict:
    from flows.inference import infer_to_file

    drawing = Progress(f"drawing {Path(options['render']).name}") if options.get("render") else None
    return infer_to_file(checkpoint, input_path, out, progress=drawing, **options)


@task(name="preview-render", retries=0, cache_policy=NO_CACHE)
def preview_png(input_path: str, options: dict, result: dict) -> str:
    """A PNG contact sheet beside the rendering (the UI cannot embed an .mp4 or a large GIF): the same
    2D input and predicted poses, a few frames."""
    import numpy as np

    from flows.inference import read_keypoints
    from pipelines import render as R
    from pipelines.safe_pickle import safe_load_npy

    px, w, h = read_keypoints(input_path, **{k: options[k] for k in ("subject", "action", "camera", "width", "height")})
    poses = safe_load_npy(result["out"], kind="infer_input")  # the bounded reader, as for any .npy
    clip = R.Clip(keypoints_px=px, in_view=None, res=(w, h), joints=R.camera_to_display(poses),
                  frames=np.arange(len(poses)), title=f"{Path(input_path).name}: predicted 3D (s_in {result['s_in']})")
    return str(R.write(clip, Path(result["render"]).with_suffix(".preview.png")))


@flow(name=FLOW_NAME, log_prints=True)
@fail_with_reason
def infer_flow(checkpoint: Path, input_path: Path, out: Path, s_in: int | None = None,
               subject: str | None = None, action: str | None = None, camera: int | str | None = None,
               width: float | None = None, height: float | None = None, render: Path | None = None,
               fps: float | None = None) -> dict:
    """Uplift 2D keypoints to 3D poses with a trained checkpoint.

    Args:
        checkpoint: Checkpoint directory, or a run directory holding one.
        input_path: VideoPose3D-format 2D .npz (with subject/action/camera) or a (T, 17, 2) .npy in pixels.
        out: Output .npy: (T, 17, 3) float32, root-relative metres in camera axes.
        s_in: 2D every s_in-th frame; default the checkpoint's largest training stride.
        subject: .npz input: subject, e.g. S9.
        action: .npz input: action, e.g. Walking 1.
        camera: .npz input: camera index 0..3 or H36M camera id (``-p camera=1`` arrives as a number).
        width: Image width in pixels (.npy input).
        height: Image height in pixels (.npy input).
        render: Also draw the result (.png contact sheet, .gif or .mp4).
        fps: The video's frame rate, for the rendering to play in real time (default 50, Human3.6M's).

    Relative paths resolve against the directory the deployments are served from.
    """
    logger = run_logger()
    given = (checkpoint, input_path, out, render)
    checkpoint, input_path, out, render = (resolve_path(p) for p in given)
    log_resolved(zip(given, (checkpoint, input_path, out, render)))
    options = {"s_in": s_in, "subject": subject, "action": action,
               "camera": None if camera is None else str(camera), "width": width,
               "height": height, "render": str(render) if render else None, "fps": fps}
    result = run_infer(str(checkpoint), str(input_path), str(out), options)
    logger.info("infer: %s -> %s (%d frames, s_in %d)", input_path, result["out"], result["frames"], result["s_in"])
    publish_link(result["out"], key=f"{FLOW_NAME}-poses", text=f"3D poses {result['out']}")
    if result["render"]:
        shown = result["render"]
        if image_data_uri(shown) is None:  # an .mp4, or a GIF too large to embed
            shown = preview_png(str(input_path), options, result)
        publish_image(shown, key=f"{FLOW_NAME}-render",
                      description=f"3D poses of {Path(input_path).name} (s_in {result['s_in']}); file {result['render']}")
    return result
