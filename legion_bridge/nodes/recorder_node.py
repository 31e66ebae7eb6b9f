"""recorder: writes the graph's topics into a rosbag2 bag with MCAP storage (``record:=true``).

rosbag2 is not on the package registry, so this node records the way ``ros2 bag record`` does, over
plain rclpy: it looks at the graph every ``discovery_period_s`` for the topics it is asked for
(``topics``: names, or ``$name`` for the topic a parameter holds; ``topic_prefixes``: every topic
below a prefix), takes each topic's type from its publishers, subscribes with the publishers' QoS
(where a publisher is transient local, also a transient-local subscription, so the history of latched
topics such as /robot_description arrives, and a latched message is written once) and
``raw=True`` (the serialized CDR bytes, never deserialized), and writes every message with its
receive time (system clock, as rosbag2 does by default) through ``rosbags`` (rosbag2 format version
9, MCAP storage; message definitions from rosbags' Kilted type store). ``ros2 bag info/play``
(Jazzy, Kilted) and Foxglove read it.

The bag is closed (MCAP summary and footer, metadata.yaml) when the node ends: SIGINT/SIGTERM and
the graph's end reach it through ``legion_policy.ros_io.run_node``, which destroys the node. Not
required: its death does not stop the robot.
"""
from __future__ import annotations

import importlib
import sys
import time
from collections import deque
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from legion_bridge.node_params import RECORDER, named_topic
from legion_policy.nodes.parameters import declare_all, declare_spec
from legion_policy.ros_io import DUPLICATE_WINDOW_S, run_node

#: history depth of a stream subscription (200 Hz joint states: one second of messages)
STREAM_DEPTH = 200
#: history depth of a transient-local subscription (what a latched publisher keeps)
LATCHED_DEPTH = 10


def default_bag_path() -> Path:
    return Path("runs") / f"bag-{time.strftime('%Y%m%d-%H%M%S')}"


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        from rosbags.typesys import Stores, get_typestore

        p = declare_all(self, RECORDER)
        bag, specs, prefixes = str(p.bag_path), list(p.topics), list(p.topic_prefixes)
        period = float(p.discovery_period_s)  # > 0: the spec's range
        self.wanted = {t for t in (self._topic_of(s) for s in specs) if t}
        self.prefixes = [p.rstrip("/") + "/" for p in (self._topic_of(s) for s in prefixes) if p]
        for t in sorted(self.wanted) + self.prefixes:
            if not t.startswith("/"):
                raise ValueError(f"topic {t!r} to record must be absolute (start with /)")
        self.path = Path(bag) if bag else default_bag_path()
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        if self.path.exists():
            raise ValueError(f"bag_path {self.path} exists already: a bag is never overwritten")
        self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        try:
            self.writer.open()
        except (WriterError, OSError) as exc:
            raise ValueError(f"bag_path {self.path}: {exc}") from None
        self._closed = False
        self.recording: dict[str, tuple] = {}  # topic -> (connection, subscription)
        self.counts: dict[str, int] = {}
        self._skipped: set[str] = set()
        self.create_timer(period, self._discover)
        self.get_logger().info(f"recording into {self.path.resolve()} (rosbag2, MCAP): "
                               f"{', '.join(sorted(self.wanted))}"
                               + (f" and every topic below {', '.join(self.prefixes)}" if self.prefixes else ""))
        self._discover()

    def _topic_of(self, spec: str) -> str:
        spec = str(spec).strip()
        if not spec.startswith("$"):
            return spec
        name = spec[1:]
        if not self.has_parameter(name):
            declare_spec(self, named_topic(name, spec))
        value = str(self.get_parameter(name).value or "")
        if not value:
            raise ValueError(f"topics entry {spec!r}: no parameter file sets {name}")
        return value

    def _is_wanted(self, topic: str) -> bool:
        return topic in self.wanted or any(topic.startswith(p) for p in self.prefixes)

    # ------------------------------------------------------------------ discovery
    def _discover(self) -> None:
        if self._closed:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self.recording or topic in self._skipped or not self._is_wanted(topic):
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: the type and QoS come from a publisher
            if len(types) != 1:
                self._skip(topic, f"has {len(types)} types {types}")
                continue
            self._record(topic, types[0], publishers)

    def _skip(self, topic: str, why: str) -> None:
        self._skipped.add(topic)
        self.get_logger().warning(f"not recording {topic}: {why}")

    def _record(self, topic: str, msgtype: str, publishers) -> None:
        from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

        pkg, _, name = msgtype.split("/")
        try:
            msg_class = getattr(importlib.import_module(f"{pkg}.msg"), name)
        except (ImportError, AttributeError):
            self._skip(topic, f"message type {msgtype} is not installed here")
            return
        if msgtype not in self.typestore.fielddefs and not self._add_type(msgtype):
            self._skip(topic, f"no message definition for {msgtype}")
            return
        durable = [p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers]
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        zero = QosTime(0, 0)
        latched = all(durable)  # what the bag tells a player (ros2 bag play republishes it latched)
        offered = Qos(QosHistory.KEEP_LAST, 1 if latched else 10,
                      QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
                      QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
                      zero, zero, QosLiveliness.AUTOMATIC, zero, False)
        conn = self.writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=[offered])
        self.counts[topic] = 0
        volatile = QoSProfile(depth=STREAM_DEPTH, history=HistoryPolicy.KEEP_LAST,
                              durability=DurabilityPolicy.VOLATILE, reliability=reliability)
        if not any(durable):
            subs = [self.create_subscription(msg_class, topic, lambda data, t=topic, c=conn: self._write(t, c, data),
                                             volatile, raw=True)]
        else:
            # a latched publisher's history reaches only a transient-local subscription, a volatile publisher
            # (`ros2 topic pub`) only a volatile one: both, and a latched publisher's live message, which
            # arrives on both, is written once (as ros_io.subscribe_command does for the command topics)
            recent: dict[str, deque] = {"latched": deque(), "volatile": deque()}

            def on(kind: str, other: str, data: bytes, t=topic, c=conn) -> None:
                now = time.monotonic()
                for q in recent.values():
                    while q and now - q[0][0] > DUPLICATE_WINDOW_S:
                        q.popleft()
                for item in recent[other]:
                    if item[1] == data:
                        recent[other].remove(item)
                        return
                recent[kind].append((now, data))
                self._write(t, c, data)

            keep = QoSProfile(depth=LATCHED_DEPTH, history=HistoryPolicy.KEEP_LAST,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=reliability)
            subs = [self.create_subscription(msg_class, topic, lambda d: on("latched", "volatile", d), keep, raw=True),
                    self.create_subscription(msg_class, topic, lambda d: on("volatile", "latched", d), volatile,
                                             raw=True)]
        self.recording[topic] = (conn, subs)
        self.get_logger().info(f"recording {topic} ({msgtype}{', latched' if any(durable) else ''})")

    def _add_type(self, msgtype: str) -> bool:
        """Register a type the Kilted store lacks from the installed package's .msg file."""
        try:
            from ament_index_python.packages import get_package_share_directory
            from rosbags.typesys import get_types_from_msg

            pkg, _, name = msgtype.split("/")
            text = (Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg").read_text()
            self.typestore.register(get_types_from_msg(text, msgtype))
            self.typestore.generate_msgdef(msgtype, ros_version=2)
            return True
        except Exception:  # any failure: the topic is skipped with a warning
            return False

    def _write(self, topic: str, conn, data: bytes) -> None:
        if self._closed:
            return
        self.writer.write(conn, time.time_ns(), data)
        self.counts[topic] += 1

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        """Finish the bag (idempotent): MCAP summary and footer, metadata.yaml."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self.writer.close()
        total = sum(self.counts.values())
        self.get_logger().info(f"bag {self.path.resolve()} closed: {total} messages on {len(self.counts)} topics")

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(RecorderNode, args, "recorder")


if __name__ == "__main__":
    sys.exit(main())
