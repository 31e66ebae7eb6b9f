"""Videos of the simulated cell.

Rendering inside the control loop slows the simulation far below real time on a CPU-only
machine (software EGL), which changes what the graph experiences. So the cell's states are
logged cheaply while it runs (:class:`StateLog`, a few hundred bytes per frame) and rendered
afterwards (:func:`render_state_log`) with the same scene, robot, seed and calibration.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Free video camera: point looked at (sim frame, m), distance [m], azimuth and elevation [deg].
VIDEO_LOOKAT = (0.0, 0.7, 0.35)
VIDEO_DISTANCE = 2.0
VIDEO_AZIMUTH = 120.0
VIDEO_ELEVATION = -20.0


def free_camera():
    """A view of the workspace from the front left."""
    import mujoco

    cam = mujoco.MjvCamera()
    cam.lookat[:] = VIDEO_LOOKAT
    cam.distance, cam.azimuth, cam.elevation = VIDEO_DISTANCE, VIDEO_AZIMUTH, VIDEO_ELEVATION
    return cam


class StateLog:
    """Simulation time and qpos at video frame times, with what is needed to rebuild the cell."""

    def __init__(self, scene: str, robot_model: str, seed: int, calibration: dict, fps: float) -> None:
        self.meta = {"scene": scene, "robot_model": robot_model, "seed": int(seed),
                     "calibration": {k: [float(x) for x in v] for k, v in calibration.items()}, "fps": float(fps)}
        self.times: list[float] = []
        self.qpos: list[np.ndarray] = []

    def append(self, t: float, qpos: np.ndarray) -> None:
        self.times.append(float(t))
        self.qpos.append(np.array(qpos, dtype=np.float64))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, time=np.asarray(self.times), qpos=np.asarray(self.qpos),
                            meta=np.array(json.dumps(self.meta)))
        os.replace(tmp, path)
        return path


def render_state_log(log_path: str | os.PathLike, out_path: str | os.PathLike,
                     size: tuple[int, int] = (480, 360), camera: str = "free", max_frames: int = 0) -> int:
    """Render a :class:`StateLog` file to a video (GIF, or MP4 with imageio-ffmpeg); returns the frame count.

    max_frames > 0 keeps at most that many evenly spaced frames (software rendering costs
    ~0.1-0.5 s a frame on a CPU-only machine); the frame rate is lowered to keep the duration.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    import imageio.v2 as imageio
    import mujoco

    from legion_bridge.calibration import Calibration
    from legion_bridge.sim.cell import Cell

    with np.load(log_path) as data:
        qpos, meta = data["qpos"], json.loads(str(data["meta"]))
    cell = Cell(meta["scene"], meta["robot_model"], Calibration.from_params(meta["calibration"]), meta["seed"])
    model, d = cell.model, mujoco.MjData(cell.model)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq:
        raise ValueError(f"{log_path}: states of size {qpos.shape[-1]} do not fit the rebuilt cell (nq {model.nq})")
    fps = float(meta["fps"])
    if max_frames > 0 and len(qpos) > max_frames:
        keep = np.linspace(0, len(qpos) - 1, max_frames).round().astype(int)
        fps *= max_frames / len(qpos)
        qpos = qpos[keep]
    w, h = size
    cam = camera if camera != "free" else free_camera()
    with mujoco.Renderer(model, height=h, width=w) as renderer, \
            imageio.get_writer(str(out_path), fps=fps) as writer:
        for q in qpos:
            d.qpos[:] = q
            mujoco.mj_forward(model, d)
            renderer.update_scene(d, camera=cam)
            writer.append_data(renderer.render())
    return len(qpos)
