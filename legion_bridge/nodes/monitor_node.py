"""monitor: reports the rate and age of chosen topics on /diagnostics.

Parameters: ``topics`` (list of ``/topic:pkg/msg/Type``, or ``$name:pkg/msg/Type`` for the topic
that parameter ``name`` holds, e.g. ``$joint_states_topic``: the driver profile's), ``expected_rates_hz`` (same
length; 0 = no expectation), ``tolerance`` (relative rate error that still counts as OK),
``period_s`` (report period). ``tolerance`` is settable at run time (``ros2 param set /monitor tolerance
0.1``: the next report uses it); the others are read at start, read-only.
"""
from __future__ import annotations

import importlib
import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from legion_bridge.node_params import MONITOR, named_topic
from legion_bridge.topic_rates import RateTracker, parse_topic_spec
from legion_policy.nodes.parameters import declare_all, declare_spec
from legion_policy.ros_io import ERROR, OK, STREAM_QOS, WARN, diagnostic_array, diagnostic_status, run_node


class MonitorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("monitor", **kwargs)
        p = declare_all(self, MONITOR, expected_rates_hz=lambda v: [0.0] * len(v.topics),
                        on_set={"tolerance": self._set_tolerance})
        specs, expected, self.tolerance, period = p.topics, p.expected_rates_hz, p.tolerance, p.period_s
        if len(expected) != len(specs):
            raise ValueError(f"expected_rates_hz has {len(expected)} entries for {len(specs)} topics")
        self.watch: list[tuple[str, float, RateTracker]] = []
        named: dict[str, str] = {}
        for spec, rate in zip(specs, expected):
            if spec.startswith("$"):  # $<parameter>:pkg/msg/Type: the topic a parameter file names
                param = spec[1:].split(":", 1)[0]
                if param not in named:
                    named[param] = str(declare_spec(self, named_topic(param, spec)))
                if not named[param]:
                    raise ValueError(f"topics entry {spec!r}: no parameter file sets {param}")
                spec = named[param] + spec[1 + len(param):]
            topic, pkg, name = parse_topic_spec(spec)
            msg_type = getattr(importlib.import_module(f"{pkg}.msg"), name)
            tracker = RateTracker()
            self.create_subscription(msg_type, topic, lambda _m, t=tracker: t.add(self._now()), STREAM_QOS)
            self.watch.append((topic, float(rate), tracker))
        self.pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(period, self.report)

    def _set_tolerance(self, value: float) -> None:
        self.tolerance = float(value)
        self.get_logger().info(f"tolerance set to {self.tolerance:g}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def report(self) -> None:
        now = self._now()
        statuses = []
        for topic, expected, tracker in self.watch:
            rate, age = tracker.rate_hz(now), tracker.age_s(now)
            level, msg = OK, f"{rate:.1f} Hz"
            if tracker.count == 0:
                level, msg = WARN, "no message yet"
            elif expected > 0 and abs(rate - expected) > self.tolerance * expected:
                level, msg = ERROR, f"{rate:.1f} Hz, expected {expected:.1f} Hz"
            statuses.append(diagnostic_status(f"monitor: {topic}", topic, level, msg,
                                              {"rate_hz": rate, "age_s": -1.0 if age is None else age,
                                               "count": tracker.count, "expected_hz": expected}))
        self.pub.publish(diagnostic_array(self, *statuses))


def main(args=None) -> int:
    return run_node(MonitorNode, args, "monitor")


if __name__ == "__main__":
    sys.exit(main())
