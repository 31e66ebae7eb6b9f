"""Calibration fitting (docs/calibration.md) on synthetic measurements made with the real kinematics."""
from __future__ import annotations

import numpy as np
import pytest

from bridge_fixtures import cell
from legion_bridge.calibration import Calibration, Transform, rpy_to_matrix
from legion_bridge.cell_calibration import (calibration_params, fit_base_from_camera, fit_sim_from_base,
                                            matrix_to_rpy)

MODEL, KIN, CAL, HAND, _ = cell()


def test_base_pose_from_touched_points_recovers_the_calibration_within_the_touch_noise():
    rng = np.random.default_rng(0)
    true = CAL.sim_from_base
    # the tcp touches 8 marked table points (sim frame) at two heights; FK reports them in the base frame
    pts_sim = np.array([[x, y, z] for x in (-0.2, 0.2) for y in (0.5, 0.8) for z in (0.0, 0.15)])
    q = KIN.ik(true.inverse().apply(pts_sim)).q
    pts_base, _ = KIN.fk(q)
    noisy = pts_sim + rng.normal(0.0, 0.0005, pts_sim.shape)  # 0.5 mm touch-up error
    fit = fit_sim_from_base(pts_base, noisy)
    assert np.max(np.abs(fit.transform.t - true.t)) < 2e-3
    assert np.degrees(np.arccos((np.trace(fit.transform.R.T @ true.R) - 1) / 2)) < 0.3
    assert fit.rms_m < 1.5e-3
    exact = fit_sim_from_base(pts_base, pts_sim)
    np.testing.assert_allclose(exact.transform.R, true.R, atol=1e-6)
    assert exact.rms_m < 1e-5
    with pytest.raises(ValueError, match="collinear"):
        fit_sim_from_base([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    with pytest.raises(ValueError, match=">= 3"):
        fit_sim_from_base([[0, 0, 0]], [[0, 0, 0]])


def test_camera_extrinsics_from_a_tag_on_the_flange():
    rng = np.random.default_rng(1)
    base_from_camera = Transform.from_xyz_rpy([0.8, -0.3, 0.9], [2.6, 0.1, -1.2])
    flange_from_tag = Transform.from_xyz_rpy([0.0, 0.05, 0.02], [0.0, 0.0, 0.3])
    bft, cft = [], []
    for _ in range(10):
        q = rng.uniform(MODEL.lower * 0.5, MODEL.upper * 0.5)
        T = KIN.link_poses(q)[KIN.link_names.index("tool0")]
        base_from_tag = Transform(T[:3, :3], T[:3, 3]).compose(flange_from_tag)
        seen = base_from_camera.inverse().compose(base_from_tag)  # what a perfect detector reports
        noise = Transform.from_xyz_rpy(rng.normal(0, 0.001, 3), rng.normal(0, 0.002, 3))
        bft.append(base_from_tag)
        cft.append(seen.compose(noise))
    fit = fit_base_from_camera(bft, cft)
    assert np.max(np.abs(fit.transform.t - base_from_camera.t)) < 5e-3
    assert np.max(fit.rotation_residuals_rad) < 0.02
    # the fitted values round-trip through the calibration file keys
    params = calibration_params(CAL.sim_from_base, fit.transform)
    cal = Calibration.from_params({**params, "workspace_min": CAL.workspace_min, "workspace_max": CAL.workspace_max})
    np.testing.assert_allclose(cal.sim_from_base.R, CAL.sim_from_base.R, atol=1e-12)
    np.testing.assert_allclose(cal.base_from_camera.R, fit.transform.R, atol=1e-12)


@pytest.mark.parametrize("rpy", [[0.1, -0.4, 2.0], [3.141592653589793, 0.0, 1.5707963267948966], [0.3, 1.5707963267948966, 0.2]])
def test_rpy_round_trip(rpy):
    R = rpy_to_matrix(rpy)
    np.testing.assert_allclose(rpy_to_matrix(matrix_to_rpy(R)), R, atol=1e-9)
