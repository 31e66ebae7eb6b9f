"""Soak of the full simulated graph at 200 Hz joint states: missed policy periods, joint-state rate, memory growth.

Run: ``ROS_DOMAIN_ID=<n> .venv/bin/python bench/bench_soak.py [--agent DIR] [--duration 600] [--skill reach-v3]``.

Side by side in one run, both started with ``legion_bridge.launcher``'s ``GraphProcesses``:

* graph: the sim graph of ``legion_bridge.graph`` (sim_arm at real time with scene = the skill, /clock and
  /joint_states at 200 Hz; real2sim; policy with the skill active; sim2real enabled; monitor), the agent
  acting for ``--duration`` seconds. Every ``--reset-every`` s the bench resets the cell to a new placement
  (``/sim/reset`` with a new seed) and re-enables motion, so the arm keeps moving instead of resting at a
  workspace boundary. (The sequencer is left out: it ends the graph after its steps.)
* relay: a bare rclpy graph of the same shape and message sizes (a 200 Hz JointState source that consumes
  the trajectory commands, and three relays JointState -> observation array (at the 12.5 ms policy period,
  real2sim's due rule) -> action array -> JointTrajectory).

Measured from the bench's own subscriber:

* missed policy periods: gaps between consecutive actions (``/legion/action``; the relay's action topic)
  longer than 1.5 x the policy period, counted as ``round(gap / period) - 1`` missed periods each (wall clock);
  and actions received against the simulated time (graph) / wall time (relay) divided by the period;
* joint-state rate (wall clock; the graph's also per simulated second) and the simulation's real-time factor;
* RSS of every node process (``/proc/<pid>/status`` VmRSS every ``--sample-s``): mean of the first minute vs
  mean of the last minute (the first/last third for runs shorter than 3 minutes), growth in MiB and MiB/h.
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

RELAY_NS = "/bench/soak"
#: A gap between two actions longer than this many policy periods counts as missed periods.
GAP_FACTOR = 1.5
#: Seconds of start-up after which counting begins (the graph settled, the agent loaded).
WARMUP_S = 5.0
#: Length of the RSS comparison windows [s] (first vs last minute).
RSS_WINDOW_S = 60.0


class Stream:
    """Arrival times (wall, perf_counter) of a topic, plus the latest simulated time at each arrival."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.counting = False

    def on(self, _msg=None) -> None:
        if self.counting:
            t = time.perf_counter()
            with self.lock:
                self.times.append(t)


def gap_stats(times: list[float], period: float) -> tuple[int, int, float]:
    """(gaps > GAP_FACTOR x period, missed periods in them, max gap [s])."""
    import numpy as np

    if len(times) < 2:
        return 0, 0, float("nan")
    d = np.diff(np.asarray(times))
    big = d[d > GAP_FACTOR * period]
    return int(big.size), int(np.sum(np.maximum(np.round(big / period) - 1, 1))), float(d.max())


def rss_table(samples: dict[str, list[tuple[float, int]]], duration: float) -> list[tuple]:
    """Per process: (name, first-window MiB, last-window MiB, growth MiB, MiB/h)."""
    import numpy as np

    win = min(RSS_WINDOW_S, duration / 3.0)
    rows = []
    for name, s in samples.items():
        if not s:
            continue
        t = np.asarray([x[0] for x in s])
        r = np.asarray([x[1] for x in s], dtype=float) / 1024.0
        first = r[t <= t[0] + win].mean()
        last = r[t >= t[-1] - win].mean()
        span_h = max((t[-1] - t[0]) - win, 1e-9) / 3600.0  # distance between the window centres
        rows.append((name, first, last, last - first, (last - first) / span_h))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=None, help="frozen agent directory (default: the shipped agents/default)")
    ap.add_argument("--skill", default=None, help="active skill and scene (default: the agent's first skill)")
    ap.add_argument("--duration", type=float, default=600.0, help="soak length [s] (shorter for a quick check)")
    ap.add_argument("--reset-every", type=float, default=30.0, help="new cell placement every this many s (0: never)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period [s]")
    ap.add_argument("--no-relay", action="store_true", help="leave out the bare relay graph")
    ap.add_argument("--log", default="runs/bench/soak.log", help="node output")
    a = ap.parse_args(argv)
    agent_dir = gu.default_agent_or_exit(a.agent)

    import json as _json

    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float32MultiArray, String

    from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS

    manifest = _json.loads((Path(agent_dir) / "manifest.json").read_text())
    skills = [s["name"] for s in manifest["skills"]]
    skill = a.skill or skills[0]
    if skill not in skills:
        print(f"bench_soak: agent has no skill {skill!r}; skills: {skills}", file=sys.stderr)
        return 2
    period = float(manifest["control_period_s"])
    from legion_policy.tasks import default_binding

    binding = default_binding(skill).with_(skill=skill).to_json()
    graph = gu.graph_commands("sim", {"agent": agent_dir, "scene": skill, "enable": "true"},
                              ["sim_arm", "real2sim", "policy", "sim2real", "monitor"],
                              {"policy": {"initial_task": skill}, "real2sim": {"default_binding": binding}})
    obs_kind = f"observation={manifest['observation_layout']['name']}"  # arrays of the agent's observation size
    relay = [] if a.no_relay else [
        gu.relay_command("relay_source", "--out", f"{RELAY_NS}/joint_states", "--command", f"{RELAY_NS}/trajectory",
                         kind="source"),
        gu.relay_command("relay_r2s", "--name", "relay_r2s", "--in", f"joint_state:{RELAY_NS}/joint_states",
                         "--out", f"{obs_kind}:{RELAY_NS}/observation", "--period-s", repr(period)),
        gu.relay_command("relay_pol", "--name", "relay_pol", "--in", f"{obs_kind}:{RELAY_NS}/observation",
                         "--out", f"action:{RELAY_NS}/action", "--report-s", "1.0"),
        gu.relay_command("relay_s2r", "--name", "relay_s2r", "--in", f"action:{RELAY_NS}/action",
                         "--out", f"trajectory:{RELAY_NS}/trajectory"),
    ]
    print(f"agent {agent_dir}, skill {skill}, soak {a.duration:g} s; {gu.load_note()}", flush=True)
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    Path(a.log).write_text("")
    procs = gu.Processes(graph + relay, a.log)
    bn = None
    streams = {k: Stream() for k in ("js", "action", "relay_js", "relay_action")}
    clock = {"first": None, "last": None, "latest": 0.0}
    rss: dict[str, list[tuple[float, int]]] = {c.name: [] for c in graph + relay}
    resets = 0
    policy_counts: list[tuple[float, int, float]] = []  # (wall time, actions published, sim time at receipt)
    try:
        procs.start()
        bn = gu.BenchNode("bench_soak")
        node = bn.node
        node.create_subscription(JointState, "/joint_states", streams["js"].on, STREAM_QOS)
        node.create_subscription(Float32MultiArray, "/legion/action", streams["action"].on, STREAM_QOS)
        node.create_subscription(JointState, f"{RELAY_NS}/joint_states", streams["relay_js"].on, STREAM_QOS)
        node.create_subscription(Float32MultiArray, f"{RELAY_NS}/action", streams["relay_action"].on, STREAM_QOS)

        def on_clock(msg) -> None:
            clock["latest"] = msg.clock.sec + msg.clock.nanosec * 1e-9

        node.create_subscription(Clock, "/clock", on_clock, 10)
        from diagnostic_msgs.msg import DiagnosticArray

        def on_diag(msg) -> None:  # the policy node's own count of published actions
            for st in msg.status:
                vals = {kv.key: kv.value for kv in st.values}
                if "actions_published" in vals:
                    policy_counts.append((time.time(), int(float(vals["actions_published"])), clock["latest"]))

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
        reset_pub = node.create_publisher(String, "/sim/reset", 10)
        enable_pub = node.create_publisher(Bool, "/legion/enable", LATCHED_QOS)
        # start-up: actions flow in the graph (and the relay)
        gu.wait_until(lambda: clock["latest"] > 0, gu.STARTUP_TIMEOUT_S, "/clock from sim_arm", procs)
        streams["action"].counting = True
        if relay:
            streams["relay_action"].counting = True
        gu.wait_until(lambda: len(streams["action"].times) > 10 and (not relay or len(streams["relay_action"].times) > 10),
                      gu.STARTUP_TIMEOUT_S, "actions from the policy node (and the relay)", procs)
        enable_pub.publish(Bool(data=True))
        time.sleep(WARMUP_S)
        for s in streams.values():
            with s.lock:
                s.times.clear()
            s.counting = True
        t0 = time.perf_counter()
        t0_wall = time.time()
        clock["first"] = clock["latest"]
        next_sample = next_reset = t0
        pids = procs.pids()
        while (now := time.perf_counter()) - t0 < a.duration:
            procs.check_alive()
            if now >= next_sample:
                for name, pid in pids.items():
                    v = gu.rss_kib(pid)
                    if v is not None:
                        rss[name].append((now - t0, v))
                next_sample += a.sample_s
            if a.reset_every > 0 and now >= next_reset + a.reset_every:
                resets += 1
                reset_pub.publish(String(data=json.dumps({"scene": skill, "seed": resets})))
                enable_pub.publish(Bool(data=True))
                next_reset = now
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        t1_wall = time.time()
        for s in streams.values():
            s.counting = False
        clock["last"] = clock["latest"]
        load = gu.load_note()
    finally:
        if bn is not None:
            bn.close()
        procs.stop()

    text = Path(a.log).read_text()
    disables = text.count("motion disabled by the watchdog")
    holds = sum(1 for line in text.splitlines() if line.startswith("[sim2real") and "hold: watchdog" in line)
    sim_s = clock["last"] - clock["first"]
    g_gaps = gap_stats(streams["action"].times, period)
    r_gaps = gap_stats(streams["relay_action"].times, period)
    n_js, n_act = len(streams["js"].times), len(streams["action"].times)
    n_rjs, n_ract = len(streams["relay_js"].times), len(streams["relay_action"].times)
    # own counts: the policy node's actions_published (diagnostics) over simulated time; the relay's printed count
    pc = [c for c in policy_counts if t0_wall <= c[0] <= t1_wall]
    own_g = (pc[-1][1] - pc[0][1], (pc[-1][2] - pc[0][2]) / period) if len(pc) >= 2 else None
    rc = []
    for line in text.splitlines():
        if line.startswith("[relay_pol") and " count " in line:
            tw, n = line.split(" count ", 1)[1].split()[:2]
            if t0_wall <= float(tw) <= t1_wall:
                rc.append((float(tw), int(n)))
    own_r = (rc[-1][1] - rc[0][1], (rc[-1][0] - rc[0][0]) / period) if len(rc) >= 2 else None
    print(f"\nsoak {wall:.0f} s wall, {sim_s:.1f} s simulated (sim_arm real-time factor {sim_s / wall:.3f}); "
          f"{resets} cell resets; policy period {period * 1e3:.1f} ms; {load} at the end")
    hdr = f"{'metric':52s} {'graph':>12s} {'bare relay':>12s}"
    print(hdr)
    print("-" * len(hdr))
    na = "-"

    def row(label, g, r=na):
        print(f"{label:52s} {g:>12s} {r:>12s}")

    row("joint-state rate [Hz, wall clock]", f"{n_js / wall:.1f}", f"{n_rjs / wall:.1f}" if relay else na)
    row("joint-state rate [Hz, simulated time]", f"{n_js / sim_s:.1f}" if sim_s > 0 else na)
    def own(o):
        return f"{o[1] - o[0]:.0f} ({100 * (o[1] - o[0]) / max(o[1], 1):.1f}%)" if o else na

    row("actions published (node's own count)", f"{own_g[0]}" if own_g else na, f"{own_r[0]}" if own_r else na)
    row("expected in the same window", f"{own_g[1]:.0f} sim" if own_g else na, f"{own_r[1]:.0f} wall" if own_r else na)
    row("missed periods by own count", own(own_g), own(own_r) if relay else na)
    row("actions received by the bench", f"{n_act}", f"{n_ract}" if relay else na)
    row("expected actions (time / policy period)", f"{sim_s / period:.0f} sim", f"{wall / period:.0f} wall" if relay else na)
    g_miss, r_miss = sim_s / period - n_act, wall / period - n_ract
    g_pct, r_pct = 100 * g_miss / max(sim_s / period, 1), 100 * r_miss / max(wall / period, 1)
    row("missed periods by the bench's receipt", f"{g_miss:.0f} ({g_pct:.1f}%)",
        f"{r_miss:.0f} ({r_pct:.1f}%)" if relay else na)
    row(f"gaps > {GAP_FACTOR:g} x period (wall clock)", f"{g_gaps[0]}", f"{r_gaps[0]}" if relay else na)
    row("missed periods in those gaps", f"{g_gaps[1]}", f"{r_gaps[1]}" if relay else na)
    row("missed periods in gaps / expected [%]", f"{100 * g_gaps[1] / max(wall / period, 1):.2f}",
        f"{100 * r_gaps[1] / max(wall / period, 1):.2f}" if relay else na)
    row("longest gap between actions [ms]", f"{g_gaps[2] * 1e3:.1f}", f"{r_gaps[2] * 1e3:.1f}" if relay else na)
    row("sim2real watchdog holds (actions or joint states late)", f"{holds}", na)
    row("sim2real action-watchdog disables", f"{disables}", na)

    print(f"\n{'process':14s} {'RSS first [MiB]':>16s} {'RSS last [MiB]':>15s} {'growth [MiB]':>13s} {'[MiB/h]':>9s}")
    print("-" * 71)
    rows = rss_table(rss, wall)
    for name, first, last, grow, per_h in rows:
        print(f"{name:14s} {first:16.1f} {last:15.1f} {grow:13.2f} {per_h:9.1f}")
    g_grow = sum(r[3] for r in rows if not r[0].startswith("relay"))
    r_grow = sum(r[3] for r in rows if r[0].startswith("relay"))
    win = min(RSS_WINDOW_S, wall / 3.0)
    print(f"(first vs last {win:.0f} s of the soak)")
    if relay:
        og = 100 * (own_g[1] - own_g[0]) / own_g[1] if own_g else float("nan")
        orr = 100 * (own_r[1] - own_r[0]) / own_r[1] if own_r else float("nan")
        print(f"ratio graph / relay: missed periods by own count {og:.1f}% / {orr:.1f}%"
              + (f" = {og / orr:.2f}x" if orr > 0 else "")
              + f", by the bench's receipt {g_pct:.1f}% / {r_pct:.1f}%"
              + (f" = {g_pct / r_pct:.2f}x" if r_pct > 0 else "")
              + f", in gaps {g_gaps[1]} / {r_gaps[1]}" + (f" = {g_gaps[1] / r_gaps[1]:.2f}x" if r_gaps[1] else "")
              + f"; RSS growth {g_grow:.2f} MiB over 5 nodes / {r_grow:.2f} MiB over 4 relays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
