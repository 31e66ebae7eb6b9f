"""record:=true / legion-demo --record: the graph's topics in a rosbag2 bag with MCAP storage.

Read back two independent ways: rosbags (what the recorder writes with) and Foxglove's own MCAP
libraries (mcap + mcap-ros2-support), which decode every message from the schemas in the file.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from legion_bridge.paths import config_path
from legion_bridge.robot.description import description_joint_names

pytestmark = pytest.mark.ros
BIN = Path(sys.executable).parent


def read_bag(path: Path) -> tuple[dict, dict, dict]:
    """(topic -> type, topic -> count, topic -> first decoded message) with rosbags; checks mcap agrees."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types, counts, first = {}, Counter(), {}
    import yaml

    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 9
    with Reader(path) as reader:
        for conn in reader.connections:
            types[conn.topic] = conn.msgtype
        for conn, _t, raw in reader.messages():
            counts[conn.topic] += 1
            if conn.topic not in first:
                first[conn.topic] = store.deserialize_cdr(raw, conn.msgtype)
    files = list(path.glob("*.mcap"))
    assert len(files) == 1, files
    mcap_counts = Counter()
    with files[0].open("rb") as f:
        for schema, channel, _m, _decoded in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            assert (schema.encoding, channel.message_encoding) == ("ros2msg", "cdr")
            assert schema.name == types[channel.topic]
            mcap_counts[channel.topic] += 1
    assert mcap_counts == counts
    return types, dict(counts), first


@pytest.mark.slow
def test_demo_record_writes_the_graphs_topics_into_an_mcap_bag(tmp_path):
    proc = subprocess.run([str(BIN / "legion-demo"), "--sequence", str(config_path("sequences", "tabletop_reach.yaml")),
                           "--out", str(tmp_path), "--no-video", "--record", "--timeout", "300"],
                          capture_output=True, text=True, timeout=420, env=os.environ.copy())
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[out.find("Traceback") - 200:][:4000]
    bag = tmp_path / "bag"
    assert (bag / "metadata.yaml").is_file(), out[-3000:]
    assert f"bag: {bag}" in proc.stdout
    types, counts, first = read_bag(bag)
    expected = {"/joint_states": "sensor_msgs/msg/JointState", "/gripper/joint_states": "sensor_msgs/msg/JointState",
                "/legion/observation": "std_msgs/msg/Float32MultiArray", "/legion/action": "std_msgs/msg/Float32MultiArray",
                "/legion/task": "std_msgs/msg/String", "/legion/binding": "std_msgs/msg/String",
                "/legion/enable": "std_msgs/msg/Bool", "/iiwa_arm_controller/joint_trajectory":
                "trajectory_msgs/msg/JointTrajectory", "/gripper/command": "std_msgs/msg/Float64",
                "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray", "/robot_description": "std_msgs/msg/String",
                "/clock": "rosgraph_msgs/msg/Clock", "/objects/reach_goal/pose": "geometry_msgs/msg/PoseStamped"}
    for topic, msgtype in expected.items():
        assert types.get(topic) == msgtype, (topic, types.get(topic))
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert counts["/robot_description"] == 1  # latched, published once
    assert counts["/legion/action"] > 20
    assert counts["/joint_states"] > 3 * counts["/legion/action"]  # 200 Hz vs one action per 12.5 ms step
    assert counts["/legion/observation"] >= counts["/legion/action"] // 2
    # the description names the joints of /joint_states (robot_state_publisher, Foxglove can use it)
    assert description_joint_names(first["/robot_description"].data)[:7] == list(first["/joint_states"].name)
    assert first["/legion/task"].data == "reach-v3"


def test_recorder_closes_the_bag_on_sigterm_with_latched_and_stream_topics(tmp_path):
    from rclpy.node import Node
    from std_msgs.msg import Float32MultiArray, String

    from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS
    from rosutil import ros_context, spin_until

    bag = tmp_path / "bag"
    with ros_context() as (ctx, executor):
        node = Node("record_test_publisher", context=ctx)
        executor.add_node(node)
        # the graph's QoS kinds with deeper publisher histories: a depth-1 latched or depth-5 stream publisher may
        # replace a sample before a loaded recorder acknowledged it (reliable KEEP_LAST), so a burst would not
        # say how many messages the recorder must have written
        latched_qos, stream_qos = copy.copy(LATCHED_QOS), copy.copy(STREAM_QOS)
        latched_qos.depth, stream_qos.depth = 10, 100
        latched = node.create_publisher(String, "/record_test/latched", latched_qos)
        latched.publish(String(data="before the recorder started"))
        # an operator's `ros2 topic pub` on the same topic: volatile (reaches no transient-local subscription)
        operator = node.create_publisher(String, "/record_test/latched", 10)
        stream = node.create_publisher(Float32MultiArray, "/record_test/stream", stream_qos)
        proc = subprocess.Popen([str(BIN / "legion_recorder"), "--ros-args", "-p", f"bag_path:={bag}",
                                 "-p", "topics:=[/record_test/latched, /record_test/stream]",
                                 "-p", "discovery_period_s:=0.1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
        try:
            assert spin_until(executor, lambda: stream.get_subscription_count() > 0
                              and latched.get_subscription_count() == 2 and operator.get_subscription_count() == 1,
                              timeout_s=60.0)
            for i in range(3):  # live latched messages arrive on both subscriptions: written once each
                latched.publish(String(data=f"latched {i}"))
                operator.publish(String(data=f"operator {i}"))
                spin_until(executor, lambda: False, timeout_s=0.05)
            for i in range(50):
                stream.publish(Float32MultiArray(data=[float(i)]))
                spin_until(executor, lambda: False, timeout_s=0.01)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        node.destroy_node()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert "closed: 57 messages on 2 topics" in out, out
    types, counts, first = read_bag(bag)
    assert types == {"/record_test/latched": "std_msgs/msg/String", "/record_test/stream": "std_msgs/msg/Float32MultiArray"}
    assert counts == {"/record_test/latched": 7, "/record_test/stream": 50}
    # the latched history and every live message, each once; the history may land after a live message
    # (a late-joining reader's history and a volatile reader's live sample race on a loaded machine)
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        latched_data = sorted(store.deserialize_cdr(raw, c.msgtype).data for c, _t, raw in reader.messages()
                              if c.topic == "/record_test/latched")
    assert latched_data == sorted(["before the recorder started"] + [f"latched {i}" for i in range(3)]
                                  + [f"operator {i}" for i in range(3)])


def test_recorder_never_overwrites_a_bag_and_says_so_in_one_line(tmp_path):
    (tmp_path / "bag").mkdir()
    proc = subprocess.run([str(BIN / "legion_recorder"), "--ros-args", "-p", f"bag_path:={tmp_path / 'bag'}"],
                          capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"recorder: bag_path {tmp_path / 'bag'} exists already: "
                                                "a bag is never overwritten"]
