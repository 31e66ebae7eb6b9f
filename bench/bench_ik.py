"""Median IK solve time of legion_bridge.robot.kinematics against scipy.optimize.least_squares.

Same problems, same process, side by side:
* cold: a tcp target with the gripper down and no warm start. Ours: closed-form elbow-up seed +
  damped least squares. Baseline: least_squares (trust-region reflective, joint limits as
  bounds, our analytic Jacobian) from a fixed elbow-up home posture (the closed-form solution
  at the middle of the workspace).
* warm: a control loop along paths of 5 mm steps, each solve seeded with the previous answer
  (both solvers get the same seeds).
Targets lie in the MT10 region of the sim frame, mapped to the base frame with
config/calibration.yaml. Prints medians, success rates and the ratio baseline / ours.

    .venv/bin/python bench/bench_ik.py [--model iiwa7] [--n 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

from legion_bridge.calibration import load_calibration  # noqa: E402
from legion_bridge.paths import config_path  # noqa: E402
from legion_bridge.robot.kinematics import Kinematics, rotation_error  # noqa: E402

#: MT10 region of the sim frame (inside Metaworld's hand box) the targets are drawn from [m]
SIM_LO = np.array([-0.28, 0.42, 0.03])
SIM_HI = np.array([0.28, 0.88, 0.25])
#: step between consecutive warm-start targets [m] (a control period's hand motion)
PATH_STEP = 0.005
#: tolerances both solvers must meet to count as solved (the IK defaults)
POS_TOL, ROT_TOL = 1e-4, 1e-3


def baseline_ik(kin: Kinematics, target: np.ndarray, R_target: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """scipy least_squares on the 6-d pose error with joint limits as bounds."""
    m = kin.config.limit_margin

    def residual(q):
        p, R = kin.fk(q)
        return np.concatenate([p - target, -rotation_error(R_target, R)])

    def jac(q):
        return kin.jacobian(q)

    r = least_squares(residual, np.clip(seed, kin.lower + m, kin.upper - m), jac=jac,
                      bounds=(kin.lower + m, kin.upper - m), xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=200)
    return r.x


def errors(kin, q, target, R_target):
    p, R = kin.fk(q)
    return float(np.linalg.norm(p - target)), float(np.linalg.norm(rotation_error(R_target, R)))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(args=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="iiwa7")
    ap.add_argument("--n", type=int, default=300, help="cold problems (and warm path steps)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(args)

    cal = load_calibration(config_path("calibration.yaml"))
    kin = Kinematics(a.model, sim_from_base=cal.sim_from_base)
    Rd = kin.gripper_down_R
    rng = np.random.default_rng(a.seed)
    cold_targets = cal.base_from_sim.apply(rng.uniform(SIM_LO, SIM_HI, size=(a.n, 3)))
    home = kin.closed_form_seed(cal.base_from_sim.apply(0.5 * (SIM_LO + SIM_HI)))

    # warm: straight segments between random waypoints, PATH_STEP apart
    way = rng.uniform(SIM_LO, SIM_HI, size=(12, 3))
    path = []
    for p0, p1 in zip(way[:-1], way[1:]):
        k = max(2, int(np.ceil(np.linalg.norm(p1 - p0) / PATH_STEP)))
        path.extend(p0 + (p1 - p0) * s for s in np.linspace(0, 1, k, endpoint=False))
    path = cal.base_from_sim.apply(np.array(path[: a.n + 1]))

    kin.ik(cold_targets[0])  # warm up caches / first-call overheads
    baseline_ik(kin, cold_targets[0], Rd, home)

    rows = {}
    # ---- cold
    t_ours, t_base, ok_ours, ok_base = [], [], 0, 0
    for t in cold_targets:
        r, dt = timed(lambda: kin.ik(t))
        t_ours.append(dt)
        ok_ours += bool(r.success)
        qb, dt = timed(lambda: baseline_ik(kin, t, Rd, home))
        t_base.append(dt)
        pe, oe = errors(kin, qb, t, Rd)
        ok_base += (pe < POS_TOL) and (oe < ROT_TOL)
    rows["cold"] = (t_ours, t_base, ok_ours / len(cold_targets), ok_base / len(cold_targets))

    # ---- warm (both seeded with our previous answer, so the seeds are identical)
    t_ours, t_base, ok_ours, ok_base = [], [], 0, 0
    q = kin.ik(path[0]).q
    for t in path[1:]:
        qb, dt = timed(lambda: baseline_ik(kin, t, Rd, q))
        t_base.append(dt)
        pe, oe = errors(kin, qb, t, Rd)
        ok_base += (pe < POS_TOL) and (oe < ROT_TOL)
        r, dt = timed(lambda: kin.ik(t, q))
        t_ours.append(dt)
        ok_ours += bool(r.success)
        q = r.q
    rows["warm"] = (t_ours, t_base, ok_ours / (len(path) - 1), ok_base / (len(path) - 1))

    # ---- batched cold solve (the reachability check's use)
    r, dt_batch = timed(lambda: kin.ik(cold_targets))

    print(f"IK benchmark: {a.model}, gripper down, base pose from config/calibration.yaml, "
          f"{len(cold_targets)} cold problems, {len(path) - 1} warm steps of {PATH_STEP * 1e3:g} mm")
    print(f"{'case':6s} {'ours median':>12s} {'baseline median':>16s} {'ratio':>7s} {'ours ok':>8s} {'baseline ok':>12s}")
    for case, (to, tb, so, sb) in rows.items():
        mo, mb = np.median(to) * 1e3, np.median(tb) * 1e3
        print(f"{case:6s} {mo:9.3f} ms {mb:13.3f} ms {mb / mo:6.1f}x {so:8.3f} {sb:12.3f}")
    print(f"batched cold: {len(cold_targets)} targets in {dt_batch * 1e3:.1f} ms "
          f"({dt_batch / len(cold_targets) * 1e6:.0f} us per target), success {r.success.mean():.3f}")
    print("baseline = scipy.optimize.least_squares (trf, bounds = joint limits, analytic Jacobian); "
          "ratio = baseline median / ours median")


if __name__ == "__main__":
    main()
