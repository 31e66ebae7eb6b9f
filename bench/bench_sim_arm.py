"""Real-time factor of the sim_arm core and node against bare mujoco.mj_step of the same model.

Run: ``.venv/bin/python bench/bench_sim_arm.py [--scene push-v3] [--seconds 20]``.
Three runs side by side in this process, each simulating ``--seconds`` of sim time while the
arm follows a moving joint trajectory:

1. baseline: ``mujoco.mj_step`` of the cell's compiled model (servo targets held);
2. core: :meth:`SimArm.step` (trajectory sampling, velocity-limited setpoint, feed-forward);
3. node: :class:`SimArmNode` as fast as possible (``real_time_factor <= 0``), publishing
   /clock, /joint_states (200 Hz), gripper state, object poses and success, nobody listening.

Prints the real-time factor (sim seconds per wall second) of each and the ratios to the
baseline.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import mujoco
import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def bench_bare(sim, seconds: float) -> float:
    m, d = sim.cell.model, sim.cell.data
    n = int(round(seconds / m.opt.timestep))
    t0 = time.perf_counter()
    mujoco.mj_step(m, d, nstep=n)
    return seconds / (time.perf_counter() - t0)


def bench_bare_python_loop(sim, seconds: float) -> float:
    m, d = sim.cell.model, sim.cell.data
    n = int(round(seconds / m.opt.timestep))
    t0 = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(m, d)
    return seconds / (time.perf_counter() - t0)


def bench_core(sim, seconds: float) -> float:
    q0 = sim.joint_positions()
    n_pts = 10
    times = np.linspace(seconds / n_pts, seconds, n_pts)
    pts = [q0 + 0.2 * np.sin(np.arange(7) + k) for k in range(n_pts)]
    sim.command_trajectory(sim.joint_names, times, pts)
    t0 = time.perf_counter()
    sim.advance(seconds)
    return seconds / (time.perf_counter() - t0)


def bench_node(scene: str, seconds: float) -> float:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from legion_bridge.nodes.sim_arm_node import SimArmNode

    ctx = Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    node = SimArmNode(context=ctx, parameter_overrides=[Parameter("scene", value=scene),
                                                        Parameter("real_time_factor", value=0.0)])
    ex.add_node(node)
    try:
        s0, t0 = node.sim.time, time.perf_counter()
        while node.sim.time - s0 < seconds:
            ex.spin_once(timeout_sec=0.05)
        rtf = (node.sim.time - s0) / (time.perf_counter() - t0)
    finally:
        node.destroy_node()
        ex.shutdown()
        rclpy.shutdown(context=ctx)
    return rtf


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="push-v3")
    ap.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per run")
    ap.add_argument("--no-node", action="store_true", help="skip the rclpy node run")
    a = ap.parse_args(argv)
    from legion_bridge.sim.sim_arm import SimArm

    sim = SimArm(a.scene)
    results = {"bare mj_step (nstep loop in C)": bench_bare(sim, a.seconds)}
    sim.reset(seed=0)
    results["bare mj_step (one call per step)"] = bench_bare_python_loop(sim, a.seconds)
    sim.reset(seed=0)
    results["SimArm core"] = bench_core(sim, a.seconds)
    if not a.no_node:
        results["sim_arm node (as fast as possible)"] = bench_node(a.scene, a.seconds)
    base = results["bare mj_step (nstep loop in C)"]
    print(f"scene {a.scene}, model nv={sim.cell.model.nv}, timestep {sim.timestep * 1e3:.2f} ms, "
          f"{a.seconds:g} s simulated per run")
    print(f"{'run':40s} {'real-time factor':>17s} {'vs bare mj_step':>16s}")
    for name, rtf in results.items():
        print(f"{name:40s} {rtf:17.1f} {rtf / base:16.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
