"""End to end: the shipped agent drives the simulated iiwa through the full ROS 2 graph
(sim_arm, real2sim, policy, sim2real, sequencer, monitor as separate processes over real rclpy),
started by legion-demo on a shortened sequence, and on a skill and a scene added only as data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from legion_bridge.paths import config_path, default_agent_path
from legion_policy.agent_format import load_agent

pytestmark = [pytest.mark.ros, pytest.mark.slow]
DEMO = Path(sys.executable).parent / "legion-demo"


def test_shipped_agent_runs_a_shortened_sequence_through_the_sim_graph(tmp_path):
    agent = load_agent(default_agent_path())          # the shipped agent validates
    assert "reach-v3" in agent.skill_names
    proc = subprocess.run([str(DEMO), "--sequence", str(config_path("sequences", "tabletop_reach.yaml")),
                           "--out", str(tmp_path), "--no-video", "--timeout", "300"],
                          capture_output=True, text=True, timeout=420, env=os.environ.copy())
    out = proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    step = report["steps"][0]
    # the exit status is the measured outcome, and the table says the same
    assert proc.returncode == (0 if report["success"] else 1), out[-3000:]
    assert ("SUCCEEDED" if report["success"] else "FAILED") in proc.stdout
    assert "Traceback" not in out, out[out.find("Traceback") - 200:][:4000]  # the whole trace, to diagnose
    # observations flowed through real2sim and were judged by the sequencer all along the step
    # (a success needs k in a row; a timeout means 20 s of them)
    assert step["steps"] >= (step["k_consecutive"] if report["success"] else 100), step
    assert report["invalid_observations"] == 0
    # the agent's actions reached the simulated arm through policy -> sim2real -> sim_arm:
    # the hand got much closer to the goal than where the step started
    assert step["best_distance"] < 0.6 * step["initial_distance"], step


def test_final_table_of_a_failed_sequence_names_each_outcome():
    """A timed-out step and the steps never started after it (their time is null in the report)."""
    from legion_bridge.demo import format_table

    report = {"success": False, "steps": [
        {"skill": "reach-v3", "success": True, "status": "succeeded", "time_s": 1.25, "steps": 90},
        {"skill": "push-v3", "success": False, "status": "timeout", "time_s": 40.0, "steps": 3200},
        {"skill": "button-press-topdown-v3", "success": False, "status": "not_run", "time_s": None, "steps": 0}]}
    lines = format_table(report).splitlines()
    assert lines[0].split() == ["step", "skill", "success", "time", "[s]", "steps"]
    assert lines[2].split() == ["1", "reach-v3", "yes", "1.2", "90"]
    assert lines[3].split() == ["2", "push-v3", "NO", "(timeout)", "40.0", "3200"]
    assert lines[4].split() == ["3", "button-press-topdown-v3", "not", "run", "-", "0"]


def test_a_skill_and_a_scene_added_only_as_data_run_through_the_graph(tmp_path):
    """Issue 23's proof: a copy of the share dir (LEGION_SHARE_DIR) gets one skill entry (the shipped reach network
    re-exposed under a new name and instruction) and one scene file (that skill placed in a new spot) and nothing
    else: sim_arm builds the scene, real2sim tracks its names, the policy runs the new skill, the sequencer derives
    the binding and the move-to to the skill's start, and the sequence succeeds."""
    import shutil

    import numpy as np
    import yaml

    share = tmp_path / "share"
    shutil.copytree(config_path(), share / "config")
    for folder in ("urdf", "agents", "launch"):
        (share / folder).symlink_to(config_path().parent / folder)
    skills_file = share / "config" / "skills.yaml"
    doc = yaml.safe_load(skills_file.read_text())
    reach = next(s for s in doc["skills"] if s["name"] == "reach-v3")
    doc["skills"].append({**reach, "name": "touch-marker", "task": "reach-v3", "network": "reach-v3",
                          "instructions": ["touch the marker in the corner"]})
    skills_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    (share / "config" / "scenes" / "corner.yaml").write_text(yaml.safe_dump({
        "base": "marker", "hand_start": [-0.1, 0.6, 0.2],
        "placements": [{"name": "marker", "skill": "touch-marker", "offset": [0.1, -0.1, 0.0],
                        "object": "corner_puck", "goal": "corner_goal"}]}))
    (tmp_path / "corner.yaml").write_text(yaml.safe_dump({
        "scene": "corner", "name": "corner-touch", "timeout_s": 20.0,
        "steps": [{"skill": "move-to", "timeout_s": 10.0}, {"skill": "touch-marker", "placement": "marker"}]}))
    env = {**os.environ, "LEGION_SHARE_DIR": str(share)}
    # seed 2: reach-v3's instance the shipped tabletop and workbench reach steps start with (their placement 2);
    # seed 0 puts the goal on the table (z 0.05) at the far corner, which the shipped reach misses
    proc = subprocess.run([str(DEMO), "--sequence", str(tmp_path / "corner.yaml"), "--out", str(tmp_path / "run"),
                           "--no-video", "--timeout", "300", "--seed", "2"],
                          capture_output=True, text=True, timeout=420, env=env)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[out.find("Traceback") - 200:][:4000]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert proc.returncode == 0 and report["success"], out[-3000:]
    move, touch = report["steps"]
    # the move-to went to the new skill's derived start: reach's training start + the placement offset
    np.testing.assert_allclose(move["binding"]["goal"], [0.1, 0.5, 0.2], atol=1e-9)
    assert touch["skill"] == "touch-marker" and touch["binding"]["task_offset"] == [0.1, -0.1, 0.0]
    assert touch["binding"]["objects"] == ["corner_puck"] and touch["binding"]["goal_object"] == "corner_goal"
    assert touch["steps"] >= touch["k_consecutive"] and touch["best_distance"] <= 0.05
    # the shipped share dir did not change
    assert "touch-marker" not in (config_path("skills.yaml")).read_text()
