"""Pictures of a corpus sequence: 2D keypoints inside the camera's image and the 3D skeleton from two angles.

What a user wants to see after a build: are the people in the picture, and are left and right right.
Each frame is one row of three panels::

    [ 2D: the image rectangle (res_w x res_h pixels), keypoints, joints out of view marked x ]
    [ 3D front view ]  [ 3D side view ]      (z up, metres, centred on the pelvis)

The subject's left side is drawn in blue, the right in orange, the spine in grey (``LEFT_COLOUR`` ...).
An optional second skeleton (a prediction) is drawn dashed over the first (the ground truth).

Outputs: ``.png`` (a contact sheet of a few frames), ``.gif`` (Pillow) or ``.mp4`` (the ffmpeg binary
shipped by ``imageio-ffmpeg``). Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.cameras import denormalize_pixels
from schemas.errors import InputError
from schemas.skeletons import H36M_17, Skeleton

LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = "tab:blue", "tab:orange", "0.35"
PRED_COLOUR = "tab:green"
FORMATS = (".png", ".gif", ".mp4")
VIEW_ANGLES = ((10.0, 0.0), (10.0, 90.0))  # (elevation, azimuth from the body's facing direction): front, left side


@dataclass
class Clip:
    """What one picture shows. T frames, J joints.

    keypoints_px: (T, J, 2) pixels; in_view: (T, J) bool; joints: (T, J, 3) metres, z up;
    pred: optional (T, J, 3) metres, z up, drawn dashed over ``joints``; frames: (T,) frame numbers.
    """

    keypoints_px: np.ndarray | None
    in_view: np.ndarray | None
    res: tuple[float, float]
    joints: np.ndarray
    frames: np.ndarray
    title: str = ""
    pred: np.ndarray | None = None
    skeleton: Skeleton = H36M_17
    label: str = ""  # short prefix of each row's title (the figure title holds ``title``)
    note: str = ""  # said under the 2D panel (e.g. a ceiling camera's upside-down image)

    def __post_init__(self):
        # One 3D viewpoint for the whole clip (the body's mean facing), so the axes do not swing.
        self.azimuth = clip_azimuth(np.asarray(self.joints), self.skeleton) if len(self.joints) else 0.0


def camera_to_display(x: np.ndarray) -> np.ndarray:
    """Camera axes (x right, y down, z forward) -> display axes (x right, y forward, z up): (..., 3)."""
    x = np.asarray(x)
    return np.stack([x[..., 0], x[..., 2], -x[..., 1]], axis=-1)


def joint_colours(skel: Skeleton) -> list[str]:
    """(J,) colour per joint (and per bone, by its child joint): left blue, right orange, centre grey."""
    out = [CENTRE_COLOUR] * skel.num_joints
    for j in skel.left:
        out[j] = LEFT_COLOUR
    for j in skel.right:
        out[j] = RIGHT_COLOUR
    return out


def in_image(px: np.ndarray, res: tuple[float, float]) -> np.ndarray:
    """(T, J) bool: the pixel lies inside the ``res = (width, height)`` rectangle."""
    w, h = res
    return (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)


def view_box(keypoints_px: np.ndarray | None, res: tuple[float, float], margin: float = 0.25,
             min_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The 2D panel's square window ``(lo, hi)`` in pixels, the same for every frame of a clip: the
    person's box over the whole clip plus ``margin`` of its size, at least ``min_fraction`` of the image
    width, never beyond one image size outside the image (a person filling 20 % of the frame is drawn
    large enough to read). No keypoints: the whole image plus a margin."""
    w, h = res
    if keypoints_px is None or not np.isfinite(keypoints_px).any():
        side, centre = 1.2 * max(w, h), np.array([w / 2, h / 2])
    else:
        pts = keypoints_px.reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(1)]
        lo, hi = np.maximum(pts.min(0), [-w, -h]), np.minimum(pts.max(0), [2 * w, 2 * h])
        side = max(float((hi - lo).max()) * (1 + 2 * margin), min_fraction * w)
        centre = (lo + hi) / 2
    return centre - side / 2, centre + side / 2


def _draw_2d(ax, clip: Clip, i: int) -> None:
    w, h = clip.res
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((0, 0), w, h, fill=True, facecolor="0.95", edgecolor="0.2", lw=1.0))
    lo, hi = view_box(clip.keypoints_px, clip.res)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    zoom = f"{w:.0f} x {h:.0f} px image" + (", zoomed" if (hi - lo).max() < 0.99 * max(w, h) else "")
    ax.set_xlabel("\n".join(x for x in (zoom, clip.note) if x), fontsize=8)
    if clip.keypoints_px is None:
        return
    px, colours, skel = clip.keypoints_px[i], joint_colours(clip.skeleton), clip.skeleton
    for j, p in enumerate(skel.parents):
        if p >= 0:
            ax.plot(px[[p, j], 0], px[[p, j], 1], color=colours[j], lw=2)
    vis = clip.in_view[i] if clip.in_view is not None else in_image(px, clip.res)
    ax.scatter(px[vis, 0], px[vis, 1], s=10, c=[colours[j] for j in np.flatnonzero(vis)], zorder=3)
    if (~vis).any():
        ax.scatter(px[~vis, 0], px[~vis, 1], s=40, marker="x", c="red", zorder=4, label="out of view")
        n = int((~vis).sum())
        ax.text(0.02, 0.02, f"{n} joint{'s' * (n != 1)} out of view", color="red", fontsize=8, transform=ax.transAxes)


def facing_azimuth(joints: np.ndarray, skel: Skeleton = H36M_17) -> float:
    """Azimuth in degrees (matplotlib's ``view_init``) of the direction the body faces, from its hips.

    joints: (J, 3), z up. Facing = (left hip - right hip) x up; a viewer placed there sees the front.
    """
    hips = joints[skel.left[0]] - joints[skel.right[0]]
    forward = np.cross(hips, [0.0, 0.0, 1.0])
    return float(np.degrees(np.arctan2(forward[1], forward[0])))


def clip_azimuth(joints: np.ndarray, skel: Skeleton = H36M_17) -> float:
    """One facing azimuth (degrees) for a whole clip ``(T, J, 3)``, z up: that of the mean of the per-frame
    hip directions (the first frame's when the body turns about itself so that they cancel out)."""
    hips = joints[:, skel.left[0]] - joints[:, skel.right[0]]
    hips[:, 2] = 0.0
    norms = np.linalg.norm(hips, axis=1, keepdims=True)
    mean = (hips / np.where(norms > 0, norms, 1.0)).mean(0)
    body = np.zeros((skel.num_joints, 3))
    body[skel.left[0]] = mean if np.linalg.norm(mean) >= 0.2 else hips[0]
    return facing_azimuth(body, skel)


def _draw_3d(ax, clip: Clip, i: int, elev: float, azim: float, radius: float = 1.0) -> None:
    skel, colours = clip.skeleton, joint_colours(clip.skeleton)
    centre = clip.joints[i, skel.root]
    for joints, style, single in ((clip.joints[i], "-", None), (None if clip.pred is None else clip.pred[i], "--", PRED_COLOUR)):
        if joints is None:
            continue
        x = joints - centre if single is None else joints - joints[skel.root]
        for j, p in enumerate(skel.parents):
            if p >= 0:
                ax.plot(x[[p, j], 0], x[[p, j], 1], x[[p, j], 2], style, color=single or colours[j], lw=2)
    ax.view_init(elev=elev, azim=azim + clip.azimuth)
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_zlim(-radius, radius)
    ax.set_box_aspect((1, 1, 1), zoom=1.25)  # the cube fills its panel: a body big enough to read
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])


def _figure(rows: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10.5, 3.6 * rows), dpi=100)
    return fig


def _panels(fig, rows: int, row: int):
    ax2 = fig.add_subplot(rows, 3, 3 * row + 1)
    ax_a = fig.add_subplot(rows, 3, 3 * row + 2, projection="3d")
    ax_b = fig.add_subplot(rows, 3, 3 * row + 3, projection="3d")
    return ax2, ax_a, ax_b


def _draw_row(fig, axes, clip: Clip, i: int, label: str) -> None:
    ax2, ax_a, ax_b = axes
    _draw_2d(ax2, clip, i)
    ax2.set_title(label, fontsize=9)
    for ax, (elev, azim), name in zip((ax_a, ax_b), VIEW_ANGLES, ("3D front", "3D left side")):
        _draw_3d(ax, clip, i, elev, azim)
        ax.set_title(name + (" (dashed: prediction)" if clip.pred is not None else ""), fontsize=9)


def _legend(fig, pred: bool = False) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=LEFT_COLOUR, lw=2, label="left"),
               Line2D([], [], color=RIGHT_COLOUR, lw=2, label="right"),
               Line2D([], [], color="red", marker="x", lw=0, label="out of view")]
    if pred:
        handles.append(Line2D([], [], color=PRED_COLOUR, lw=2, ls="--", label="prediction"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)


def contact_sheet(clip: Clip, out: str | os.PathLike, n_frames: int = 4) -> Path:
    """Write a PNG of ``n_frames`` frames spread evenly over the clip (one row each); returns the path."""
    T = len(clip.joints)
    picks = np.unique(np.linspace(0, T - 1, num=min(n_frames, T)).round().astype(int))
    fig = _figure(len(picks))
    for row, i in enumerate(picks):
        _draw_row(fig, _panels(fig, len(picks), row), clip, int(i), f"{clip.label}frame {int(clip.frames[i])}")
    _legend(fig, clip.pred is not None)
    fig.suptitle(clip.title, fontsize=10)
    return _save(fig, out)


def _save(fig, out: str | os.PathLike) -> Path:
    """Lay out, write and close a figure; returns the path written."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def animation(clip: Clip, out: str | os.PathLike, fps: float = 25.0, step: int = 1, progress=None) -> Path:
    """Write a ``.gif`` (Pillow) or ``.mp4`` (ffmpeg from ``imageio-ffmpeg``) of every ``step``-th frame,
    played at ``fps`` drawn frames a second. ``progress``: optional ``callback(frames_drawn, frames)``."""
    import matplotlib.pyplot as plt
    from matplotlib import animation as anim

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure(1)
    axes = _panels(fig, 1, 0)
    _legend(fig, clip.pred is not None)
    fig.suptitle(clip.title, fontsize=10)

    def draw(i):
        for ax in axes:
            ax.cla()
        _draw_row(fig, axes, clip, int(i), f"{clip.label}frame {int(clip.frames[i])}")
        return axes

    frames = range(0, len(clip.joints), max(1, step))
    if out.suffix == ".gif":
        writer = anim.PillowWriter(fps=fps)
    else:
        import matplotlib
        import imageio_ffmpeg

        matplotlib.rcParams["animation.ffmpeg_path"] = imageio_ffmpeg.get_ffmpeg_exe()
        writer = anim.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    ani = anim.FuncAnimation(fig, draw, frames=frames, blit=False, cache_frame_data=False)
    callback = None if progress is None else (lambda i, n: progress(i + 1, n))
    ani.save(str(out), writer=writer, progress_callback=callback)
    plt.close(fig)
    return out


MAX_DRAWN_FPS = 25.0  # animations draw at most this many frames a second of motion


def playback(fps: float, max_drawn_fps: float = MAX_DRAWN_FPS) -> tuple[float, int]:
    """``(drawn frames a second, step)`` that play a ``fps`` clip in real time drawing every ``step``-th
    frame: 50 Hz -> every 2nd frame at 25 frames/s; 25 Hz or less -> every frame at ``fps``."""
    if not fps > 0:
        raise InputError("--fps", f"frame rate {fps!r} must be positive")
    step = max(1, int(round(float(fps) / max_drawn_fps)))
    return float(fps) / step, step


def write(clip: Clip, out: str | os.PathLike, *, n_frames: int = 4, fps: float = 25.0, step: int = 1,
          source_fps: float | None = None, progress=None) -> Path:
    """Dispatch on the file suffix: ``.png`` contact sheet, ``.gif`` / ``.mp4`` animation.

    ``source_fps``: the clip's real frame rate; animations then play in real time (``playback``) and
    ``fps``/``step`` are ignored. ``progress``: ``callback(frames_drawn, frames)`` while animating."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(out, f"cannot render to {suffix or '(no suffix)'}: use one of {', '.join(FORMATS)}")
    if len(clip.joints) == 0:
        raise InputError(out, "nothing to render: the frame range is empty")
    if suffix == ".png":
        return contact_sheet(clip, out, n_frames=n_frames)
    if source_fps is not None:
        fps, step = playback(source_fps)
    return animation(clip, out, fps=fps, step=step, progress=progress)


# ---------------------------------------------------------------------------------------------------
# From a corpus
# ---------------------------------------------------------------------------------------------------


def parse_frames(spec: str | None, n: int, where: str = "--frames") -> slice:
    """``"A:B"`` (either side may be empty, negatives count from the end) -> a slice within ``[0, n)``."""
    if not spec:
        return slice(0, n)
    a, sep, b = str(spec).partition(":")
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if sep and b.strip() else (n if sep else start + 1)
    except ValueError:
        raise InputError(where, f"frame range {spec!r} is not A:B with integers A and B") from None
    start, stop, _ = slice(start, stop).indices(n)
    if stop <= start:
        raise InputError(where, f"frame range {spec!r} selects no frame of the {n} frames")
    return slice(start, stop)


def corpus_clip(reader, key: str, view: int = 0, frames: str | None = None) -> Clip:
    """A ``Clip`` of sequence ``key`` (its ``view``-th camera, 0-based) read through ``CorpusReader``.

    3D: the world joints (z up). 2D: the view's keypoints in pixels, with the stored in-view flags.
    """
    if not reader.has_sequence(key):
        import difflib

        keys = reader.sequences.column("key").to_pylist()
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"e.g. {', '.join(map(repr, sorted(keys)[:3]))}"
        raise InputError(f"{reader.path}@{reader.version_id}", f"no sequence {key!r} among its {len(keys)}; {hint}") from None
    view_rows = reader.view_rows(key)
    if not 0 <= view < len(view_rows):
        raise InputError(f"{reader.path}@{reader.version_id}",
                         f"sequence {key!r} has {len(view_rows)} views; --view {view} is not in 0..{len(view_rows) - 1}")
    joints = np.asarray(reader.read_sequence(key)["joints_world"], np.float64)
    sl = parse_frames(frames, len(joints))
    vrow = view_rows[view]
    vid = int(vrow["view_id"])
    v = reader.read_view(vid, sl.start, sl.stop)
    intr, _ = reader.camera(vid)
    res = (float(intr[9]), float(intr[10]))
    px = denormalize_pixels(np.asarray(v["keypoints_2d"]), *res)
    cam = vrow.get("camera_id") or ""
    _, extr = reader.camera(vid)
    note = camera_note(extr)
    return Clip(keypoints_px=px, in_view=np.asarray(v["in_view"], bool), res=res, joints=joints[sl],
                frames=np.arange(sl.start, sl.stop),
                title=f"{reader.path.name}: {key}, view {view} (camera {cam}{', ' + note if note else ''})",
                label=f"view {view} ({cam}) ", note=note)


def camera_note(extrinsics: np.ndarray) -> str:
    """What a viewer should know about a camera's picture, from its world(z up)-to-camera ``[R | t]``
    (3, 4): a camera whose image "down" points up in the world (MPI-INF-3DHP's ceiling cameras 11-13
    look down from above and are mounted so) shows people upside down; one looking steeply down
    shows them from above. Empty for an ordinary camera."""
    R = np.asarray(extrinsics, np.float64)[:, :3]
    image_down_z, forward_z = R[1, 2], R[2, 2]
    if image_down_z > 0:
        return "ceiling camera: people appear upside down"
    if forward_z < -0.7:
        return "ceiling camera, looking down"
    return ""


def render_sequence(reader, key: str, out: str | os.PathLike, *, view: int = 0, frames: str | None = None,
                    n_frames: int = 4, progress=None) -> Path:
    """``mocap-corpus show``: render one sequence of a corpus version to ``out`` (.png/.gif/.mp4)."""
    clip = corpus_clip(reader, key, view, frames)
    return write(clip, out, n_frames=n_frames, source_fps=float(reader.fps), progress=progress)


def corpus_overview(reader, out: str | os.PathLike, n_sequences: int = 3, views: int = 2) -> Path | None:
    """A contact sheet of a few sequences x views (first frame, middle, last) for the build artifacts.

    Picks the first ``n_sequences`` keys in sorted order (deterministic), ``views`` views each, and
    stacks their rows in one PNG. Returns None for an empty corpus.
    """
    keys = sorted(reader.sequences.column("key").to_pylist())[:n_sequences]
    clips = []
    for k in keys:
        nv = len(reader.view_rows(k))
        clips += [(k.rsplit("/", 1)[-1], corpus_clip(reader, k, v)) for v in range(min(views, nv))]
    if not clips:
        return None
    fig = _figure(len(clips))
    for row, (name, clip) in enumerate(clips):
        mid = len(clip.joints) // 2
        _draw_row(fig, _panels(fig, len(clips), row), clip, mid, f"{name[-24:]} {clip.label}frame {int(clip.frames[mid])}")
    _legend(fig)
    fig.suptitle(f"{reader.path.name} @ {reader.version_id}: {len(keys)} of {reader.sequences.num_rows} sequences",
                 fontsize=10)
    return _save(fig, out)
