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

``--against REV`` also times the robot package of a git revision (legion_bridge/robot/urdf_model.py and
kinematics.py as they were at REV, e.g. c0c1f84, the last hand-written numpy FK/Jacobian) against this
tree's on the same calls and problems, interleaved in one run: fk, jacobian, IK cold, IK warm, batched
IK, and how far their answers differ.

    .venv/bin/python bench/bench_ik.py [--model iiwa7] [--n 300] [--seed 0] [--against REV]
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
ROOT = Path(__file__).resolve().parent.parent


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
    ap.add_argument("--against", metavar="REV", help="also time legion_bridge/robot at this git revision")
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
    if a.against:
        compare_revision(a.against, kin, cal, cold_targets, path)


def kinematics_at(rev: str):
    """The Kinematics class of legion_bridge/robot at git revision ``rev`` (imported from a copy)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ik_"))
    pkg = tmp / "legion_robot_at_rev"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("urdf_model.py", "kinematics.py"):
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:legion_bridge/robot/{name}"],
                             capture_output=True, text=True, check=True).stdout
        (pkg / name).write_text(src.replace("legion_bridge.robot.urdf_model", "legion_robot_at_rev.urdf_model"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("legion_robot_at_rev.kinematics").Kinematics


def _per_call(fns, items, rounds=5):
    """Median seconds per call of each fn over ``items``, the fns interleaved item by item."""
    t = [[] for _ in fns]
    for _ in range(rounds):
        for x in items:
            for k, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn(x)
                t[k].append(time.perf_counter() - t0)
    return [float(np.median(v)) for v in t]


def compare_revision(rev: str, kin, cal, cold_targets, path) -> None:
    """This tree's FK / Jacobian / IK against the same calls of revision ``rev``, side by side."""
    old = kinematics_at(rev)(kin.model.name, sim_from_base=cal.sim_from_base)
    new = kin
    rng = np.random.default_rng(1)
    Q = rng.uniform(kin.lower, kin.upper, size=(len(cold_targets), kin.n))
    for k in (old, new):  # first calls
        k.fk(Q[0]), k.jacobian(Q[0]), k.ik(cold_targets[0])
    rows = [("fk(q)", *_per_call([old.fk, new.fk], Q)),
            ("jacobian(q)", *_per_call([old.jacobian, new.jacobian], Q)),
            ("ik cold", *_per_call([old.ik, new.ik], cold_targets, rounds=2))]
    # warm: both follow the path from the same start, each with its own previous answer
    q = {id(old): old.ik(path[0]).q, id(new): new.ik(path[0]).q}
    tw = {id(old): [], id(new): []}
    warm_diff = 0.0
    for t in path[1:]:
        for k in (old, new):
            t0 = time.perf_counter()
            q[id(k)] = k.ik(t, q[id(k)]).q
            tw[id(k)].append(time.perf_counter() - t0)
        warm_diff = max(warm_diff, float(np.abs(q[id(old)] - q[id(new)]).max()))
    rows.append(("ik warm", float(np.median(tw[id(old)])), float(np.median(tw[id(new)]))))
    tb = [timed(lambda: k.ik(cold_targets))[1] for _ in range(3) for k in (old, new)]
    rows.append((f"ik batch of {len(cold_targets)}", float(np.median(tb[0::2])), float(np.median(tb[1::2]))))
    print(f"robot package at {rev} vs this tree ({kin.model.name}, same calls, interleaved; medians per call)")
    print(f"{'call':18s} {'at ' + rev:>14s} {'this tree':>12s} {'ratio':>7s}")
    for name, to, tn in rows:
        print(f"{name:18s} {to * 1e6:11.1f} us {tn * 1e6:9.1f} us {to / tn:6.2f}x")
    (po, Ro), (pn, Rn) = old.fk(Q), new.fk(Q)
    ro, rn = old.ik(cold_targets), new.ik(cold_targets)
    print(f"agreement on {len(Q)} configurations / {len(cold_targets)} cold targets / {len(path) - 1} warm steps: "
          f"fk position {np.abs(po - pn).max():.1e} m, rotation {np.abs(Ro - Rn).max():.1e}, "
          f"jacobian {np.abs(old.jacobian(Q) - new.jacobian(Q)).max():.1e}, "
          f"link poses {np.abs(old.link_poses(Q) - new.link_poses(Q)).max():.1e}; "
          f"ik joints cold {np.abs(ro.q - rn.q).max():.1e} rad, warm {warm_diff:.1e} rad; "
          f"same success {bool(np.array_equal(ro.success, rn.success))}, "
          f"same iterations {bool(np.array_equal(ro.iterations, rn.iterations))}")
    print("ratio = time at the revision / time of this tree (> 1: this tree is faster)")


if __name__ == "__main__":
    main()
