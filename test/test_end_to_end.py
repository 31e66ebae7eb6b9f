"""End to end: the shipped agent drives the simulated iiwa through the full ROS 2 graph
(sim_arm, real2sim, policy, sim2real, sequencer, monitor as separate processes over real rclpy),
started by legion-demo on a shortened sequence."""
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
