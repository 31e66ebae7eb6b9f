"""Real-time factor of sim_arm inside the full sim graph, against the node alone and bare mj_step.

Run: ``ROS_DOMAIN_ID=<n> .venv/bin/python bench/bench_sim_arm_graph.py [--agent DIR] [--seconds 30]``.

``bench/bench_sim_arm.py`` measures the SimArm core and the node in one process; this adds the number that
matters for the demo: sim_arm as its own process (``legion_sim_arm`` from the graph definition, started by
``legion_bridge.launcher``'s ``GraphProcesses``) while real2sim, the policy (skill active, acting on every
observation) and sim2real run beside it on the same 2 cores. Side by side in one run:

1. bare ``mujoco.mj_step`` of the same scene's model in this process (``bench_sim_arm.bench_bare``: the baseline);
2. the sim_arm process alone, as fast as possible (``real_time_factor`` 0), nobody else in the graph;
3. the sim_arm process in the full graph, as fast as possible;
4. the sim_arm process in the full graph at real time (``real_time_factor`` 1, as deployed): the achieved factor
   (1.0 = it keeps up) and the slowest 5 s window.

The factor is simulated seconds per wall second from sim_arm's own ``/diagnostics`` (``sim_time_s``), read
by the bench over ``--seconds`` of wall time after a warm-up.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _graph_util as gu  # noqa: E402

WARMUP_S = 5.0
#: Window of the slowest-window figure [s].
WINDOW_S = 5.0


def measure(agent_dir: str, skill: str, only: list[str], rtf: float, seconds: float, log: str) -> dict:
    """Start ``only`` of the sim graph with sim_arm at ``rtf``; sim seconds per wall second over ``seconds``."""
    import json

    from diagnostic_msgs.msg import DiagnosticArray

    from legion_policy.tasks import default_binding

    binding = default_binding(skill).with_(skill=skill).to_json()
    cmds = gu.graph_commands("sim", {"agent": agent_dir, "scene": skill, "enable": "true"}, only,
                             {"sim_arm": {"real_time_factor": rtf}, "policy": {"initial_task": skill},
                              "real2sim": {"default_binding": binding}})
    samples: list[tuple[float, float]] = []
    lock = threading.Lock()
    record = [False]

    def on_diag(msg) -> None:
        for st in msg.status:
            if st.name.endswith("sim_arm") or st.hardware_id == "sim_arm":
                vals = {kv.key: kv.value for kv in st.values}
                if "sim_time_s" in vals:
                    with lock:
                        samples.append((time.perf_counter(), float(vals["sim_time_s"])))

    with gu.Processes(cmds, log) as procs:
        bn = gu.BenchNode("bench_sim_arm_graph")
        try:
            bn.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
            gu.wait_until(lambda: len(samples) > 0, gu.STARTUP_TIMEOUT_S, "sim_arm diagnostics", procs)
            if "policy" in only:
                from std_msgs.msg import Float32MultiArray

                acts = [0]
                bn.node.create_subscription(Float32MultiArray, "/legion/action",
                                            lambda _m: acts.__setitem__(0, acts[0] + 1), 10)
                gu.wait_until(lambda: acts[0] > 0, gu.STARTUP_TIMEOUT_S, "actions from the policy node", procs)
            time.sleep(WARMUP_S)
            with lock:
                samples.clear()
            time.sleep(seconds)
            procs.check_alive()
            with lock:
                s = list(samples)
        finally:
            bn.close()
    if len(s) < 2:
        raise RuntimeError(f"too few sim_arm diagnostics ({len(s)}) in {seconds:g} s; see {log}")
    rtf_mean = (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0])
    worst = float("inf")
    j = 0
    for i in range(len(s)):
        while j < len(s) and s[j][0] - s[i][0] < WINDOW_S:
            j += 1
        if j < len(s):
            worst = min(worst, (s[j][1] - s[i][1]) / (s[j][0] - s[i][0]))
    return {"rtf": rtf_mean, "worst": worst if worst != float("inf") else float("nan"), "sim_s": s[-1][1] - s[0][1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=None, help="frozen agent directory (default: the shipped agents/default)")
    ap.add_argument("--skill", default=None, help="scene and active skill (default: the agent's first skill)")
    ap.add_argument("--seconds", type=float, default=30.0, help="wall seconds measured per graph run")
    ap.add_argument("--log", default="runs/bench/sim_arm_graph.log", help="node output")
    a = ap.parse_args(argv)
    agent_dir = gu.default_agent_or_exit(a.agent)
    import json

    skills = [s["name"] for s in json.loads((Path(agent_dir) / "manifest.json").read_text())["skills"]]
    skill = a.skill or skills[0]
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    Path(a.log).write_text("")
    print(f"agent {agent_dir}, scene/skill {skill}; {gu.load_note()}", flush=True)

    from bench_sim_arm import bench_bare

    from legion_bridge.sim.sim_arm import SimArm

    sim = SimArm(skill)
    bare = bench_bare(sim, 10.0)
    del sim
    graph = ["sim_arm", "real2sim", "policy", "sim2real"]
    runs = [("sim_arm process alone, as fast as possible", ["sim_arm"], 0.0),
            ("sim_arm in the full graph, as fast as possible", graph, 0.0),
            ("sim_arm in the full graph, real time (deployed)", graph, 1.0)]
    res = {}
    for label, only, rtf in runs:
        res[label] = measure(agent_dir, skill, only, rtf, a.seconds, a.log)
        print(f"  {label}: {res[label]['rtf']:.2f}", flush=True)
    alone = res[runs[0][0]]["rtf"]
    print(f"\n{a.seconds:g} s wall per graph run; {gu.load_note()} at the end")
    hdr = f"{'run':50s} {'real-time factor':>17s} {'slowest 5 s':>12s} {'vs bare':>8s} {'vs alone':>9s}"
    print(hdr)
    print("-" * len(hdr))
    print(f"{'bare mj_step (nstep loop in C, this process)':50s} {bare:17.2f} {'-':>12s} {1.0:8.3f} {'-':>9s}")
    for label, _, _ in runs:
        r = res[label]
        print(f"{label:50s} {r['rtf']:17.2f} {r['worst']:12.2f} {r['rtf'] / bare:8.3f} {r['rtf'] / alone:9.3f}")
    rt = res[runs[2][0]]
    print(f"in-graph real-time factor at real_time_factor 1: {rt['rtf']:.3f} (slowest {WINDOW_S:g} s window "
          f"{rt['worst']:.3f}); headroom as fast as possible in the graph: {res[runs[1][0]]['rtf']:.2f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
