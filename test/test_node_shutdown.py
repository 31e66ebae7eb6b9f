"""How a node process ends on Ctrl-C / SIGTERM (``legion_policy.ros_io.run_node``, the entry of every node).

A launcher stops the graph with SIGINT, then SIGTERM. Each node must then exit promptly with status 0 and
print nothing alarming: no ``KeyboardInterrupt`` thrown into whatever Python code the process was running
(inside rclpy's executor that left half-built tasks and an "Exception ignored ... Traceback" at exit), and
no hang when the node was idle, blocked in the executor's wait with no timer to wake it, and the node still
able to log while it is destroyed (its context ends after it).

Real processes over real rclpy: a small node made through ``run_node`` either busy in a timer callback when
the signal lands, or idle with one subscription and nothing published to it. And how one ends that cannot
start: a parameter of the wrong type is the user's input, one line and status 2, no traceback.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

NODE_SCRIPT = r'''
import sys
import time

from rclpy.node import Node
from std_msgs.msg import String

from legion_policy.ros_io import run_node

BUSY_S = 0.5


class TestNode(Node):
    def __init__(self):
        super().__init__("shutdown_test_node")
        if sys.argv[1] == "busy":
            self.create_timer(0.01, self.work)
        else:
            self.create_subscription(String, "/shutdown_test_nothing", lambda _m: None, 1)
        print("started", flush=True)

    def work(self):
        try:
            print("busy", flush=True)
            t0 = time.monotonic()
            while time.monotonic() - t0 < BUSY_S:
                pass
        except KeyboardInterrupt:
            print("INTERRUPTED INSIDE A CALLBACK", flush=True)
            raise

    def destroy_node(self):
        # like sim_arm writing its state log: a node may log on its way out, while its context is still valid
        self.get_logger().info("goodbye from destroy_node")
        super().destroy_node()


sys.exit(run_node(TestNode, None, "shutdown_test"))
'''

#: Seconds a node may take to exit after the signal (its busy callback runs 0.5 s to its end first).
EXIT_WITHIN_S = 5.0


def run_and_signal(tmp_path, mode: str, sig: int) -> tuple[int, str, float]:
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    lines = []
    try:
        ready = "busy" if mode == "busy" else "started"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip() == ready:
                break
        assert lines and lines[-1].strip() == ready, "node did not start:\n" + "".join(lines)
        if mode == "busy":
            time.sleep(0.1)  # inside the 0.5 s callback
        else:
            time.sleep(0.5)  # blocked in the executor's wait
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            out, _ = proc.communicate(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return -999, "".join(lines) + out, time.monotonic() - t0
        return proc.returncode, "".join(lines) + out, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["busy", "idle"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_node_exits_cleanly_on_signal(tmp_path, mode, sig):
    rc, out, took = run_and_signal(tmp_path, mode, sig)
    assert rc != -999, f"{mode} node still running {EXIT_WITHIN_S} s after {sig.name}:\n{out}"
    assert rc == 0, f"{mode} node exited with {rc} after {sig.name}:\n{out}"
    assert "INTERRUPTED INSIDE A CALLBACK" not in out, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert "goodbye from destroy_node" in out, out
    assert "Failed to publish log message" not in out and "context is invalid" not in out, out


def test_a_node_refuses_a_parameter_of_the_wrong_type_with_one_line():
    """`reference_lead_s:=0` (an integer for a double) ends sim2real with its one-line reason, not a traceback."""
    root = Path(__file__).resolve().parent.parent
    exe = Path(sys.executable).parent / "legion_sim2real"
    proc = subprocess.run([str(exe), "--ros-args", "--params-file", str(root / "config" / "topics.yaml"),
                           "--params-file", str(root / "config" / "sim2real.yaml"),
                           "--params-file", str(root / "config" / "calibration.yaml"),
                           "-p", "reference_lead_s:=0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "sim2real:" in proc.stderr and "reference_lead_s" in proc.stderr and "DOUBLE" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("gap_s", [0.05, 0.2, 0.5])
def test_a_repeated_sigint_during_teardown_does_not_kill_the_node(gap_s):
    """Ctrl-C reaches every process of a launch's group and launch then signals each node again: the second
    SIGINT lands in the teardown, after Python's exit would have restored the default handler (exit -2)."""
    exe = Path(sys.executable).parent / "legion_description"
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        line = proc.stdout.readline()  # the node's start-up line: it is spinning
        assert "description:" in line and time.monotonic() < deadline, line
        proc.send_signal(signal.SIGINT)
        time.sleep(gap_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (proc.returncode, out)
