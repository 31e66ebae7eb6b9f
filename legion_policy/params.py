"""Node parameters defined once: name, type, default, range, description (generate_parameter_library-style).

Each node's parameters are one :class:`NodeParams` (``legion_policy.node_params`` for the policy and
the sequencer, ``legion_bridge.node_params`` for the bridge's nodes). The node declares every
parameter from it (``legion_policy.nodes.parameters.declare_all``: the description, the range and the
constraints reach ``ros2 param describe``), and the parameter tables of docs/architecture.md are
generated from the same objects (``python -m legion_bridge.param_docs``). ROS-free: plain pytest
and the docs generator import it without rclpy.

A :class:`ParamSpec`'s ``range`` is enforced where the parameter is declared; ``choices`` and
``constraints`` are documented there and checked by the node or its core. A default the node can
only compute at start (the shipped agent's path, the robot model's joint names) is ``None`` in the
spec, with ``computed`` saying what it is.

Run time: the nodes read their parameters once, at start, so every parameter is declared read-only
(``ros2 param set`` is refused, naming it) unless its spec says ``settable``: then the node applies
a new value at once, and one outside the range or the choices is refused with the reason
(``legion_policy.nodes.parameters.declare_all``'s ``on_set``).

Defaults live here only: the parameter files in config/ override, never repeat them
(``test/test_node_params.py`` fails on a copy).

The graph's topic parameters are defined once, in :data:`GRAPH_TOPICS`; a node's spec takes the ones
it uses with :func:`topics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

#: Parameter types, named as ``ros2 param describe`` names them (double = Python float).
ParamType = Literal["bool", "int", "double", "string", "bool[]", "int[]", "double[]", "string[]"]
_SCALARS: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "double": (float,), "string": (str,)}
PARAM_TYPES: tuple[str, ...] = tuple(_SCALARS) + tuple(f"{t}[]" for t in _SCALARS)


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind != "bool" and isinstance(value, bool):
        return False  # a bool is an int in Python, never in ROS
    return isinstance(value, _SCALARS[kind])


def value_matches(kind: str, value: Any) -> bool:
    """Whether ``value`` is declared by ROS as a parameter of type ``kind`` (its type is inferred from the value)."""
    if kind.endswith("[]"):
        return isinstance(value, (list, tuple)) and all(_scalar_ok(kind[:-2], v) for v in value)
    return _scalar_ok(kind, value)


@dataclass(frozen=True)
class Range:
    """A numeric interval, inclusive unless ``low_open`` / ``high_open``; ``high`` may be ``math.inf``.

    ROS ranges (FloatingPointRange, IntegerRange) are inclusive: an open end is checked where the
    parameter is declared and shown as a constraint by ``ros2 param describe``.
    """

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __post_init__(self) -> None:
        if math.isnan(self.low) or math.isnan(self.high) or not self.low < self.high:
            raise ValueError(f"range needs low < high, got [{self.low}, {self.high}]")

    def contains(self, value: float) -> bool:
        v = float(value)
        if math.isnan(v):
            return False
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        return f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"


#: ``Range(0, low_open=True)``: a positive number.
POSITIVE = Range(0.0, low_open=True)
#: ``Range(0)``: zero or more.
NON_NEGATIVE = Range(0.0)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of one node.

    name, type (:data:`ParamType`), default (``None``: computed by the node at start, ``computed``
    says what), description (``ros2 param describe``'s text). ``range`` (int/double only) is
    enforced where it is declared; ``choices`` (string only) and ``constraints`` (free text) are
    documented and checked by the node. ``settable``: the node applies a new value at run time
    (else the parameter is read-only once declared). ``required``: no default at all (``default``
    ``None``): the node refuses to start without it, and this text says what to pass (e.g. the
    calibration file).
    """

    name: str
    type: ParamType
    default: Any
    description: str
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    constraints: str = ""
    computed: str = ""
    settable: bool = False
    required: str = ""

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not self.name or not all(part.isidentifier() for part in self.name.split(".")):
            raise ValueError(f"{where}: not a parameter name")
        if self.type not in PARAM_TYPES:
            raise ValueError(f"{where}: type {self.type!r} is not one of {PARAM_TYPES}")
        if not self.description.strip():
            raise ValueError(f"{where}: needs a description")
        if self.range is not None and self.type not in ("int", "double"):
            raise ValueError(f"{where}: a range needs type int or double, not {self.type}")
        if self.choices is not None:
            if self.type != "string" or not self.choices:
                raise ValueError(f"{where}: choices need type string and at least one choice")
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.required:
            if self.default is not None or self.computed:
                raise ValueError(f"{where}: a required parameter has no default (neither `default` nor `computed`)")
        elif self.default is None:
            if not self.computed:
                raise ValueError(f"{where}: a default of None needs `computed` (what the node computes at start)"
                                 " or `required` (what to pass)")
        elif self.computed:
            raise ValueError(f"{where}: give a default or `computed`, not both")
        else:
            if isinstance(self.default, list):  # frozen: the spec's default is never changed by a node
                object.__setattr__(self, "default", tuple(self.default))
            self.check(self.default, what="default")

    def check(self, value: Any, what: str = "value") -> None:
        """TypeError if ``value`` would not be declared with this type, ValueError if outside the range or choices."""
        if not value_matches(self.type, value):
            raise TypeError(f"parameter {self.name!r}: {what} {value!r} is not a {self.type}")
        if self.range is not None and not self.range.contains(value):
            raise ValueError(self.range_error(value))
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {self.choices}, got {value!r}")

    def range_error(self, value: Any) -> str:
        """The one-line error for a value outside the range."""
        return f"{self.name} must be {self.range_text()}, got {value}"

    def range_text(self) -> str:
        """'in [lo, hi]', '> 0', ... ('' without a range)."""
        if self.range is None:
            return ""
        text = str(self.range)
        return text if text[0] in "<>" else f"in {text}"

    def constraint_text(self) -> str:
        """Range, choices and constraints in one line (``ros2 param describe``'s "Constraints")."""
        parts = []
        if self.range is not None:
            parts.append(str(self.range))
        if self.choices is not None:
            parts.append("one of " + ", ".join(self.choices))
        if self.constraints:
            parts.append(self.constraints)
        return "; ".join(parts)

    def run_time_text(self) -> str:
        """What ``ros2 param set`` does to it: 'settable' (applied at once, checked) or 'read-only'."""
        return "settable" if self.settable else "read-only"

    def default_text(self) -> str:
        """The default as the docs show it."""
        if self.required:
            return f"required: {self.required}"
        if self.default is None:
            return f"({self.computed})"
        return _literal(self.default)

    def missing_error(self) -> str:
        """The one-line error for a required parameter that was not given."""
        return f"required parameter {self.name!r} is not set: {self.required}"


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    return str(v)


@dataclass(frozen=True)
class NodeParams:
    """Every parameter one node declares, in declaration order.

    ``dynamic``: what the node declares beyond these at start (e.g. a parameter named by a list
    entry), '' if nothing.
    """

    node: str
    params: tuple[ParamSpec, ...]
    dynamic: str = ""
    _by_name: dict[str, ParamSpec] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        for p in self.params:
            if p.name in self._by_name:
                raise ValueError(f"node {self.node}: parameter {p.name!r} defined twice")
            self._by_name[p.name] = p

    def __getitem__(self, name: str) -> ParamSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"node {self.node} has no parameter {name!r} in its spec") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, Any]:
        """``{name: default}`` of every parameter with a default in the spec (lists as lists): what the node
        declares when no parameter file sets it (ROS-free readers of the parameter files start from this)."""
        return {p.name: list(p.default) if isinstance(p.default, tuple) else p.default
                for p in self.params if p.default is not None}

    def markdown_table(self) -> str:
        """The node's parameter table (markdown), one row per parameter."""
        rows = ["| parameter | type | default | constraints | run time | description |", "|---|---|---|---|---|---|"]
        for p in self.params:
            default = f"`{p.default_text()}`" if p.default is not None else _text(p.default_text())
            cells = (f"`{p.name}`", p.type, default, _text(p.constraint_text()), p.run_time_text(),
                     _text(p.description))
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(rows)


def _text(text: str) -> str:
    """Plain text for markdown: ``<`` escaped outside code spans (``<name>`` would be taken for an HTML tag)."""
    parts = text.split("`")
    return "`".join(part.replace("<", "\\<") if i % 2 == 0 else part for i, part in enumerate(parts))


def _cell(text: str) -> str:
    """A markdown table cell: pipes escaped (also in code spans, as GFM tables need), one line."""
    return " ".join(text.replace("|", "\\|").split())


def merge(*groups: Sequence[ParamSpec]) -> tuple[ParamSpec, ...]:
    """Concatenate groups of specs (shared groups, e.g. the calibration keys) into one node's tuple."""
    return tuple(p for g in groups for p in g)


# --- the graph's topic parameters ------------------------------------------------------------------


def _topic(name: str, default: str, carries: str) -> ParamSpec:
    return ParamSpec(name, "string", default, carries)


#: Every topic-name parameter of the graph, defined once: its name, its default (config/topics.yaml's;
#: a driver profile renames the arm's) and the message it carries. A node's spec takes the ones it
#: uses with :func:`topics`, saying which way each goes for that node.
GRAPH_TOPICS = NodeParams("graph topics", (
    _topic("joint_states_topic", "/joint_states", "sensor_msgs/JointState of the arm"),
    _topic("gripper_state_topic", "/gripper/joint_states", "sensor_msgs/JointState of the gripper: finger gap [m]"),
    _topic("gripper_command_topic", "/gripper/command", "std_msgs/Float64 gripper command in [-1, 1]"),
    _topic("object_pose_prefix", "/objects", "geometry_msgs/PoseStamped object poses on <prefix>/<object>/pose"),
    _topic("joint_trajectory_topic", "/iiwa_arm_controller/joint_trajectory",
           "trajectory_msgs/JointTrajectory arm commands, for the joint trajectory controller"),
    _topic("position_command_topic", "/forward_position_controller/commands",
           "std_msgs/Float64MultiArray arm joint positions, for the forward position controller"),
    _topic("observation_topic", "/legion/observation", "std_msgs/Float32MultiArray labelled observations"),
    _topic("action_topic", "/legion/action", "std_msgs/Float32MultiArray actions: dx, dy, dz, gripper"),
    _topic("task_topic", "/legion/task", "std_msgs/String: a skill name, an instruction or 'stop'"),
    _topic("binding_topic", "/legion/binding", "std_msgs/String object binding JSON, latched"),
    _topic("enable_topic", "/legion/enable", "std_msgs/Bool: motion allowed"),
    _topic("sim_success_topic", "/sim/success", "std_msgs/String JSON: per-task success in the sim cell"),
    _topic("sim_reset_topic", "/sim/reset", "std_msgs/String: reset the sim cell (task or scene name)"),
    _topic("robot_description_topic", "/robot_description",
           "std_msgs/String, transient local: the URDF with the driver's joint names"),
    _topic("robot_joint_states_topic", "/legion/robot_joint_states",
           "sensor_msgs/JointState: the arm's joints (driver names) and the finger joints"),
))


def topics(**ways: str) -> tuple[ParamSpec, ...]:
    """The topic parameters of :data:`GRAPH_TOPICS` a node uses, in the order given, each keyword saying
    which way that topic goes for the node ("in", "out", "in, only watched: ...")::

        topics(joint_states_topic="in", observation_topic="out")

    The description is the shared one with the node's way after it.
    """
    out = []
    for name, way in ways.items():
        if not way.strip():
            raise ValueError(f"topic parameter {name!r}: say which way it goes (in, out, ...)")
        p = GRAPH_TOPICS[name]
        out.append(replace(p, description=f"{p.description} ({way})"))
    return tuple(out)
