"""legion-robot: chain, check-urdf and reach, run in-process through main(args)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from legion_bridge import robot_cli
from legion_bridge.paths import urdf_path
from legion_policy.observation_layout import HAND_FROM_TCP_M

UPRIGHT_AT_ORIGIN = ["--base-xyz", "0", "0", "0", "--base-rpy", "0", "0", "1.5707963267948966"]


def _run(capsys, *args):
    rc = robot_cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("model,heights", [("iiwa7", (0.34, 0.74, 1.14)), ("iiwa14", (0.36, 0.78, 1.18))])
def test_chain_prints_datasheet_heights(capsys, model, heights):
    rc, out, _ = _run(capsys, "chain", "--model", model)
    assert rc == 0
    z = {}
    for line in out.splitlines():
        m = re.match(r"(\w+)\s+\S+\s+\w+\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)", line)
        if m:
            z[m.group(1)] = float(m.group(4))
    assert z["link_2"] == z["link_3"] == pytest.approx(heights[0])
    assert z["link_4"] == z["link_5"] == pytest.approx(heights[1])
    assert z["link_6"] == z["link_7"] == pytest.approx(heights[2])
    assert z["tool0"] == pytest.approx(heights[2] + 0.126)
    assert "tcp" in z and "[-120, +120] deg" in out


def test_check_urdf_accepts_the_shipped_models(capsys):
    for name in ("iiwa7", "iiwa14"):
        rc, out, err = _run(capsys, "check-urdf", str(urdf_path(f"{name}.urdf")))
        assert rc == 0 and out.startswith("ok:") and err == ""


@pytest.mark.parametrize("edit,reason", [
    (lambda s: re.sub(r'(<joint name="joint_a3"[\s\S]*?)<limit [^>]*/>', r"\1", s, count=1), "without <limit>"),
    (lambda s: s.replace('name="joint_a7"', 'name="joint_7"'), "expected the 7 revolute joints"),
    (lambda s: re.sub(r'<joint name="gripper_tcp"[\s\S]*?</joint>', "", s).replace('<link name="tcp"/>', ""),
     "no link named 'tcp'"),
])
def test_check_urdf_rejects_with_one_line_reason(capsys, tmp_path, edit, reason):
    bad = tmp_path / "bad.urdf"
    bad.write_text(edit(Path(urdf_path("iiwa7.urdf")).read_text()))
    rc, out, err = _run(capsys, "check-urdf", str(bad))
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("invalid:") and reason in err


def test_check_urdf_missing_file(capsys, tmp_path):
    rc, _, err = _run(capsys, "check-urdf", str(tmp_path / "nope.urdf"))
    assert rc == 1 and "no such file" in err


def test_task_points_are_metaworld_resets():
    pts = robot_cli.task_points("reach-v3", 4, 0)
    assert pts.shape == (4, 3, 3)
    # hand start: the fingertip centre, HAND_FROM_TCP_M below the hand body's start (0, 0.6, 0.2)
    hand_start_tcp = np.array([0, 0.6, 0.2]) - np.asarray(HAND_FROM_TCP_M)
    np.testing.assert_allclose(pts[:, 0], np.broadcast_to(hand_start_tcp, (4, 3)), atol=0.01)
    # objects and goals inside Metaworld's sampling ranges for reach-v3
    assert np.all((pts[:, 1] >= [-0.1, 0.6, 0.02 - 1e-9]) & (pts[:, 1] <= [0.1, 0.7, 0.02 + 1e-9]))
    assert np.all((pts[:, 2] >= [-0.1, 0.8, 0.05]) & (pts[:, 2] <= [0.1, 0.9, 0.3]))
    assert len({tuple(p) for p in pts[:, 2].round(6)}) == 4  # distinct task instances


def test_reach_from_the_calibrated_pose_and_from_a_bad_one(capsys):
    rc, out, _ = _run(capsys, "reach", "--tasks", "reach-v3,push-v3", "--instances", "4", "--json")
    assert rc == 0
    rep = json.loads(out)
    assert rep["total"] == 2 * 4 * 3 and rep["fraction"] == 1.0
    assert set(rep["tasks"]) == {"reach-v3", "push-v3"}
    # the Sawyer's place (base at the origin, upright) misses the far goals, as metaworld-v3.md says
    rc, out, _ = _run(capsys, "reach", "--tasks", "reach-v3", "--instances", "8", "--json", *UPRIGHT_AT_ORIGIN)
    rep = json.loads(out)
    assert rep["tasks"]["reach-v3"]["per_kind"]["goal"] < 0.5
    assert rep["worst"][0]["reachable"] is False and rep["worst"][0]["kind"] == "goal"
    # far away: nothing reachable; --require turns that into exit status 1
    rc, out, err = _run(capsys, "reach", "--tasks", "reach-v3", "--instances", "2",
                        "--base-xyz", "0", "-2", "0", "--require", "0.5")
    assert rc == 1 and "ALL" in out and "below the required" in err
    assert re.search(r"ALL\s+0/6", out)


def test_reach_user_errors_are_one_line(capsys, tmp_path):
    rc, _, err = _run(capsys, "reach", "--tasks", "no-such-task-v3", "--instances", "1")
    assert rc == 2 and "unknown Metaworld task" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run(capsys, "reach", "--tasks", "reach-v3", "--calibration", "x.yaml", "--base-xyz", "0", "0", "0")
    assert rc == 2 and "either --calibration" in err
    rc, _, err = _run(capsys, "reach", "--tasks", "reach-v3", "--calibration", str(tmp_path / "missing.yaml"))
    assert rc == 2 and "not found" in err


@pytest.mark.slow
def test_mt10_reachability_acceptance(capsys):
    """Acceptance: >= 99.5% of MT10 hand-start/object/goal points (25 instances per task) within 1 mm."""
    rc, out, _ = _run(capsys, "reach", "--mt10", "--instances", "25", "--json", "--require", "0.995")
    rep = json.loads(out)
    assert rc == 0, out
    assert rep["total"] == 10 * 25 * 3
    assert rep["fraction"] >= 0.995
