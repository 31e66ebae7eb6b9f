"""``legion-robot``: inspect the robot model and check a cell's reachability (no ROS needed).

    legion-robot chain [--model iiwa7|iiwa14|PATH]
        joint frames at the zero pose (base frame), axes and limits.
    legion-robot check-urdf PATH
        validates a URDF as a LEGION robot model; exit 1 with a one-line reason otherwise.
    legion-robot reach (--tasks reach-v3,push-v3,... | --mt10) [--instances 25] [--seed 0]
                       [--model iiwa7] [--base-xyz X Y Z --base-rpy R P Y | --calibration FILE]
                       [--tolerance 0.001] [--worst 5] [--require FRACTION] [--expert-episodes K] [--json]
        which Metaworld v3 task points (hand start = fingertip centre env.tcp_center after
        reset, object 1, goal) are reachable by the tcp with the gripper pointing down from the base pose;
        fraction per task, overall, and the worst cases; optionally also the hand positions
        Metaworld's scripted experts visit while solving K instances per task.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from legion_bridge.calibration import Transform, load_calibration
from legion_bridge.paths import config_path
from legion_bridge.robot.urdf_model import DEFAULT_MODEL, URDFError, load_robot_model

#: Default position tolerance of a reachable point [m].
REACH_TOLERANCE_M = 1e-3
#: Default number of task instances (Metaworld MT1 train tasks) per task.
DEFAULT_INSTANCES = 25
#: Which task points are checked, in this order.
POINT_KINDS = ("hand", "object", "goal")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------- Metaworld points
def mt10_tasks() -> list[str]:
    """The MT10 task names, as the installed Metaworld defines them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from metaworld.env_dict import MT10_V3
    return list(MT10_V3.keys())


@lru_cache(maxsize=None)
def _task_env(task: str, seed: int):
    """(MT1 benchmark, env) for a task; built once per process (construction is the slow part)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import metaworld

        try:
            mt1 = metaworld.MT1(task, seed=seed)
        except Exception as exc:  # unknown name -> ValueError / KeyError from metaworld
            raise CLIError(f"unknown Metaworld task {task!r} ({exc.__class__.__name__}: {exc})") from None
        env = mt1.train_classes[task]()
    return mt1, env


@lru_cache(maxsize=None)
def task_points(task: str, instances: int = DEFAULT_INSTANCES, seed: int = 0) -> np.ndarray:
    """(instances, 3 kinds, 3) sim-frame points of a task: hand start, object 1, goal.

    Each instance is one of ``metaworld.MT1(task, seed).train_tasks``; after ``reset`` the
    hand start is the fingertip centre ``env.tcp_center`` (what the tcp must reach; Metaworld's
    observed hand ``obs[0:3]`` is the hand body, HAND_FROM_TCP_M above it), the object is
    ``obs[4:7]`` (grasp height) and the goal ``env._target_pos``.
    """
    mt1, env = _task_env(task, seed)
    if instances > len(mt1.train_tasks):
        raise CLIError(f"{task}: only {len(mt1.train_tasks)} task instances exist, asked for {instances}")
    out = np.empty((instances, len(POINT_KINDS), 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, tk in enumerate(mt1.train_tasks[:instances]):
            env.set_task(tk)
            obs, _ = env.reset()
            out[i, 0] = np.asarray(env.tcp_center, dtype=np.float64)
            out[i, 1] = obs[4:7]
            out[i, 2] = np.asarray(env._target_pos, dtype=np.float64)
    return out


def _expert_policy(task: str):
    """Metaworld's scripted expert for a task (class name matched loosely: peg-insert-side ->
    SawyerPegInsertionSideV3Policy)."""
    import difflib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from metaworld import policies
    names = {n.lower().replace("sawyer", "").replace("v3policy", ""): n
             for n in dir(policies) if n.endswith("V3Policy")}
    key = task.replace("-v3", "").replace("-", "")
    match = key if key in names else next(iter(difflib.get_close_matches(key, list(names), n=1, cutoff=0.8)), None)
    if match is None:
        raise CLIError(f"no scripted expert policy for {task!r} in metaworld.policies")
    return getattr(policies, names[match])()


@lru_cache(maxsize=None)
def expert_hand_positions(task: str, episodes: int, seed: int = 0, max_steps: int = 500) -> np.ndarray:
    """(n, 3) fingertip-centre (tcp) positions (sim frame) visited by the scripted expert on the
    first ``episodes`` task instances (each episode ends at success or ``max_steps``)."""
    mt1, env = _task_env(task, seed)
    pol = _expert_policy(task)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tk in mt1.train_tasks[:episodes]:
            env.set_task(tk)
            obs, _ = env.reset()
            out.append(np.array(env.tcp_center))
            for _ in range(max_steps):
                obs, _, _, _, info = env.step(pol.get_action(obs))
                out.append(np.array(env.tcp_center))
                if info.get("success"):
                    break
    return np.array(out)


# --------------------------------------------------------------------------- reachability
@dataclass
class ReachReport:
    """Reachability of task points from a base pose."""

    model: str
    sim_from_base_xyz: list
    sim_from_base_rpy: list | None
    tolerance: float
    tasks: dict  # task -> {"reachable": n, "total": n, "fraction": f, "per_kind": {kind: f}}
    reachable: int
    total: int
    worst: list  # dicts: task, instance, kind, point_sim, position_error, orientation_error
    seconds: float
    expert: dict | None = None  # task -> fraction of the expert's visited hand positions reachable

    @property
    def fraction(self) -> float:
        return self.reachable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["fraction"] = self.fraction
        return d


def check_reach(tasks: list[str], sim_from_base: Transform, model: str = DEFAULT_MODEL,
                instances: int = DEFAULT_INSTANCES, seed: int = 0, tolerance: float = REACH_TOLERANCE_M,
                n_worst: int = 5, rpy=None, expert_episodes: int = 0) -> ReachReport:
    """Solve gripper-down IK for every task point; a point is reachable when IK converges
    (orientation held) with a position error below ``tolerance``."""
    from legion_bridge.robot.kinematics import Kinematics

    t0 = time.perf_counter()
    kin = Kinematics(load_robot_model(model), sim_from_base=sim_from_base)
    pts = {t: task_points(t, instances, seed) for t in tasks}
    allp = np.concatenate([p.reshape(-1, 3) for p in pts.values()])
    res = kin.ik(sim_from_base.inverse().apply(allp))
    ok = (res.success & (res.position_error < tolerance)).reshape(len(tasks), instances, len(POINT_KINDS))
    pe = res.position_error.reshape(ok.shape)
    oe = res.orientation_error.reshape(ok.shape)
    # distance of the solution to the nearest joint limit [rad]: small = at the edge of the workspace
    lm = np.min(np.minimum(res.q - kin.lower, kin.upper - res.q), axis=-1).reshape(ok.shape)
    per_task = {}
    for i, t in enumerate(tasks):
        per_task[t] = {
            "reachable": int(ok[i].sum()), "total": int(ok[i].size), "fraction": float(ok[i].mean()),
            "per_kind": {k: float(ok[i, :, j].mean()) for j, k in enumerate(POINT_KINDS)},
        }
    # worst cases: failures first (largest error first), then the solutions closest to a joint limit
    key = np.where(ok, lm, -1e3 - pe).ravel()
    order = np.argsort(key, kind="stable")[:n_worst]
    worst = []
    for flat in order:
        ti, ii, ki = np.unravel_index(flat, ok.shape)
        worst.append({"task": tasks[ti], "instance": int(ii), "kind": POINT_KINDS[ki],
                      "point_sim": [round(float(v), 4) for v in pts[tasks[ti]][ii, ki]],
                      "reachable": bool(ok[ti, ii, ki]),
                      "position_error": float(pe[ti, ii, ki]), "orientation_error": float(oe[ti, ii, ki]),
                      "limit_margin": float(lm[ti, ii, ki])})
    expert = None
    if expert_episodes > 0:
        expert = {}
        for t in tasks:
            h = expert_hand_positions(t, expert_episodes, seed)
            r = kin.ik(sim_from_base.inverse().apply(h))
            expert[t] = float(np.mean(r.success & (r.position_error < tolerance)))
    return ReachReport(expert=expert, model=model, sim_from_base_xyz=[float(v) for v in sim_from_base.t],
                       sim_from_base_rpy=None if rpy is None else [float(v) for v in rpy], tolerance=tolerance,
                       tasks=per_task, reachable=int(ok.sum()), total=int(ok.size), worst=worst,
                       seconds=time.perf_counter() - t0)


def format_report(rep: ReachReport) -> str:
    rpy = "" if rep.sim_from_base_rpy is None else f" rpy {np.round(rep.sim_from_base_rpy, 4).tolist()}"
    lines = [f"model {rep.model}, base in sim: xyz {np.round(rep.sim_from_base_xyz, 4).tolist()}{rpy}; "
             f"gripper down, tolerance {rep.tolerance * 1e3:g} mm",
             f"{'task':28s} {'reachable':>11s} {'fraction':>9s}   " + " ".join(f"{k:>7s}" for k in POINT_KINDS)]
    for t, r in rep.tasks.items():
        lines.append(f"{t:28s} {r['reachable']:>5d}/{r['total']:<5d} {r['fraction']:>9.4f}   "
                     + " ".join(f"{r['per_kind'][k]:>7.3f}" for k in POINT_KINDS))
    lines.append(f"{'ALL':28s} {rep.reachable:>5d}/{rep.total:<5d} {rep.fraction:>9.4f}")
    lines.append("worst cases (task, instance, point, sim xyz, position error, orientation error, "
                 "distance of the solution to the nearest joint limit):")
    for w in rep.worst:
        lines.append(f"  {'ok  ' if w['reachable'] else 'FAIL'} {w['task']:26s} #{w['instance']:<3d} {w['kind']:6s} "
                     f"{str(w['point_sim']):28s} {w['position_error'] * 1e3:8.3f} mm {math.degrees(w['orientation_error']):7.3f} deg "
                     f"{math.degrees(w['limit_margin']):6.1f} deg")
    if rep.expert:
        lines.append("hand positions visited by Metaworld's scripted experts, reachable fraction:")
        for t, f in rep.expert.items():
            lines.append(f"  {t:28s} {f:.4f}")
        lines.append(f"  {'mean':28s} {np.mean(list(rep.expert.values())):.4f}")
    lines.append(f"({rep.seconds:.1f} s)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- chain
def format_chain(model_name: str) -> str:
    from legion_bridge.robot.kinematics import Kinematics

    m = load_robot_model(model_name)
    kin = Kinematics(m)
    T = kin.link_poses(np.zeros(m.n_joints))
    lines = [f"{m.name} ({m.urdf_file}): frames at the zero pose, in the base frame {m.base_link} [m]",
             f"{'frame':14s} {'joint':22s} {'type':10s} {'x':>8s} {'y':>8s} {'z':>8s}  {'axis (base)':14s} limits"]
    lines.append(f"{m.base_link:14s} {'-':22s} {'base':10s} {0:8.4f} {0:8.4f} {0:8.4f}")
    for i, j in enumerate(m.chain):
        p = T[i + 1, :3, 3]
        axis = ""
        lim = ""
        if j.movable:
            a = T[i + 1, :3, :3] @ j.axis
            axis = "(" + ", ".join(f"{v:+.0f}" if abs(v - round(v)) < 1e-9 else f"{v:+.2f}" for v in a) + ")"
            lim = (f"[{math.degrees(j.lower):+.0f}, {math.degrees(j.upper):+.0f}] deg, "
                   f"{math.degrees(j.velocity):.0f} deg/s, {j.effort:g} Nm")
        lines.append(f"{j.child:14s} {j.name:22s} {j.type:10s} {p[0]:8.4f} {p[1]:8.4f} {p[2]:8.4f}  {axis:14s} {lim}")
    g = m.gripper
    lines.append(f"gripper: fingers {', '.join(g.finger_joint_names)}, travel "
                 f"{', '.join(f'{v * 1e3:g}' for v in g.finger_travel)} mm each, gap 0..{g.max_gap * 1e3:g} mm; "
                 f"tcp {m.tcp_from_flange[2, 3]:.4f} m beyond {m.flange_link}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legion-robot", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chain", help="print the joint frames at the zero pose")
    c.add_argument("--model", default=DEFAULT_MODEL, help="iiwa7 | iiwa14 | a URDF path (default %(default)s)")
    u = sub.add_parser("check-urdf", help="validate a URDF as a LEGION robot model")
    u.add_argument("path")
    r = sub.add_parser("reach", help="reachability of Metaworld task points from a base pose")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--tasks", help="comma-separated Metaworld v3 task names")
    g.add_argument("--mt10", action="store_true", help="the 10 MT10 tasks")
    r.add_argument("--instances", type=int, default=DEFAULT_INSTANCES, help="task instances per task (default %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="metaworld.MT1 seed (default %(default)s)")
    r.add_argument("--model", default=DEFAULT_MODEL, help="iiwa7 | iiwa14 | a URDF path (default %(default)s)")
    r.add_argument("--base-xyz", nargs=3, type=float, metavar=("X", "Y", "Z"), help="base position in the sim frame [m]")
    r.add_argument("--base-rpy", nargs=3, type=float, metavar=("R", "P", "Y"),
                   help="base roll-pitch-yaw in the sim frame [rad] (extrinsic xyz, as calibration.yaml)")
    r.add_argument("--calibration", help="calibration file (default: config/calibration.yaml)")
    r.add_argument("--tolerance", type=float, default=REACH_TOLERANCE_M, help="position tolerance [m] (default %(default)s)")
    r.add_argument("--worst", type=int, default=5, help="number of worst cases to list (default %(default)s)")
    r.add_argument("--require", type=float, default=None,
                   help="exit 1 when the overall reachable fraction is below this")
    r.add_argument("--expert-episodes", type=int, default=0,
                   help="also check the hand positions visited by Metaworld's scripted expert on this many "
                        "instances per task (default %(default)s)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _base_pose(a) -> tuple[Transform, list | None]:
    if a.calibration and (a.base_xyz or a.base_rpy):
        raise CLIError("give either --calibration or --base-xyz/--base-rpy, not both")
    if a.base_xyz or a.base_rpy:
        xyz = a.base_xyz or [0.0, 0.0, 0.0]
        rpy = a.base_rpy or [0.0, 0.0, 0.0]
        if not all(math.isfinite(v) for v in [*xyz, *rpy]):
            raise CLIError("--base-xyz/--base-rpy must be finite numbers")
        return Transform.from_xyz_rpy(xyz, rpy), list(rpy)
    path = Path(a.calibration) if a.calibration else config_path("calibration.yaml")
    try:
        cal = load_calibration(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    from legion_bridge.calibration import read_ros_params

    return cal.sim_from_base, read_ros_params(path).get("sim_from_base_rpy")


def main(args=None) -> int:
    a = _parser().parse_args(args)
    try:
        if a.cmd == "chain":
            print(format_chain(a.model))
            return 0
        if a.cmd == "check-urdf":
            if not Path(a.path).is_file():
                print(f"invalid: {a.path}: no such file", file=sys.stderr)
                return 1
            try:
                m = load_robot_model(a.path)
            except URDFError as exc:
                print(f"invalid: {exc}", file=sys.stderr)
                return 1
            print(f"ok: {m.name}: joints {', '.join(m.joint_names)}; tcp {m.tcp_from_flange[2, 3]:.4f} m beyond "
                  f"{m.flange_link}; gripper fingers {', '.join(m.gripper.finger_joint_names) or 'none'}")
            return 0
        # reach
        tasks = mt10_tasks() if a.mt10 else [t.strip() for t in a.tasks.split(",") if t.strip()]
        if not tasks:
            raise CLIError("--tasks: no task names given")
        if a.instances < 1:
            raise CLIError("--instances must be at least 1")
        if not (a.tolerance > 0):
            raise CLIError("--tolerance must be positive")
        sim_from_base, rpy = _base_pose(a)
        os.environ.setdefault("MUJOCO_GL", "egl")
        rep = check_reach(tasks, sim_from_base, model=a.model, instances=a.instances, seed=a.seed,
                          tolerance=a.tolerance, n_worst=a.worst, rpy=rpy, expert_episodes=a.expert_episodes)
        print(json.dumps(rep.to_dict(), indent=1) if a.json else format_report(rep))
        if a.require is not None and rep.fraction < a.require:
            print(f"reachable fraction {rep.fraction:.4f} is below the required {a.require}", file=sys.stderr)
            return 1
        return 0
    except CLIError as exc:
        print(f"legion-robot: {exc}", file=sys.stderr)
        return 2
    except URDFError as exc:
        print(f"legion-robot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
