"""Policy inference time inside the node path against the raw torch forward of the same network.

Same process, same agent (the deployed architecture: encoder 3x400, actor 4x300, exported and
loaded through the frozen-agent format), same recorded-like observations, side by side:

* node path: a real PolicyNode (rclpy) handling a labelled Float32MultiArray observation:
  layout validation (ros_io.msg_to_observation), PolicyCore.act, the action message, publish
  on /legion/action. Timed from the callback's entry to the return of publish: observation in
  -> action out inside the node (DDS transport excluded; see ``--round-trip``).
* baseline: the raw ``DeployedPolicy(obs, embedding)`` forward on ready float32 tensors.

Prints p50/p99 [ms] of both and the ratios node / raw; the target is node p99 < 1 ms (wall clock).
Also printed: the node path's CPU time of the calling thread, which excludes the time the
process waits for a core: on a shared, loaded machine the wall-clock p99 is set by preemption
(the load average is printed), the CPU-time p99 by the code.
``--round-trip`` also measures observation publish -> action received through DDS from a second
node in the same process (informational: includes the middleware).

    .venv/bin/python bench/bench_policy.py [--n 5000] [--threads 1] [--round-trip]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: Observations timed per path (after WARMUP untimed ones).
DEFAULT_N = 5000
WARMUP = 300
#: Acceptance target for the node path.
TARGET_P99_MS = 1.0


def _observations(n: int, seed: int) -> np.ndarray:
    """Observations in the Metaworld workspace (hand, puck, goal boxes of metaworld-v3.md)."""
    from legion_policy.observation_layout import METAWORLD39
    rng = np.random.default_rng(seed)
    obs = np.zeros((n, METAWORLD39.size))
    for prefix in ("", "prev_"):
        obs[:, METAWORLD39.slice(prefix + "hand_pos")] = rng.uniform([-0.5, 0.4, 0.05], [0.5, 1.0, 0.5], (n, 3))
        obs[:, METAWORLD39.slice(prefix + "gripper_opening")] = rng.uniform(0, 1, (n, 1))
        obs[:, METAWORLD39.slice(prefix + "object1_pos")] = rng.uniform([-0.1, 0.6, 0.02], [0.1, 0.7, 0.02], (n, 3))
        obs[:, METAWORLD39.slice(prefix + "object1_quat")] = [0, 0, 0, 1]
    obs[:, METAWORLD39.slice("goal_pos")] = rng.uniform([-0.1, 0.8, 0.05], [0.1, 0.9, 0.3], (n, 3))
    return obs


def _stats(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=DEFAULT_N, help="timed observations per path")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both paths)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--round-trip", action="store_true", help="also time publish -> action received over DDS")
    ap.add_argument("--eager", action="store_true", help="node runs the eager network (trace_network:=false)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float32MultiArray

    from legion_policy.agent_format import init_random_agent, load_agent
    from legion_policy.nodes.policy_node import PolicyNode
    from legion_policy.observation_layout import METAWORLD39
    from legion_policy.ros_io import STREAM_QOS, observation_to_msg

    load0 = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="bench_policy_")
    agent_dir = init_random_agent(os.path.join(tmp, "agent"), ["reach-v3", "push-v3", "button-press-topdown-v3"],
                                  seed=args.seed)
    agent = load_agent(agent_dir)
    obs = _observations(args.n + WARMUP, args.seed)
    msgs = [observation_to_msg(METAWORLD39, o) for o in obs]

    # --- both paths interleaved per observation (same load, same caches) ------------------------
    policy = agent.policy
    emb = torch.from_numpy(agent.skill("push-v3").embedding.copy()).reshape(1, -1)
    tensors = [torch.from_numpy(o.astype(np.float32)).reshape(1, -1) for o in obs]
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = PolicyNode(context=ctx, parameter_overrides=[
            Parameter("agent_path", value=str(agent_dir)), Parameter("preload_language_model", value=False),
            Parameter("initial_task", value="push-v3"), Parameter("torch_threads", value=args.threads),
            Parameter("trace_network", value=not args.eager)])
        network_mode = node.core.trace_note
        raw, node_times, node_cpu = [], [], []
        for i, (t, m) in enumerate(zip(tensors, msgs)):
            t0 = time.perf_counter()
            with torch.inference_mode():
                policy(t, emb)
            t1 = time.perf_counter()
            c1 = time.thread_time()
            node.on_observation(m)
            c2 = time.thread_time()
            t2 = time.perf_counter()
            if i >= WARMUP:
                raw.append(t1 - t0)
                node_times.append(t2 - t1)
                node_cpu.append(c2 - c1)
        assert node.published == len(msgs) and node.rejected == 0
        internal = list(node.latencies)[-min(len(node.latencies), args.n):]

        round_trip = []
        if args.round_trip:
            ex = SingleThreadedExecutor(context=ctx)
            client = rclpy.create_node("bench_client", context=ctx)
            got = []
            client.create_subscription(Float32MultiArray, "/legion/action", got.append, STREAM_QOS)
            pub = client.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
            ex.add_node(node)
            ex.add_node(client)
            deadline = time.monotonic() + 5
            while (pub.get_subscription_count() == 0 or client.count_publishers("/legion/action") == 0) \
                    and time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.01)
            for i, m in enumerate(msgs[: min(len(msgs), 2000)]):
                n0 = len(got)
                t0 = time.perf_counter()
                pub.publish(m)
                while len(got) == n0:
                    ex.spin_once(timeout_sec=0.01)
                if i >= WARMUP:
                    round_trip.append(time.perf_counter() - t0)
            client.destroy_node()
            ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)

    over = 100.0 * float(np.mean(np.asarray(node_times) > TARGET_P99_MS / 1e3))
    raw50, raw99 = _stats(raw)
    node50, node99 = _stats(node_times)
    int50, int99 = _stats(internal)
    print(f"policy inference, {args.n} observations, torch threads {args.threads}, "
          f"network encoder {list(agent.network_config.encoder_hidden)} actor {list(agent.network_config.actor_hidden)}")
    print(f"node network: {network_mode}; load average before/after: {load0[0]:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs (p99 is sensitive to other processes on the machine)")
    print(f"{'path':<44}{'p50 [ms]':>10}{'p99 [ms]':>10}")
    print(f"{'raw torch forward (baseline)':<44}{raw50:>10.3f}{raw99:>10.3f}")
    print(f"{'node: observation msg in -> action published':<44}{node50:>10.3f}{node99:>10.3f}")
    print(f"{'node: its own latency record (diagnostics)':<44}{int50:>10.3f}{int99:>10.3f}")
    cpu50, cpu99 = _stats(node_cpu)
    print(f"{'node: thread CPU time (no preemption)':<44}{cpu50:>10.3f}{cpu99:>10.3f}")
    if round_trip:
        rt50, rt99 = _stats(round_trip)
        print(f"{'DDS round trip: publish -> action received':<44}{rt50:>10.3f}{rt99:>10.3f}")
    print(f"node path over {TARGET_P99_MS} ms: {over:.2f}% of observations")
    print(f"ratio node / raw: p50 {node50 / raw50:.2f}x, p99 {node99 / raw99:.2f}x")
    ok = node99 < TARGET_P99_MS
    print(f"target node p99 < {TARGET_P99_MS} ms: {'MET' if ok else 'NOT MET'} ({node99:.3f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
