"""description: publishes ``/robot_description`` for robot_state_publisher, RViz and Foxglove.

The URDF of ``robot_model`` with the gripper (``urdf/<model>.urdf``), its arm joints named as the
driver names them (``arm_joint_names`` of the driver profile, config/drivers/), published once as a
std_msgs/String on a transient-local topic (late subscribers get it), in both modes.

With ``publish_robot_joint_states`` (launch argument ``rviz:=true``) it also publishes, at most
``robot_joint_states_rate_hz``, a sensor_msgs/JointState with the arm's joints (from the driver's
joint states) and the two finger joints (half the gripper's finger gap each) on
``robot_joint_states_topic``: robot_state_publisher reads one joint-state topic, and the fingers
travel on the gripper's topic as one gap. Not required: its death does not stop the graph.
"""
from __future__ import annotations

import sys

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from legion_bridge.node_params import DESCRIPTION
from legion_bridge.nodes.bridge_params import ModelOf, joint_names
from legion_bridge.robot.description import robot_description
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_policy.nodes.parameters import declare_all
from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS, run_node


class DescriptionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("description", **kwargs)
        model = ModelOf()
        p = declare_all(self, DESCRIPTION, arm_joint_names=model.joint_names)
        self.model = model(p)
        self.names = joint_names(p, self.model)
        topic = p.robot_description_topic
        self.urdf = robot_description(str(p.robot_model), self.names.driver)
        self.pub = self.create_publisher(String, topic, LATCHED_QOS)
        self.pub.publish(String(data=self.urdf))
        joints, out_topic = p.publish_robot_joint_states, p.robot_joint_states_topic
        rate = float(p.robot_joint_states_rate_hz)
        if joints:  # rate > 0: the spec's range, held where it is declared
            self._min_gap_ns = int(1e9 / rate)
            self._last_ns = 0
            self._fingers = list(self.model.gripper.finger_joint_names)
            self._finger_q = list(self.model.gripper.finger_positions(0.0))
            self.js_pub = self.create_publisher(JointState, out_topic, STREAM_QOS)
            self.create_subscription(JointState, p.joint_states_topic, self._on_arm, STREAM_QOS)
            self.create_subscription(JointState, p.gripper_state_topic, self._on_gripper, STREAM_QOS)
        self.get_logger().info(
            f"description: {self.model.name} on {topic} (joints {', '.join(self.names.driver)}"
            + (f"; joint states for robot_state_publisher on {out_topic})" if joints else ")"))

    def _on_gripper(self, msg: JointState) -> None:
        if GRIPPER_GAP_JOINT in msg.name and len(msg.position) == len(msg.name):
            self._finger_q = [float(v) for v in self.model.gripper.finger_positions(
                msg.position[list(msg.name).index(GRIPPER_GAP_JOINT)])]

    def _on_arm(self, msg: JointState) -> None:
        if len(msg.position) != len(msg.name):
            return
        # throttled on the data's own time (the joint state's stamp; the node clock if unstamped), so the rate
        # does not depend on how fast a loaded simulator runs against the wall clock
        stamp = msg.header.stamp
        now = stamp.sec * 1_000_000_000 + stamp.nanosec or self.get_clock().now().nanoseconds
        if now - self._last_ns < self._min_gap_ns and now >= self._last_ns:
            return
        self._last_ns = now
        out = JointState()
        out.header = msg.header
        out.name = list(msg.name) + self._fingers
        out.position = list(msg.position) + self._finger_q
        self.js_pub.publish(out)


def main(args=None) -> int:
    return run_node(DescriptionNode, args, "description")


if __name__ == "__main__":
    sys.exit(main())
