"""Shared plumbing of the graph benches (bench_transfer, bench_graph_latency, bench_soak, bench_sim_arm_graph).

* :func:`graph_commands`: node processes of the real graph from ``legion_bridge.launcher.node_commands``
  (the same argv ``legion-launch`` runs), with per-node extra ``-p name:=value`` parameters.
* :class:`Processes`: runs node commands with the launcher's :class:`GraphProcesses`, their output in a
  log file (so the bench's table stays readable), pids for RSS sampling, a clean stop.
* :class:`BenchNode`: an rclpy node of the bench in its own context, spun on a background thread.
* The bare relay (``python bench/_graph_util.py relay ...``) and the joint-state source
  (``... source ...``): the baseline processes, plain rclpy with the graph's QoS and message types/sizes,
  no work besides building the outgoing message.
* :func:`rss_kib`: resident memory of a process from ``/proc/<pid>/status``.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Environment of every bench and the processes it starts: one torch/BLAS thread, no hub access,
#: DDS discovery on this host only.
BENCH_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
             "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "MUJOCO_GL": "egl"}
for _k, _v in BENCH_ENV.items():
    os.environ.setdefault(_k, _v)

#: Seconds a graph may take to come up (agent load, MiniLM preload, MuJoCo model) on the loaded 2-core machine.
STARTUP_TIMEOUT_S = 120.0
#: Joint-state period of the relay source (the sim_arm / KUKA FRI rate, 200 Hz).
SOURCE_PERIOD_S = 0.005
#: real2sim's phase tolerance when deciding that a joint state is due (fraction of a period), mirrored by the relay.
DUE_TOLERANCE_PERIODS = 0.25


def default_agent_or_exit(path: str | None) -> str:
    """The agent directory to use: ``path``, else the shipped default; exit 2 with a clear message if missing."""
    from legion_bridge.paths import default_agent_path

    agent = Path(path) if path else default_agent_path()
    if not (agent / "manifest.json").is_file():
        hint = ("" if path else " (no shipped agent yet)") + (
            "; for development: .venv/bin/legion-agent init-random /tmp/agent "
            "--skills reach-v3,push-v3,button-press-topdown-v3 --layout metaworld39, then --agent /tmp/agent")
        print(f"{Path(sys.argv[0]).name}: no frozen agent at {agent}{hint}", file=sys.stderr)
        sys.exit(2)
    return str(agent.resolve())


def graph_commands(mode: str, values: dict, only: Sequence[str], params: dict[str, dict] | None = None):
    """``node_commands(mode, values, only)`` with extra ``-p`` parameters per node name (appended last, so they win)."""
    from legion_bridge.launcher import NodeCommand, node_commands, ros_param_value

    out = []
    for c in node_commands(mode, values, list(only)):
        extra = []
        for k, v in (params or {}).get(c.name, {}).items():
            extra += ["-p", f"{k}:={ros_param_value(v)}"]
        out.append(NodeCommand(c.name, c.argv + tuple(extra), c.required, c.ends_graph))
    return out


def relay_command(name: str, *args: str, kind: str = "relay"):
    """A baseline process (``relay`` or ``source`` of this file) as a launcher NodeCommand."""
    from legion_bridge.launcher import NodeCommand

    return NodeCommand(name, (sys.executable, str(Path(__file__).resolve()), kind, *args), True, False)


class Processes:
    """Node processes under the launcher's supervisor; output goes to ``log_path``."""

    def __init__(self, commands, log_path: str | os.PathLike) -> None:
        from legion_bridge.launcher import GraphProcesses

        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", buffering=1)  # noqa: SIM115 (closed in stop)
        env = dict(os.environ)
        self.gp = GraphProcesses(commands, out=self._log, env=env)
        self.names = [c.name for c in commands]

    def start(self) -> "Processes":
        self.gp.start()
        return self

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.gp.procs.items()}

    def dead(self) -> list[str]:
        """Names of processes that exited (with their status)."""
        return [f"{n} (exit {p.poll()})" for n, p in self.gp.procs.items() if p.poll() is not None]

    def check_alive(self) -> None:
        dead = self.dead()
        if dead:
            raise RuntimeError(f"node process ended: {', '.join(dead)}; see {self.log_path}")

    def stop(self) -> None:
        self.gp.stop()
        self._log.close()

    def __enter__(self) -> "Processes":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class BenchNode:
    """An rclpy node of the bench in its own context, spun by a SingleThreadedExecutor on a daemon thread."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = Node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # noqa: BLE001 (context shut down at close)
            pass

    def close(self) -> None:
        import rclpy

        # The spin thread must be gone before the context shuts down: rclpy's logging teardown in
        # try_shutdown holds the GIL while it waits for the logging mutex, and a spin thread still inside
        # wait() deadlocked against it once (bench_transfer hung after its last reach episode).
        self.executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, procs: Processes | None = None,
               poll_s: float = 0.05) -> None:
    """Poll ``cond`` until true; RuntimeError naming ``what`` on timeout or when a process died."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if procs is not None:
            procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}"
                               + (f"; see {procs.log_path}" if procs is not None else ""))
        time.sleep(poll_s)


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def load_note() -> str:
    """Machine load at the time of the run (the shared 2-core machine moves every number)."""
    l1, l5, l15 = os.getloadavg()
    return f"load average {l1:.2f} {l5:.2f} {l15:.2f} on {os.cpu_count()} cores"


def pct(values_s: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values_s) * 1e3, q)) if len(values_s) else float("nan")


# --------------------------------------------------------------------------- baseline processes

def _msg_factory(kind: str, size: int):
    """(message class, builder(values) -> message) of the graph's message kinds, same sizes and labels."""
    import numpy as np
    from builtin_interfaces.msg import Duration
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from legion_policy.observation_layout import ACTION_SPEC, get_layout
    from legion_policy.ros_io import array_msg, observation_to_msg

    names = [f"joint_a{i}" for i in range(1, 8)]
    if kind == "joint_state":
        def build(v, stamp=None):
            m = JointState(name=names, position=[float(x) for x in np.resize(v, 7)],
                           velocity=[0.0] * 7, effort=[0.0] * 7)
            if stamp is not None:
                m.header.stamp = stamp
            return m
        return JointState, build
    if kind.startswith("observation"):  # "observation" (metaworld39) or "observation=<layout name>"
        layout = get_layout(kind.split("=", 1)[1] if "=" in kind else "metaworld39")
        return Float32MultiArray, lambda v, stamp=None: observation_to_msg(layout, np.resize(v, layout.size))
    if kind == "action":
        return Float32MultiArray, lambda v, stamp=None: array_msg(np.resize(v, ACTION_SPEC.size), ACTION_SPEC.names)
    if kind == "trajectory":
        def build(v, stamp=None):
            m = JointTrajectory(joint_names=names)
            m.points = [JointTrajectoryPoint(positions=[float(x) for x in np.resize(v, 7)],
                                             time_from_start=Duration(sec=0, nanosec=25_000_000))]
            return m
        return JointTrajectory, build
    raise ValueError(f"unknown message kind {kind!r}")


def _values(msg) -> list[float]:
    if hasattr(msg, "position"):
        return list(msg.position)
    if hasattr(msg, "points"):
        return list(msg.points[0].positions) if msg.points else [0.0]
    return list(msg.data)


def relay_main(argv: Sequence[str]) -> int:
    """Bare relay: subscribe IN (kind:topic), publish OUT (kind:topic) built from the input values.
    ``--period-s``: publish only when the input's header stamp is due (real2sim's phase-locked rule)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node

    from legion_policy.ros_io import STREAM_QOS

    ap = argparse.ArgumentParser(prog="relay")
    ap.add_argument("--name", default="relay")
    ap.add_argument("--in", dest="inp", required=True, help="kind:topic")
    ap.add_argument("--out", required=True, help="kind:topic")
    ap.add_argument("--period-s", type=float, default=0.0)
    ap.add_argument("--report-s", type=float, default=0.0,
                    help="print 'count <wall time> <messages published>' this often (0: never)")
    a, ros_args = ap.parse_known_args(argv)
    in_kind, in_topic = a.inp.rsplit(":", 1)
    out_kind, out_topic = a.out.rsplit(":", 1)
    in_cls, _ = _msg_factory(in_kind, 0)
    out_cls, build = _msg_factory(out_kind, 0)
    rclpy.init(args=["relay", *ros_args])
    node = Node(a.name)
    pub = node.create_publisher(out_cls, out_topic, STREAM_QOS)
    due = [None]
    published = [0]
    if a.report_s > 0:
        node.create_timer(a.report_s, lambda: print(f"count {time.time():.3f} {published[0]}", flush=True))

    def on_msg(msg) -> None:
        if a.period_s > 0:
            st = msg.header.stamp
            t = st.sec + st.nanosec * 1e-9
            d = due[0]
            if d is not None and t < d - DUE_TOLERANCE_PERIODS * a.period_s:
                return
            due[0] = d + a.period_s if d is not None and t - d < a.period_s else t + a.period_s
        pub.publish(build(_values(msg)))
        published[0] += 1

    node.create_subscription(in_cls, in_topic, on_msg, STREAM_QOS)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def source_main(argv: Sequence[str]) -> int:
    """Joint-state source of the relay soak (sim_arm's role): JointState at ``--rate-hz`` on a thread,
    stamped with wall time; subscribes the trajectory command topic like sim_arm does."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node

    from legion_policy.ros_io import STREAM_QOS

    ap = argparse.ArgumentParser(prog="source")
    ap.add_argument("--out", required=True, help="joint state topic")
    ap.add_argument("--command", required=True, help="trajectory topic it consumes")
    ap.add_argument("--rate-hz", type=float, default=1.0 / SOURCE_PERIOD_S)
    a, ros_args = ap.parse_known_args(argv)
    rclpy.init(args=["source", *ros_args])
    node = Node("relay_source")
    js_cls, build = _msg_factory("joint_state", 7)
    traj_cls, _ = _msg_factory("trajectory", 7)
    pub = node.create_publisher(js_cls, a.out, STREAM_QOS)
    q = [0.0] * 7

    def on_cmd(msg) -> None:
        if msg.points:
            q[:] = list(msg.points[0].positions)

    node.create_subscription(traj_cls, a.command, on_cmd, STREAM_QOS)
    period = 1.0 / a.rate_hz
    stop = threading.Event()

    def loop() -> None:  # paced like sim_arm's simulation thread (sleep to the next period)
        nxt = time.monotonic()
        while not stop.is_set():
            t = time.time()
            try:
                pub.publish(build(q, Time(sec=int(t), nanosec=int((t % 1) * 1e9))))
            except Exception:  # noqa: BLE001 (context shut down)
                return
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.25:
                nxt = time.monotonic()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        th.join(timeout=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    cmd, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"relay": relay_main, "source": source_main}[cmd](rest))
