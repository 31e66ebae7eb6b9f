"""Videos of the cell: states logged during the run re-render the same scene afterwards."""
from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from legion_bridge.calibration import CALIBRATION_KEYS, read_ros_params
from legion_bridge.paths import config_path
from legion_bridge.sim.sim_arm import SimArm
from legion_bridge.sim.video import StateLog, render_state_log


def test_logged_states_render_to_a_video_of_the_moving_arm(tmp_path):
    cal = {k: v for k, v in read_ros_params(config_path("calibration.yaml")).items() if k in CALIBRATION_KEYS}
    sim = SimArm("reach-v3", "iiwa7", config_path("calibration.yaml"), seed=3)
    log = StateLog("reach-v3", "iiwa7", 3, cal, fps=10.0)
    log.append(sim.time, sim.cell.data.qpos)
    target = sim.joint_positions() + np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    sim.command_positions(target)
    for _ in range(3):
        sim.step(200)
        log.append(sim.time, sim.cell.data.qpos)
    path = log.save(tmp_path / "states.npz")
    assert render_state_log(path, tmp_path / "v.gif", size=(160, 120)) == 4
    frames = imageio.mimread(tmp_path / "v.gif")
    assert len(frames) == 4 and frames[0].shape[:2] == (120, 160)
    # the first joint turned: the picture changed
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5
    # a long run is thinned to evenly spaced frames, first and last kept
    assert render_state_log(path, tmp_path / "short.gif", size=(160, 120), max_frames=2) == 2
    short = imageio.mimread(tmp_path / "short.gif")
    assert np.array_equal(short[0], frames[0]) and np.array_equal(short[-1], frames[-1])


def test_a_log_of_another_cell_is_refused(tmp_path):
    cal = {k: v for k, v in read_ros_params(config_path("calibration.yaml")).items() if k in CALIBRATION_KEYS}
    log = StateLog("reach-v3", "iiwa7", 0, cal, fps=10.0)
    log.append(0.0, np.zeros(5))
    path = log.save(tmp_path / "states.npz")
    with pytest.raises(ValueError, match="do not fit the rebuilt cell"):
        render_state_log(path, tmp_path / "v.gif")
