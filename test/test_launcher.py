"""legion-launch over real rclpy: processes exchange messages, shut down cleanly, report dead nodes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

from rosutil import ros_context, spin_until

pytestmark = pytest.mark.ros
LAUNCH = [str(Path(sys.executable).parent / "legion-launch")]


def start_launcher(*args: str) -> subprocess.Popen:
    return subprocess.Popen(LAUNCH + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy())


def test_launcher_runs_a_node_that_talks_to_us_and_stops_cleanly_on_sigint():
    proc = start_launcher("real", "--only", "monitor")
    try:
        with ros_context() as (ctx, executor):
            from rclpy.node import Node

            node = Node("launcher_test", context=ctx)
            executor.add_node(node)
            pub = node.create_publisher(JointState, "/joint_states", 10)
            reports = []
            node.create_subscription(DiagnosticArray, "/diagnostics",
                                     lambda m: reports.extend(s for s in m.status if s.name == "monitor: /joint_states"),
                                     10)
            sent: list[float] = []
            stop = threading.Event()

            def publish():
                msg = JointState(name=[f"joint_a{i}" for i in range(1, 8)], position=[0.0] * 7)
                nxt = time.monotonic()
                while not stop.is_set():
                    pub.publish(msg)
                    sent.append(time.monotonic())
                    nxt += 0.005
                    time.sleep(max(0.0, nxt - time.monotonic()))

            t = threading.Thread(target=publish, daemon=True)
            t.start()
            try:
                def measured():
                    return [s for s in reports if int(dict((kv.key, kv.value) for kv in s.values)["count"]) > 300]
                assert spin_until(executor, lambda: len(measured()) >= 1, timeout_s=30.0), \
                    f"no rate report from the monitor process; got {len(reports)} reports"
            finally:
                stop.set()
                t.join()
            window = [x for x in sent if x > sent[-1] - 2.0]
            sent_rate = (len(window) - 1) / (window[-1] - window[0])
            rate = float(dict((kv.key, kv.value) for kv in measured()[-1].values)["rate_hz"])
            assert abs(rate - sent_rate) < 0.15 * sent_rate, (rate, sent_rate)
            node.destroy_node()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "[legion-launch] started monitor" in out
    assert "SIGINT: shutting the graph down" in out
    assert "Traceback" not in out


def test_a_dead_required_node_stops_the_graph_and_is_named(tmp_path):
    broken = tmp_path / "broken_calibration.yaml"
    broken.write_text("/**:\n  ros__parameters:\n    sim_from_base_xyz: [0.0, 0.0\n")  # not YAML
    proc = start_launcher("real", "--only", "real2sim,monitor", "--set", f"calibration:={broken}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "required node real2sim died" in out
    assert "[legion-launch] started monitor" in out


def test_launcher_refuses_bad_arguments_with_one_line():
    proc = start_launcher("sim", "--set", "enable:=perhaps")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out.strip() == "legion-launch: launch argument enable: expected true or false, got 'perhaps'"


def test_two_project_processes_talk_through_the_launcher():
    """sim_arm publishes /joint_states (and /clock); the monitor, on simulation time, measures them."""
    proc = start_launcher("sim", "--only", "sim_arm,monitor", "--set", "scene:=reach-v3")
    try:
        with ros_context() as (ctx, executor):
            from rclpy.node import Node

            node = Node("launcher_test_pair", context=ctx)
            executor.add_node(node)
            reports = []
            node.create_subscription(DiagnosticArray, "/diagnostics",
                                     lambda m: reports.extend(s for s in m.status if s.name == "monitor: /joint_states"),
                                     10)

            def values(s):
                return {kv.key: kv.value for kv in s.values}

            def settled():
                return [s for s in reports if int(values(s)["count"]) > 1000]
            assert spin_until(executor, lambda: bool(settled()), timeout_s=120.0), \
                f"no report of sim_arm's joint states from the monitor; reports: {len(reports)}"
            last = settled()[-1]
            node.destroy_node()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # 200 Hz in simulation time, as the FRI driver: the monitor's expectation in config/monitor.yaml
    assert abs(float(values(last)["rate_hz"]) - 200.0) < 10.0, values(last)
    assert last.level == b"\x00", last.message
    assert proc.returncode == 0, out
    assert "[legion-launch] started sim_arm" in out and "[legion-launch] started monitor" in out


def test_legion_launch_sim_without_arguments_lists_the_default_sequence_on_its_scene():
    """What `legion-launch sim` starts, printed by the command itself: the sequencer on DEFAULT_SIM_SEQUENCE
    (workbench), sim_arm on that file's scene, real2sim and sim2real with the calibration file."""
    from legion_bridge.graph import DEFAULT_SIM_SEQUENCE
    from legion_bridge.paths import config_path

    proc = subprocess.run(LAUNCH + ["sim", "--list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert set(lines) == {"sim_arm", "real2sim", "policy", "sim2real", "sequencer", "monitor", "description"}
    assert DEFAULT_SIM_SEQUENCE == "sequences/workbench.yaml"
    assert f"-p sequence_file:={config_path('sequences', 'workbench.yaml')}" in lines["sequencer"]
    assert "-p scene:=workbench" in lines["sim_arm"]
    for node in ("real2sim", "sim2real", "sim_arm"):
        assert f"--params-file {config_path('calibration.yaml')}" in lines[node], node


def test_legion_launch_sim_without_arguments_runs_the_default_sequence_to_success():
    """`legion-launch sim`, nothing else: the shipped agent runs the workbench sequence and the graph exits 0 with
    the sequencer (the same run as `ros2 launch legion_bridge sim_robot.launch.py`, test_workstation; ~40 s)."""
    proc = start_launcher("sim")
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-4000:]
    assert "sequence 'workbench-tidy': SUCCEEDED" in out, out[-4000:]
    assert "[legion-launch] sequencer finished: shutting the graph down" in out
    assert "Traceback" not in out
