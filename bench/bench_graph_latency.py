"""Latency of the LEGION graph path against a bare rclpy relay of the same messages through as many processes.

Run: ``ROS_DOMAIN_ID=<n> .venv/bin/python bench/bench_graph_latency.py [--agent DIR] [--n 1000] [--rounds 5]``.

Two paths, each against its baseline, all processes running at once and measured in interleaved
rounds (so load changes of the shared machine hit both sides alike):

1. policy: a labelled observation of the agent's layout published by the bench -> the real policy node
   process (``legion_policy_node`` from the graph definition, the agent's skill active) -> ``/legion/action``
   back in the bench. Baseline: one bare relay process (Float32MultiArray of the observation's size and
   labels in, an action-sized labelled array out).
2. chain: ``/joint_states`` (plus fresh gripper state and object poses, as sim_arm would send them) ->
   real2sim -> policy -> sim2real -> ``/iiwa_arm_controller/joint_trajectory`` back in the bench, three real
   node processes. Baseline: three bare relays JointState -> observation-sized array -> action-sized array
   -> one-point JointTrajectory.

Ping-pong: one message in flight at a time, ``--interval-ms`` apart (>= the 12.5 ms policy period, so every
joint state is "due" for real2sim), timed from publish to receipt in the bench (perf_counter, the same
thread wake-up on both sides). The nodes run on wall time (no /clock); joint states and poses are those of
the skill's simulated scene at its start (SimArm), so sim2real's IK and envelope do their real work.

Prints p50 / p99 / max [ms] per path and the ratios graph / relay.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _graph_util as gu  # noqa: E402

RELAY_NS = "/bench/relay"
#: Pings per path before the timed ones (DDS discovery settled, caches warm).
WARMUP = 50


class Pinger:
    """Publish one message, wait for the answer on another topic."""

    def __init__(self, bn: gu.BenchNode, out_cls, out_topic: str, in_cls, in_topic: str) -> None:
        from legion_policy.ros_io import STREAM_QOS

        self.pub = bn.node.create_publisher(out_cls, out_topic, STREAM_QOS)
        self.event = threading.Event()
        self.t_recv = 0.0
        self.received = 0
        bn.node.create_subscription(in_cls, in_topic, self._on, STREAM_QOS)

    def _on(self, _msg) -> None:
        self.t_recv = time.perf_counter()
        self.received += 1
        self.event.set()

    def ping(self, msg, timeout_s: float, before=None) -> float | None:
        """Seconds from publish to the first answer, None if none within ``timeout_s``."""
        self.event.clear()
        if before is not None:
            before()
        t0 = time.perf_counter()
        self.pub.publish(msg)
        if not self.event.wait(timeout_s):
            return None
        return self.t_recv - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=None, help="frozen agent directory (default: the shipped agents/default)")
    ap.add_argument("--skill", default=None, help="active skill (default: the agent's first); also the scene")
    ap.add_argument("--n", type=int, default=1000, help="timed pings per path")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (n / rounds pings per path each)")
    ap.add_argument("--interval-ms", type=float, default=15.0, help="time between pings [ms] (>= 10: each joint state is due for real2sim)")
    ap.add_argument("--timeout-ms", type=float, default=200.0, help="a ping without answer after this is lost")
    ap.add_argument("--log", default="runs/bench/graph_latency.log", help="node output")
    a = ap.parse_args(argv)
    agent_dir = gu.default_agent_or_exit(a.agent)

    import numpy as np
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from legion_bridge.sim.sim_arm import SimArm
    from legion_policy.agent_format import load_agent
    from legion_policy.observation_layout import get_layout
    from legion_policy.tasks import default_binding

    agent = load_agent(agent_dir)
    skill = a.skill or agent.skill_names[0]
    if skill not in agent.skill_names:
        print(f"bench_graph_latency: agent has no skill {skill!r}; skills: {agent.skill_names}", file=sys.stderr)
        return 2
    sim = SimArm(skill)
    q0, gap = sim.joint_positions().copy(), float(sim.gripper_gap())
    poses = {n: (np.asarray(p), np.asarray(qt)) for n, (p, qt) in sim.cell.object_poses().items()}
    layout = get_layout(agent.layout.name)
    obs_rows = np.random.default_rng(0).normal(0.0, 0.1, (64, layout.size)).astype(np.float32)
    obs_rows[:, :3] += np.asarray(sim.cell.hand_pos(), dtype=np.float32)
    del sim

    binding = default_binding(skill).with_(skill=skill).to_json()
    graph = gu.graph_commands("sim", {"agent": agent_dir, "use_sim_time": "false", "enable": "true"},
                              ["real2sim", "policy", "sim2real"],
                              {"policy": {"initial_task": skill}, "real2sim": {"default_binding": binding}})
    obs_kind = f"observation={agent.layout.name}"  # the relay carries arrays of the agent's observation size
    relays = [
        gu.relay_command("relay_policy", "--name", "relay_policy", "--in", f"{obs_kind}:{RELAY_NS}/observation",
                         "--out", f"action:{RELAY_NS}/action"),
        gu.relay_command("relay_r2s", "--name", "relay_r2s", "--in", f"joint_state:{RELAY_NS}/joint_states",
                         "--out", f"{obs_kind}:{RELAY_NS}/chain/observation"),
        gu.relay_command("relay_pol", "--name", "relay_pol", "--in", f"{obs_kind}:{RELAY_NS}/chain/observation",
                         "--out", f"action:{RELAY_NS}/chain/action"),
        gu.relay_command("relay_s2r", "--name", "relay_s2r", "--in", f"action:{RELAY_NS}/chain/action",
                         "--out", f"trajectory:{RELAY_NS}/trajectory"),
    ]
    topics = {c.name: c for c in graph}
    print(f"agent {agent_dir}, skill {skill}; {gu.load_note()}", flush=True)
    procs = gu.Processes(graph + relays, a.log)
    bn = None
    try:
        procs.start()
        bn = gu.BenchNode("bench_graph_latency")
        from legion_policy.ros_io import observation_to_msg

        _, build_js = gu._msg_factory("joint_state", 7)
        grip_pub = bn.node.create_publisher(JointState, "/gripper/joint_states", 10)
        pose_pubs = {n: bn.node.create_publisher(PoseStamped, f"/objects/{n}/pose", 10) for n in poses}

        def stamp() -> Time:
            t = time.time()
            return Time(sec=int(t), nanosec=int((t % 1) * 1e9))

        def fresh_inputs() -> None:
            st = stamp()
            grip_pub.publish(JointState(name=["gripper_finger_gap"], position=[gap], header=_hdr(st)))
            for n, (p, qt) in poses.items():
                m = PoseStamped(header=_hdr(st, "sim_world"))
                m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in p)
                (m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
                 m.pose.orientation.w) = (float(v) for v in qt)
                pose_pubs[n].publish(m)

        k = [0]

        def obs_msg():
            k[0] += 1
            return observation_to_msg(layout, obs_rows[k[0] % len(obs_rows)])

        def js_msg():
            return build_js(q0, stamp())

        from std_msgs.msg import Bool

        from legion_policy.ros_io import LATCHED_QOS

        enable_pub = bn.node.create_publisher(Bool, "/legion/enable", LATCHED_QOS)
        paths = {
            "graph policy": (Pinger(bn, Float32MultiArray, "/legion/observation", Float32MultiArray, "/legion/action"),
                             obs_msg, None),
            "relay policy": (Pinger(bn, Float32MultiArray, f"{RELAY_NS}/observation", Float32MultiArray,
                                    f"{RELAY_NS}/action"), obs_msg, None),
            "graph chain": (Pinger(bn, JointState, "/joint_states", JointTrajectory,
                                   "/iiwa_arm_controller/joint_trajectory"), js_msg, fresh_inputs),
            "relay chain": (Pinger(bn, JointState, f"{RELAY_NS}/joint_states", JointTrajectory,
                                   f"{RELAY_NS}/trajectory"), js_msg, None),
        }
        interval, timeout = a.interval_ms * 1e-3, a.timeout_ms * 1e-3

        def prepare(name: str) -> None:
            """Before a block of chain pings: sim2real's watchdogs held (and the action watchdog disabled
            motion) while the other paths were measured; fresh joint states, a new enable, settle."""
            if name != "graph chain":
                return
            p, make, before = paths[name]
            for _ in range(5):
                p.ping(make(), timeout, before)
                time.sleep(interval)
            enable_pub.publish(Bool(data=True))
            for _ in range(10):
                p.ping(make(), timeout, before)
                time.sleep(interval)

        # readiness: every path answers (nodes up, agent loaded, discovery done)
        for name, (p, make, before) in paths.items():
            deadline = time.monotonic() + gu.STARTUP_TIMEOUT_S
            prepare(name)
            while p.ping(make(), 0.2, before) is None:
                procs.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: no answer after {gu.STARTUP_TIMEOUT_S:.0f} s; see {procs.log_path}")
                time.sleep(0.1)
            for _ in range(WARMUP):
                p.ping(make(), timeout, before)
                time.sleep(interval)
        lat: dict[str, list[float]] = {n: [] for n in paths}
        lost = {n: 0 for n in paths}
        rearms = 0
        per_round = max(1, a.n // a.rounds)
        t_start = time.monotonic()
        for _ in range(a.rounds):
            for name, (p, make, before) in paths.items():
                prepare(name)
                for _ in range(per_round):
                    dt = p.ping(make(), timeout, before)
                    if dt is None:
                        lost[name] += 1
                        if name == "graph chain":  # a latency spike > 4 periods tripped sim2real's
                            rearms += 1             # action watchdog (motion disabled): re-enable, settle
                            prepare(name)
                    else:
                        lat[name].append(dt)
                    time.sleep(interval)
            procs.check_alive()
        wall = time.monotonic() - t_start
        load = gu.load_note()
    finally:
        if bn is not None:
            bn.close()
        procs.stop()
    holds = sum(1 for line in open(a.log) if "[sim2real]" in line and "hold:" in line)

    print(f"\n{per_round * a.rounds} pings per path in {a.rounds} interleaved rounds, {a.interval_ms:g} ms apart "
          f"({wall:.0f} s); {load} at the end")
    hdr = f"{'path':48s} {'processes':>9s} {'n':>6s} {'lost':>5s} {'p50 [ms]':>9s} {'p99 [ms]':>9s} {'max [ms]':>9s}"
    print(hdr)
    print("-" * len(hdr))
    rows = [("graph policy", "observation -> policy node -> /legion/action", 1),
            ("relay policy", "bare rclpy relay, same message sizes", 1),
            ("graph chain", "joint state -> real2sim -> policy -> sim2real -> traj", 3),
            ("relay chain", "bare rclpy relay chain, same messages", 3)]
    for key, label, nproc in rows:
        v = lat[key]
        print(f"{label:48s} {nproc:9d} {len(v):6d} {lost[key]:5d} {gu.pct(v, 50):9.3f} {gu.pct(v, 99):9.3f} {gu.pct(v, 100):9.3f}")
    for what in ("policy", "chain"):
        g, r = lat[f"graph {what}"], lat[f"relay {what}"]
        print(f"ratio graph / relay ({what}): p50 {gu.pct(g, 50) / gu.pct(r, 50):.2f}x, "
              f"p99 {gu.pct(g, 99) / gu.pct(r, 99):.2f}x, max {gu.pct(g, 100) / gu.pct(r, 100):.2f}x")
    if holds or rearms:
        print(f"note: sim2real logged {holds} watchdog hold(s) (expected between chain blocks); the chain lost {rearms} ping(s) to a latency spike that "
              f"tripped sim2real's action watchdog (re-enabled each time; see {a.log})")
    return 0


def _hdr(stamp, frame: str = ""):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id=frame)


if __name__ == "__main__":
    sys.exit(main())
