"""Rigid transforms between the sim frame, the robot base and the camera (ROS-free).

The calibration file is a ROS 2 parameter file (``/**: ros__parameters:``) so
that nodes load it with ``--params-file``; :func:`load_calibration` reads the
same file without ROS. Conventions:

* ``sim_from_base``: pose of the robot base in the sim frame (Metaworld world):
  ``p_sim = R @ p_base + t``.
* ``base_from_camera``: pose of the camera in the robot base frame (the paper's
  "camera offset").
* Rotations are given as roll-pitch-yaw [rad] (``*_rpy``, extrinsic x-y-z, i.e.
  R = Rz(yaw) @ Ry(pitch) @ Rx(roll)) and quaternions are always (x, y, z, w),
  the ROS order, where a key ends in ``_quat_xyzw``.
* ``workspace_min`` / ``workspace_max``: the box (sim frame, metres) that every
  commanded hand position is clipped to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml


def rpy_to_matrix(rpy) -> np.ndarray:
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def quat_xyzw_to_matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {list(q)} is not a rotation (norm {n})")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = np.array([(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s])
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = np.zeros(4)
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
        q[3] = (R[k, j] - R[j, k]) / s
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


@dataclass(frozen=True)
class Transform:
    """A rigid transform ``p_to = R @ p_from + t``."""

    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def from_xyz_rpy(cls, xyz, rpy) -> "Transform":
        return cls(rpy_to_matrix(rpy), np.asarray(xyz, dtype=np.float64).reshape(3))

    @classmethod
    def from_xyz_quat_xyzw(cls, xyz, quat_xyzw) -> "Transform":
        return cls(quat_xyzw_to_matrix(quat_xyzw), np.asarray(xyz, dtype=np.float64).reshape(3))

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Transform points (..., 3)."""
        return np.asarray(p, dtype=np.float64) @ self.R.T + self.t

    def rotate(self, R_from: np.ndarray) -> np.ndarray:
        """Express an orientation (rotation matrix in the 'from' frame) in the 'to' frame."""
        return self.R @ R_from

    def inverse(self) -> "Transform":
        return Transform(self.R.T, -self.R.T @ self.t)

    def compose(self, other: "Transform") -> "Transform":
        """``self * other``: first ``other``, then ``self``."""
        return Transform(self.R @ other.R, self.R @ other.t + self.t)


@dataclass(frozen=True)
class Calibration:
    """The calibrated cell: sim <- base, base <- camera, and the workspace box (sim frame)."""

    sim_from_base: Transform
    base_from_camera: Transform
    workspace_min: np.ndarray
    workspace_max: np.ndarray

    @property
    def base_from_sim(self) -> Transform:
        return self.sim_from_base.inverse()

    @property
    def sim_from_camera(self) -> Transform:
        return self.sim_from_base.compose(self.base_from_camera)

    def clip_to_workspace(self, p_sim: np.ndarray) -> np.ndarray:
        return np.clip(p_sim, self.workspace_min, self.workspace_max)

    @classmethod
    def from_params(cls, p: Mapping) -> "Calibration":
        """Build from a flat parameter mapping (the keys of config/calibration.yaml)."""
        def vec(key, n):
            try:
                v = np.asarray(p[key], dtype=np.float64).reshape(-1)
            except KeyError:
                raise ValueError(f"calibration: missing parameter {key!r}") from None
            if v.size != n or not np.all(np.isfinite(v)):
                raise ValueError(f"calibration: {key!r} needs {n} finite numbers, got {list(np.ravel(p[key]))}")
            return v
        lo, hi = vec("workspace_min", 3), vec("workspace_max", 3)
        if np.any(lo >= hi):
            raise ValueError(f"calibration: workspace_min {lo.tolist()} must be below workspace_max {hi.tolist()}")
        return cls(
            sim_from_base=Transform.from_xyz_rpy(vec("sim_from_base_xyz", 3), vec("sim_from_base_rpy", 3)),
            base_from_camera=Transform.from_xyz_quat_xyzw(vec("base_from_camera_xyz", 3),
                                                          vec("base_from_camera_quat_xyzw", 4)),
            workspace_min=lo, workspace_max=hi,
        )


CALIBRATION_KEYS = ("sim_from_base_xyz", "sim_from_base_rpy", "base_from_camera_xyz",
                    "base_from_camera_quat_xyzw", "workspace_min", "workspace_max")


def read_ros_params(path: str | Path, node_name: str = "/**") -> dict:
    """The ``ros__parameters`` of a ROS 2 parameter file (wildcard section, then the node's)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"parameter file not found: {path}") from None
    out: dict = {}
    for key in ("/**", node_name, node_name.lstrip("/")):
        section = data.get(key)
        if isinstance(section, dict):
            out.update(section.get("ros__parameters", {}) or {})
    return out


def load_calibration(path: str | Path) -> Calibration:
    return Calibration.from_params(read_ros_params(path))
