"""Fitting a real cell's calibration from measurements (ROS-free); procedure in docs/calibration.md.

* :func:`fit_sim_from_base`: the robot base pose in the sim (table) frame from points the
  robot's tool-centre point touched (FK, base frame) whose table coordinates are known
  (least-squares rigid fit, Kabsch/Umeyama without scale), with per-point residuals.
* :func:`fit_base_from_camera`: the camera pose in the base frame (the paper's camera offset)
  from a tag on the flange seen by the camera in several arm poses:
  ``base_from_camera = base_from_tag_i * inverse(camera_from_tag_i)`` averaged over the poses
  (rotation: chordal L2 mean; translation: mean), with per-pose residuals.
* :func:`calibration_params`: the keys of config/calibration.yaml for the fitted transforms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from legion_bridge.calibration import Transform, matrix_to_quat_xyzw


@dataclass(frozen=True)
class Fit:
    """A fitted transform and how well it explains the measurements."""

    transform: Transform
    residuals_m: np.ndarray  # per measurement, position residual [m]
    rotation_residuals_rad: np.ndarray | None = None  # per measurement (camera fit) [rad]

    @property
    def rms_m(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_m ** 2)))


def _project_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def fit_sim_from_base(points_base: Sequence, points_sim: Sequence) -> Fit:
    """Rigid transform with ``points_sim ~= R @ points_base + t`` (least squares).

    Needs at least 3 non-collinear points (use 6 or more spread over the workspace, at
    different heights, to average out touch-up errors).
    """
    A = np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
    B = np.asarray(points_sim, dtype=np.float64).reshape(-1, 3)
    if A.shape != B.shape or A.shape[0] < 3:
        raise ValueError(f"need the same number (>= 3) of base and sim points, got {A.shape[0]} and {B.shape[0]}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("calibration points contain NaN or inf")
    ca, cb = A.mean(0), B.mean(0)
    if np.linalg.matrix_rank(A - ca, tol=1e-4) < 2:
        raise ValueError("calibration points are (nearly) collinear: the rotation is not determined")
    R = _project_rotation((B - cb).T @ (A - ca))
    t = cb - R @ ca
    T = Transform(R, t)
    return Fit(T, np.linalg.norm(T.apply(A) - B, axis=1))


def fit_base_from_camera(base_from_tag: Sequence[Transform], camera_from_tag: Sequence[Transform]) -> Fit:
    """Camera pose in the base frame from N >= 1 (use >= 8, varied orientations) tag sightings.

    ``base_from_tag[i]``: the tag's pose from FK (base_from_flange) and the known
    flange_from_tag mounting; ``camera_from_tag[i]``: what the tag detector reported.
    """
    if len(base_from_tag) != len(camera_from_tag) or not base_from_tag:
        raise ValueError("need the same number (>= 1) of FK tag poses and camera tag poses")
    est = [bt.compose(ct.inverse()) for bt, ct in zip(base_from_tag, camera_from_tag)]
    R = _project_rotation(sum(e.R for e in est))
    t = np.mean([e.t for e in est], axis=0)
    T = Transform(R, t)
    pos = np.array([np.linalg.norm(e.t - t) for e in est])
    rot = np.array([np.arccos(np.clip((np.trace(R.T @ e.R) - 1.0) / 2.0, -1.0, 1.0)) for e in est])
    return Fit(T, pos, rot)


def matrix_to_rpy(R: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (extrinsic x-y-z, R = Rz(yaw) Ry(pitch) Rx(roll)), the convention of calibration.yaml."""
    R = np.asarray(R, dtype=np.float64)
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    if abs(np.cos(pitch)) > 1e-9:
        roll = np.arctan2(R[2, 1], R[2, 2])
        yaw = np.arctan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: yaw absorbs roll
        roll = 0.0
        yaw = np.arctan2(-R[0, 1], R[1, 1])
    return np.array([roll, pitch, yaw])


def calibration_params(sim_from_base: Transform, base_from_camera: Transform) -> dict:
    """The transform keys of config/calibration.yaml (lists of floats)."""
    return {
        "sim_from_base_xyz": [float(v) for v in sim_from_base.t],
        "sim_from_base_rpy": [float(v) for v in matrix_to_rpy(sim_from_base.R)],
        "base_from_camera_xyz": [float(v) for v in base_from_camera.t],
        "base_from_camera_quat_xyzw": [float(v) for v in matrix_to_quat_xyzw(base_from_camera.R)],
    }
