"""Small rclpy processes used by the fault-injection test (run as ``python bridge_helpers_proc.py MODE``).

* ``policy``: a scripted policy: one action per observation, the hand sweeping back and forth
  along y (amplitude ``SWEEP_ACTION`` x 1 cm per step, direction flipping every ``SWEEP_STEPS``).
* ``relay``: forwards sensor_msgs/JointState from ``/sim/joint_states_raw`` to ``/joint_states``
  unchanged (stopping this process with SIGSTOP drops the joint states, SIGCONT restores them).
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray

from legion_policy.ros_io import STREAM_QOS

SWEEP_ACTION = 0.3
SWEEP_STEPS = 40
RAW_JOINT_STATES = "/sim/joint_states_raw"


class ScriptedPolicy(Node):
    def __init__(self):
        super().__init__("scripted_policy")
        self.pub = self.create_publisher(Float32MultiArray, "/legion/action", STREAM_QOS)
        self.create_subscription(Float32MultiArray, "/legion/observation", self._on_obs, STREAM_QOS)
        self.n = 0

    def _on_obs(self, _msg):
        direction = 1.0 if (self.n // SWEEP_STEPS) % 2 == 0 else -1.0
        self.n += 1
        out = Float32MultiArray()
        out.data = [0.0, direction * SWEEP_ACTION, 0.0, 0.0]
        self.pub.publish(out)


class Relay(Node):
    def __init__(self):
        super().__init__("joint_state_relay")
        self.pub = self.create_publisher(JointState, "/joint_states", 100)
        self.create_subscription(JointState, RAW_JOINT_STATES, self.pub.publish, 100)


def main() -> int:
    mode = sys.argv[1]
    rclpy.init(args=sys.argv)
    node = {"policy": ScriptedPolicy, "relay": Relay}[mode]()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
