"""Shared ROS plumbing for every node shell: labelled arrays, parameters, diagnostics, QoS.

Kept small and free of node logic; the cores stay ROS-free.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from legion_policy.observation_layout import ObservationLayout

#: Latched topics (task, binding, enable): late joiners get the last message.
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
#: Streams (observations, actions, joint states): newest wins.
STREAM_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

#: Operator commands (``ros2 topic pub`` publishes with the default profile: volatile).
COMMAND_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
#: A message delivered by both command subscriptions arrives on the second within this time [s].
DUPLICATE_WINDOW_S = 1.0


def subscribe_command(node, msg_type, topic: str, callback, window_s: float = DUPLICATE_WINDOW_S) -> None:
    """Subscribe ``callback`` to a command topic (task, enable) so that both kinds of publisher reach it.

    A transient-local subscription alone would be QoS-incompatible with a plain
    ``ros2 topic pub --once`` (volatile: it would wait for a match forever); a volatile one alone
    would miss what a latched publisher (the sequencer) sent before this node started. So there
    are two subscriptions. A latched publisher's live message arrives on both: each delivery is
    matched against an equal, still unmatched delivery of the other subscription within
    ``window_s`` and dropped if it finds one, so the callback sees every message once.
    """
    import time as _time
    from collections import deque

    recent = {"latched": deque(), "volatile": deque()}  # (arrival [s], msg) not matched yet

    def on(kind: str, other: str, msg) -> None:
        now = _time.monotonic()
        for q in recent.values():
            while q and now - q[0][0] > window_s:
                q.popleft()
        for item in recent[other]:
            if item[1] == msg:
                recent[other].remove(item)
                return
        recent[kind].append((now, msg))
        callback(msg)

    node.create_subscription(msg_type, topic, lambda m: on("latched", "volatile", m), LATCHED_QOS)
    node.create_subscription(msg_type, topic, lambda m: on("volatile", "latched", m), COMMAND_QOS)


OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE)



# --- labelled Float32MultiArray -------------------------------------------------


def observation_to_msg(layout: ObservationLayout, obs: Sequence[float]) -> Float32MultiArray:
    """An observation as Float32MultiArray: dim[0] = layout name (size = total), then one dim per field."""
    vec = np.asarray(obs, dtype=np.float32).reshape(-1)
    if vec.size != layout.size:
        raise ValueError(f"observation has {vec.size} values, layout {layout.name!r} needs {layout.size}")
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=layout.name, size=layout.size, stride=layout.size)]
    msg.layout.dim += [MultiArrayDimension(label=f.name, size=f.size, stride=f.size) for f in layout.fields]
    msg.data = vec.tolist()
    return msg


def msg_to_observation(msg: Float32MultiArray, layout: ObservationLayout) -> np.ndarray:
    """Validate a labelled observation against ``layout``; ValueError naming the problem."""
    dims = list(msg.layout.dim)
    if dims:
        if dims[0].label != layout.name:
            raise ValueError(f"observation layout {dims[0].label!r} != expected {layout.name!r}")
        fields = [(d.label, d.size) for d in dims[1:]]
        expected = [(f.name, f.size) for f in layout.fields]
        if fields and fields != expected:
            raise ValueError(f"observation fields {fields} != layout {layout.name!r} fields {expected}")
    vec = np.asarray(msg.data, dtype=np.float32)
    if vec.size != layout.size:
        raise ValueError(f"observation has {vec.size} values, layout {layout.name!r} needs {layout.size}")
    if not np.all(np.isfinite(vec)):
        raise ValueError("observation contains NaN or inf")
    return vec


def array_msg(values: Iterable[float], labels: Sequence[str]) -> Float32MultiArray:
    """A Float32MultiArray with one labelled dim per element (used for actions)."""
    vals = [float(v) for v in values]
    if len(vals) != len(labels):
        raise ValueError(f"{len(vals)} values for {len(labels)} labels")
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=",".join(labels), size=len(vals), stride=len(vals))]
    msg.data = vals
    return msg


# --- diagnostics -------------------------------------------------------------------


def diagnostic_status(name: str, hardware_id: str, level, message: str, values: dict | None = None) -> DiagnosticStatus:
    st = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    st.level = level if isinstance(level, bytes) else bytes([int(level)])
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in (values or {}).items()]
    return st


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    return str(v)


def diagnostic_array(node, *statuses: DiagnosticStatus) -> DiagnosticArray:
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = list(statuses)
    return arr


# --- process entry point ---------------------------------------------------------------


class NodeStartError(Exception):
    """A node cannot start (bad parameter, invalid agent, ...): one-line reason, exit status 2."""


#: Seconds between two looks of a node process at a stop request (SIGINT/SIGTERM) while its executor is idle.
STOP_POLL_S = 0.1


def run_node(make_node, args=None, name: str = "node") -> int:
    """Entry point of every node process: init, build, spin, shut down cleanly.

    ``make_node()`` builds the node; a ValueError / FileNotFoundError / NodeStartError (or a
    parameter of the wrong type or value) raised while building is printed as one line
    ``<name>: <reason>`` and the process exits with status 2 (a launcher then names the node).
    Ctrl-C (SIGINT) and SIGTERM end the process with status 0 and no traceback.

    Both signals only ask the spin loop to stop instead of raising ``KeyboardInterrupt``:
    Python raises that at whatever bytecode runs when the signal lands, and landing inside
    the executor (half-way through building a callback's ``Task``, say) left rclpy printing
    a traceback at shutdown. rclpy's own handlers are not installed (they end the context at
    once), so the node is destroyed while its context is still valid (a node may log or
    publish on the way out) and the context ends last. The spin loop looks at the request
    at least every ``STOP_POLL_S``, so an idle node stops too.
    """
    import signal
    import sys
    import threading

    import rclpy
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    # what building a node may raise because of the user's input (a parameter file, `-p name:=value`)
    user_errors = (ValueError, FileNotFoundError, NodeStartError, InvalidParameterTypeException,
                   InvalidParameterValueException)

    stop_requested = threading.Event()

    def stop(_signum, _frame) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make_node()
    except Exception as exc:
        if stop_requested.is_set() or not rclpy.ok():  # stopped while starting up: what building raised is moot
            rclpy.try_shutdown()
            return 0
        if not isinstance(exc, user_errors):
            raise
        print(f"{name}: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    status = 0
    executor = SingleThreadedExecutor()
    try:
        executor.add_node(node)
        while not stop_requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:  # the context was ended from outside this loop
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # shutting down: taking a message from a subscription whose context just ended can fail
    except SystemExit as exc:  # a node may end the process with a status (e.g. the sequencer)
        status = int(exc.code or 0)
    finally:
        # stopping now: a repeated SIGINT (launch signals each process after the terminal's Ctrl-C reached the
        # process group) must not kill the teardown, where Python's exit restores the default handlers
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        status = getattr(node, "exit_status", status)
        executor.shutdown(timeout_sec=0)
        node.destroy_node()
        rclpy.try_shutdown()
    return status
