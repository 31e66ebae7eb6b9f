"""The one definition of the LEGION node graph, per mode.

Both ``launch/*.launch.py`` (where launch_ros exists) and ``legion-launch``
(a pip-only machine) build their processes from :func:`graph`; a node added
here appears in both without editing either.

Modes
-----
``sim``: the MuJoCo-simulated iiwa (sim_arm) publishes what the iiwa_ros2
driver, a gripper driver and perception would publish, and /clock.
``real``: those come from the real drivers; the graph starts disabled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from legion_bridge.paths import PACKAGE, config_path, default_agent_path
from legion_policy.paths import resolve_sequence_path

MODES = ("sim", "real")
#: What the simulated graph runs without arguments (and ``make demo`` / ``legion-demo``): the shipped
#: agent's skills chained on the workbench scene (the file names its scene).
DEFAULT_SIM_SEQUENCE = "sequences/workbench.yaml"
#: The scene of a simulated graph whose sequence names none.
DEFAULT_SIM_SCENE = "tabletop"
#: The agent's manifest (legion_policy.agent_format.MANIFEST_FILE; read here as JSON, without torch).
AGENT_MANIFEST = "manifest.json"
#: Driver profiles (config/drivers/<name>.yaml: the arm's topics and joint names), the first is the default.
DRIVERS = ("iiwa_ros2", "lbr_fri")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    name: the ROS node name. executable: the console script (``ros2 run legion_bridge <executable>``).
    params: parameter files (relative to config/), applied in order; ``{mode}`` is replaced by the mode.
    remappings: (from, to) topic remappings. modes: modes the node runs in.
    required: the graph stops (non-zero) if this node dies.
    ends_graph: when this node exits with status 0 the whole graph shuts down cleanly
    (e.g. the sequencer after the last step).
    runs_if: launch arguments of which at least one must be set (non-empty, and true for a
    boolean) for the node to start; empty: it always starts (e.g. the sequencer needs a
    sequence or a task: the real graph without them waits idle for an operator).
    """

    name: str
    executable: str
    description: str
    params: tuple[str, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    modes: tuple[str, ...] = MODES
    required: bool = True
    ends_graph: bool = False
    runs_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchArg:
    """A user-facing launch argument and the node parameters it sets.

    kind ``param``: sets parameter ``parameter`` on each node in ``nodes`` ("*" = every node).
    kind ``params_file``: replaces the parameter file named ``parameter`` (relative to config/)
    by the given path on every node that loads it.
    kind ``profile``: picks the parameter file ``parameter.format(value)`` (relative to config/) that
    node specs name as ``{<argument name>}`` (``driver``: ``drivers/{driver}.yaml``).
    An empty value leaves the nodes' own defaults.
    """

    name: str
    description: str
    defaults: dict = field(default_factory=dict)  # mode -> default string
    nodes: tuple[str, ...] = ("*",)
    parameter: str = ""
    kind: str = "param"
    value_type: str = "str"  # str | bool | float | int

    def default(self, mode: str) -> str:
        return str(self.defaults.get(mode, ""))


_TOPICS = ("topics.yaml", "drivers/{driver}.yaml")  # the driver profile overrides the arm's topics
_MODE = ("modes/{mode}.yaml",)  # mode overrides come last

NODES: tuple[NodeSpec, ...] = (
    NodeSpec("sim_arm", "legion_sim_arm",
             "MuJoCo iiwa + gripper + task objects; publishes /joint_states, gripper state, object poses, /clock",
             params=_TOPICS + ("sim_arm.yaml", "calibration.yaml") + _MODE, modes=("sim",)),
    NodeSpec("real2sim", "legion_real2sim",
             "joint states + gripper + object poses -> /legion/observation in the sim frame",
             params=_TOPICS + ("real2sim.yaml", "limits.yaml", "calibration.yaml") + _MODE),
    NodeSpec("policy", "legion_policy_node",
             "frozen LEGION agent: /legion/observation + /legion/task -> /legion/action",
             params=_TOPICS + ("policy.yaml",) + _MODE),
    NodeSpec("sim2real", "legion_sim2real",
             "/legion/action -> safe iiwa joint commands + gripper command (safety envelope, watchdog, enable)",
             params=_TOPICS + ("sim2real.yaml", "limits.yaml", "calibration.yaml") + _MODE),
    NodeSpec("sequencer", "legion_sequencer",
             "long-horizon skill sequence: switches /legion/task on success, writes the run report",
             params=_TOPICS + ("sequencer.yaml",) + _MODE, required=True, ends_graph=True,
             runs_if=("sequence", "task")),
    NodeSpec("monitor", "legion_monitor", "rates and ages of the graph's topics on /diagnostics",
             params=_TOPICS + ("monitor.yaml",) + _MODE, required=False),
    NodeSpec("description", "legion_description",
             "/robot_description (latched URDF of robot_model with the gripper, the driver's joint names); "
             "with rviz, the arm's and fingers' joint states for robot_state_publisher",
             params=_TOPICS + ("description.yaml",) + _MODE, required=False),
    NodeSpec("recorder", "legion_recorder",
             "records the graph's topics into a rosbag2 bag with MCAP storage (record:=true)",
             params=_TOPICS + ("recorder.yaml",) + _MODE, required=False, runs_if=("record",)),
)

LAUNCH_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("agent", "path of the frozen agent (directory); default: the shipped agent",
              {"sim": str(default_agent_path()), "real": str(default_agent_path())},
              nodes=("policy", "sequencer", "real2sim"), parameter="agent_path"),
    LaunchArg("policy_period", "policy period of the simulated graph [s] (real2sim, sim2real); empty: the agent's "
              "control_period_s (its manifest: the period it was trained at), else policy_period_sim_s. The real "
              "arm runs at policy_period_real_s (limits.yaml)",
              nodes=("real2sim", "sim2real"), parameter="policy_period_sim_s", value_type="float"),
    LaunchArg("task", "skill name or free-form instruction to run when no sequence is given",
              nodes=("sequencer",), parameter="task"),
    LaunchArg("sequence", "YAML sequence of skills (a path, or a name under config/sequences/); empty: run "
              "`task` only; with neither, no sequencer starts (the graph waits for /legion/task); a given "
              "`task` replaces the default sequence",
              {"sim": DEFAULT_SIM_SEQUENCE}, nodes=("sequencer",), parameter="sequence_file"),
    LaunchArg("robot_model", "iiwa7 (LBR iiwa 7 R800, default) or iiwa14 (LBR iiwa 14 R820)",
              {"sim": "iiwa7", "real": "iiwa7"}, nodes=("sim_arm", "real2sim", "sim2real", "description"),
              parameter="robot_model"),
    LaunchArg("driver", "arm driver profile (config/drivers/<name>.yaml: topics, joint names): "
              + " or ".join(DRIVERS) + "; sim_arm stands in for either",
              {"sim": DRIVERS[0], "real": DRIVERS[0]}, nodes=(), parameter="drivers/{}.yaml", kind="profile"),
    LaunchArg("calibration", "calibration YAML (sim frame <- robot base, robot base <- camera)",
              nodes=("*",), parameter="calibration.yaml", kind="params_file"),
    LaunchArg("command_interface", "trajectory (JointTrajectory to the JTC) or position (Float64MultiArray)",
              {"sim": "trajectory", "real": "trajectory"}, nodes=("sim2real",), parameter="command_interface"),
    LaunchArg("use_sim_time", "use /clock (true in simulation)", {"sim": "true", "real": "false"},
              parameter="use_sim_time", value_type="bool"),
    LaunchArg("enable", "start with motion enabled (the real robot must start disabled)",
              {"sim": "true", "real": "false"}, nodes=("sim2real",), parameter="start_enabled", value_type="bool"),
    LaunchArg("scene", "simulated scene: a Metaworld v3 task name (e.g. push-v3) or a multi-object scene "
              "('tabletop', 'workbench'); empty: the sequence file's `scene`, else " + DEFAULT_SIM_SCENE,
              nodes=("sim_arm",), parameter="scene"),
    LaunchArg("seed", "seed of the simulated task instances (object placement, goals); empty: sim_arm's default",
              nodes=("sim_arm",), parameter="seed", value_type="int"),
    LaunchArg("video", "write a video of the simulated cell to this path (MUJOCO_GL=egl); empty: no video",
              nodes=("sim_arm",), parameter="video_path"),
    LaunchArg("report_dir", "folder where the sequencer writes its run report (empty: no report file)",
              nodes=("sequencer",), parameter="report_dir"),
    LaunchArg("record", "record the graph's topics into a rosbag2 bag (MCAP storage) at `bag`",
              {"sim": "false", "real": "false"}, nodes=(), parameter="record", value_type="bool"),
    LaunchArg("bag", "folder of the recorded bag (must not exist); empty: runs/bag-<time> in the current folder",
              nodes=("recorder",), parameter="bag_path"),
    LaunchArg("rviz", "start robot_state_publisher and rviz2 with config/rviz/legion.rviz (a ROS 2 install)",
              {"sim": "false", "real": "false"}, nodes=("description",), parameter="publish_robot_joint_states",
              value_type="bool"),
)


@dataclass(frozen=True)
class NodeLaunch:
    """A node resolved for a mode and argument values: everything a launcher needs."""

    spec: NodeSpec
    param_files: tuple[Path, ...]
    parameters: dict
    remappings: tuple[tuple[str, str], ...]


def graph(mode: str) -> list[NodeSpec]:
    """The nodes of ``mode`` in start order."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    return [n for n in NODES if mode in n.modes]


def launch_arg(name: str) -> LaunchArg:
    for a in LAUNCH_ARGS:
        if a.name == name:
            return a
    raise KeyError(f"unknown launch argument {name!r}; known: {[a.name for a in LAUNCH_ARGS]}")


def convert(value: str, value_type: str):
    """Turn a launch-argument string into the parameter's type, with a clear error."""
    if value_type == "str":
        return value
    if value_type == "bool":
        low = value.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if value_type in ("float", "int"):
        try:
            return float(value) if value_type == "float" else int(value.strip())
        except ValueError:
            raise ValueError(f"expected {'a number' if value_type == 'float' else 'an integer'}, got {value!r}") from None
    raise ValueError(f"unknown value type {value_type!r}")


def sequence_scene(path: str | Path) -> str:
    """The ``scene`` a sequence file names ("" if none or unreadable: the sequencer reports file errors)."""
    try:
        doc = yaml.safe_load(resolve_sequence_path(str(path)).read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return str(doc.get("scene") or "") if isinstance(doc, dict) else ""


def agent_control_period(agent: str | Path) -> str:
    """The ``control_period_s`` of the agent's manifest as a launch-argument string ("" if the agent or its
    manifest is unreadable: the policy node reports agent errors with their reason)."""
    import json

    try:
        period = json.loads((Path(agent) / AGENT_MANIFEST).read_text()).get("control_period_s")
    except (OSError, ValueError, AttributeError):
        return ""
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
        return ""
    return repr(float(period))


def argument_values(mode: str, values: dict | None = None) -> dict:
    """Every launch argument of ``mode``: the given strings over the defaults, with derived defaults
    filled in (sim: an empty ``scene`` becomes the sequence file's scene, else DEFAULT_SIM_SCENE)."""
    values = dict(values or {})
    for key in values:
        launch_arg(key)  # unknown names raise
    out = {a.name: str(values.get(a.name, a.default(mode))) for a in LAUNCH_ARGS}
    if out["task"] and "sequence" not in values:
        out["sequence"] = ""  # `task:=...` alone runs that task, not the default sequence
    if mode == "sim" and not out["scene"]:
        out["scene"] = (sequence_scene(out["sequence"]) if out["sequence"] else "") or DEFAULT_SIM_SCENE
    if out["sequence"]:
        out["sequence"] = str(resolve_sequence_path(out["sequence"]))
    if out["policy_period"] and mode != "sim":
        raise ValueError("launch argument policy_period: applies to the simulated graph; the real arm runs at "
                         "policy_period_real_s (config/limits.yaml)")
    if mode == "sim" and not out["policy_period"]:
        out["policy_period"] = agent_control_period(out["agent"])
    out["driver"] = out["driver"] or DRIVERS[0]
    if out["driver"] not in DRIVERS or not config_path(launch_arg("driver").parameter.format(out["driver"])).is_file():
        raise ValueError(f"launch argument driver: unknown driver {out['driver']!r}; known: {', '.join(DRIVERS)}")
    return out


def is_set(name: str, value: str) -> bool:
    """A launch argument counts as given when non-empty (and true, for a boolean)."""
    if value == "":
        return False
    arg = launch_arg(name)
    return convert(value, "bool") if arg.value_type == "bool" else True


def resolve(mode: str, values: dict | None = None) -> list[NodeLaunch]:
    """Resolve the graph of ``mode`` with launch-argument ``values`` (strings) over the defaults.

    ValueError (one line naming the argument) for a value of the wrong type; nodes whose
    ``runs_if`` arguments are all unset are left out."""
    values = argument_values(mode, values)
    out = []
    for spec in graph(mode):
        try:
            if spec.runs_if and not any(is_set(a, values[a]) for a in spec.runs_if):
                continue
        except ValueError as exc:
            raise ValueError(f"launch argument of {spec.name}: {exc}") from None
        files = [config_path(p.format(mode=mode, driver=values["driver"])) for p in spec.params]
        params: dict = {}
        for arg in LAUNCH_ARGS:
            if arg.nodes != ("*",) and spec.name not in arg.nodes:
                continue
            value = values[arg.name]
            if value == "":
                continue
            if arg.kind == "params_file":
                target = config_path(arg.parameter)
                files = [Path(value) if f == target else f for f in files]
            else:
                try:
                    params[arg.parameter] = convert(value, arg.value_type)
                except ValueError as exc:
                    raise ValueError(f"launch argument {arg.name}: {exc}") from None
        out.append(NodeLaunch(spec, tuple(files), params, spec.remappings))
    return out
