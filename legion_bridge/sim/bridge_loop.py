"""The simulated graph without ROS: sim_arm + real2sim + sim2real cores stepped one policy period at a time.

One agent step of the deployed simulated graph is: an observation reaches the policy, its 4-d action goes
through sim2real (target lead cap, workspace box, IK, finger yaw, safety envelope) to a joint command and a
gripper command, the simulated controller and physics run until the next observation, which real2sim builds
from the joint state, the finger gap and the object poses. :class:`BridgeLoop` is exactly that chain, with the
same cores (:class:`~legion_bridge.sim.sim_arm.SimArm`, the sim_arm node's simulator and its
:meth:`~legion_bridge.sim.sim_arm.SimArm.step`, the same call the node's simulation thread makes;
:class:`~legion_bridge.sim2real.Sim2RealCore`; :class:`~legion_bridge.real2sim.Real2SimCore`) configured from
the same parameter files as the launched nodes (:func:`load_bridge_config`: ``legion_bridge.graph.resolve``'s
files for the ``sim`` mode, in the nodes' order), so a change to the bridge or its config changes what the
training environment (legion_training.iiwa_env), the benches and the tests see.

What it leaves out of the graph: transport (every input reaches its core at once, stamped with the
simulation time; no feedback delay) and rates (joint state, finger gap and object poses are sampled once per
policy period, when the observation is built; the nodes publish them at 200 / 100 / 50 Hz). Timing: one step
= ``round(period / timestep)`` physics steps (12.5 ms = 5 x 2.5 ms in simulation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from legion_bridge.calibration import Calibration, read_ros_params
from legion_bridge.hand import HandFrames
from legion_bridge.node_params import DEFAULT_REAL_PERIOD_S
from legion_bridge.real2sim import SIM_FRAME, Real2SimConfig, Real2SimCore
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT, RobotModel
from legion_bridge.safety import SafetyLimits
from legion_bridge.sim.sim_arm import SimArm
from legion_bridge.sim2real import Command, Sim2RealConfig, Sim2RealCore
from legion_policy.observation_layout import METAWORLD_CONTROL_PERIOD_S, ObservationLayout

#: Keys of config/limits.yaml the safety envelope reads (SafetyLimits.from_model).
LIMIT_KEYS = ("acceleration_limits", "position_margin", "velocity_scale", "box_tolerance_m",
              "max_joint_state_age_s", "max_future_stamp_s", "measured_limit_tolerance")
#: The command interfaces of sim2real (config/sim2real.yaml ``command_interface``).
COMMAND_INTERFACES = ("trajectory", "position")


def node_parameters(node: str, mode: str = "sim", values: Mapping[str, str] | None = None) -> dict:
    """The parameters ``node`` is launched with: its spec's defaults, its parameter files
    (``legion_bridge.graph.resolve``) merged over them in order, then the launch arguments' parameters
    (``values``: launch-argument strings, e.g. robot_model)."""
    from legion_bridge.graph import resolve
    from legion_bridge.param_docs import SPECS

    for launch in resolve(mode, dict(values or {})):
        if launch.spec.name == node:
            params: dict = SPECS[node][0].defaults()
            for f in launch.param_files:
                params.update(read_ros_params(f, "/" + node))
            params.update(launch.parameters)
            return params
    raise ValueError(f"the {mode} graph has no node {node!r}")


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the sim2real and real2sim cores are built from (as their nodes build them)."""

    calibration: Calibration
    sim2real: Sim2RealConfig
    real2sim: Real2SimConfig
    limits: Mapping
    command_interface: str = "trajectory"

    @property
    def period_s(self) -> float:
        return self.sim2real.period_s


def _period(p: Mapping) -> float:
    """The policy period of the parameters' mode (bridge_params.policy_period's rule)."""
    mode = p.get("legion_mode", "sim")
    key = "policy_period_sim_s" if mode == "sim" else "policy_period_real_s"
    return float(p.get(key, METAWORLD_CONTROL_PERIOD_S if mode == "sim" else DEFAULT_REAL_PERIOD_S))


def bridge_config(sim2real_params: Mapping, real2sim_params: Mapping) -> BridgeConfig:
    """Configs of the two cores from their nodes' parameters (defaults of the dataclasses for missing keys)."""
    p = dict(sim2real_params)
    period = _period(p)
    dc = Sim2RealConfig()
    keys = set(Sim2RealConfig.__dataclass_fields__) - {"period_s", "horizon_s"}
    s2r = Sim2RealConfig.from_params({**{k: getattr(dc, k) for k in keys}, **{k: p[k] for k in keys if k in p},
                                      "period_s": period,
                                      "horizon_s": period * float(p.get("command_horizon_periods",
                                                                        dc.horizon_s / dc.period_s))})
    r = dict(real2sim_params)
    rkeys = set(Real2SimConfig.__dataclass_fields__) - {"period_s"}
    r2s = Real2SimConfig.from_params({**{k: r[k] for k in rkeys if k in r}, "period_s": _period(r)})
    interface = str(p.get("command_interface", "trajectory"))
    if interface not in COMMAND_INTERFACES:
        raise ValueError(f"command_interface must be one of {COMMAND_INTERFACES}, got {interface!r}")
    return BridgeConfig(Calibration.from_params(p), s2r, r2s, {k: p[k] for k in LIMIT_KEYS if k in p}, interface)


def load_bridge_config(robot_model: str = "iiwa7", values: Mapping[str, str] | None = None) -> BridgeConfig:
    """The simulated graph's bridge config for ``robot_model`` (the files ``legion-launch sim`` loads)."""
    v = {"robot_model": robot_model, **dict(values or {})}
    return bridge_config(node_parameters("sim2real", "sim", v), node_parameters("real2sim", "sim", v))


class BridgeLoop:
    """sim_arm + real2sim + sim2real without ROS; :meth:`step` = one agent step of the simulated graph.

    ``layout``: the observation layout real2sim emits. Every episode (:meth:`start_episode`) starts with fresh
    cores, enabled, as a sequencer step starts on the graph (sim2real re-armed: no commanded target, the
    reference and the yaw from the measured joints; real2sim: frame stacking restarted).
    """

    def __init__(self, sim: SimArm, layout: ObservationLayout, config: BridgeConfig) -> None:
        self.sim = sim
        self.layout = layout
        self.config = config
        robot: RobotModel = sim.robot
        a, b = config.calibration.sim_from_base, sim.cell.calibration.sim_from_base
        if not (np.array_equal(a.t, b.t) and np.array_equal(a.R, b.R)):
            raise ValueError("the bridge's calibration and the simulated cell's base pose differ")
        self.hand = HandFrames(Kinematics(robot, sim_from_base=config.calibration.sim_from_base), config.calibration)
        self.limits = SafetyLimits.from_model(robot, config.calibration.workspace_min,
                                              config.calibration.workspace_max, config.limits)
        self.joint_names = tuple(robot.joint_names)
        steps = config.period_s / sim.timestep
        self.steps_per_period = int(round(steps))
        if self.steps_per_period < 1 or abs(steps - self.steps_per_period) > 1e-9:
            raise ValueError(f"policy period {config.period_s} s is not a whole number of physics steps "
                             f"({sim.timestep} s)")
        self.s2r: Sim2RealCore | None = None
        self.r2s: Real2SimCore | None = None
        self.commands: list[Command] = []  # this episode's commands (holds included), for tests and benches

    @property
    def time(self) -> float:
        return self.sim.time

    def start_episode(self, binding: Mapping) -> np.ndarray:
        """New cores with ``binding`` (the /legion/binding content), motion enabled; the first observation."""
        self.s2r = Sim2RealCore(self.hand, self.limits, self.config.sim2real, enabled=True)
        self.r2s = Real2SimCore(self.hand, self.layout, self.config.real2sim, self.joint_names, GRIPPER_GAP_JOINT)
        if not self.r2s.on_binding(binding):
            raise ValueError(f"binding refused by real2sim: {self.r2s.last_rejection}")
        reason = self.s2r.on_binding(binding)
        if reason is not None:
            raise ValueError(f"binding refused by sim2real: {reason}")
        self.commands = []
        self._measure()
        return self._observe()

    def step(self, action) -> np.ndarray:
        """One policy period: action -> sim2real -> the simulated controllers -> physics -> real2sim."""
        if self.s2r is None:
            raise RuntimeError("BridgeLoop.step before start_episode")
        self._send(self.s2r.on_action(action, self.time))
        self.sim.step(self.steps_per_period)
        self._measure()
        self._send(self.s2r.tick(self.time))  # the node's watchdog timer: nothing while actions flow
        return self._observe()

    # ------------------------------------------------------------------ the topics, as calls
    def _send(self, cmd: Command | None) -> None:
        """What sim2real publishes, as sim_arm's subscriptions execute it (JTC header stamp 0 = now)."""
        if cmd is None:
            return
        self.commands.append(cmd)
        if self.config.command_interface == "trajectory":
            self.sim.command_trajectory(self.joint_names, [cmd.horizon_s], [cmd.q], None, start_time=None)
        else:
            self.sim.command_positions(cmd.q)
        if cmd.gripper is not None:
            self.sim.command_gripper(cmd.gripper)

    def _measure(self) -> None:
        """What sim_arm publishes (joint state, finger gap, object poses in the sim frame), fed to the cores."""
        t, q = self.time, self.sim.joint_positions()
        self.r2s.on_joint_state(self.joint_names, q, t)
        self.s2r.on_joint_state(self.joint_names, q, t, t)
        self.r2s.on_gripper_state([GRIPPER_GAP_JOINT], [self.sim.gripper_gap()], t)
        for name, (p, quat) in self.sim.object_poses().items():
            self.r2s.on_object_pose(name, SIM_FRAME, p, quat, t)

    def _observe(self) -> np.ndarray:
        obs = self.r2s.observe(self.time)
        if not isinstance(obs, np.ndarray):
            raise RuntimeError(f"real2sim produced no observation: {obs}")
        self.s2r.on_observation(self.time)
        return obs
