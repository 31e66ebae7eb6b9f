"""Declaring a node's parameters from its :class:`~legion_policy.params.NodeParams` (the ROS side).

Every node shell declares all of its spec at once, in spec order, and reads the values from the
namespace it gets back: ``p = declare_all(self, SPEC, agent_path=computed)`` then ``p.agent_path``
(a keyword gives the default the node computes at start, or a function of the values declared
before it). A parameter declared only at start from another's value (a ``$name`` topic entry) goes
through :func:`declare_spec`. The name, type, default, description and range come from the spec, so
``ros2 param describe`` shows the description, the range (FloatingPointRange / IntegerRange) and the
constraints, and a value outside the range refuses the start with one line (``<name> must be in
[lo, hi], got <value>``).

Once declared, a parameter is read-only (``ParameterDescriptor.read_only``: ``ros2 param set`` is
refused with "Trying to set a read-only parameter: <name>."), because the node read it at start and a
new value would be accepted and ignored. A spec marked ``settable`` is the exception: the node passes
``declare_all(..., on_set={name: apply})``, a new value is checked against the spec (type, range with
its open ends, choices; refused with the one-line reason) and handed to ``apply`` at once.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Callable, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter

from legion_policy.params import NodeParams, ParamSpec, value_matches

_SPEC_DEFAULT = object()
#: A spec type's rclpy type, for a parameter declared without a value (a required one).
_ROS_TYPES = {"bool": Parameter.Type.BOOL, "int": Parameter.Type.INTEGER, "double": Parameter.Type.DOUBLE,
              "string": Parameter.Type.STRING, "bool[]": Parameter.Type.BOOL_ARRAY,
              "int[]": Parameter.Type.INTEGER_ARRAY, "double[]": Parameter.Type.DOUBLE_ARRAY,
              "string[]": Parameter.Type.STRING_ARRAY}
#: An integer range's open upper end (ROS has no infinite integer).
INT64_MAX = 2**63 - 1


def descriptor(spec: ParamSpec, with_range: bool = True) -> ParameterDescriptor:
    """The ParameterDescriptor of ``spec``: description, constraints, read-only unless settable and
    (``with_range``) its ROS range; the first declaration of a ranged one goes without both
    (a read-only descriptor cannot be replaced)."""
    d = ParameterDescriptor(description=spec.description, additional_constraints=spec.constraint_text(),
                            read_only=with_range and not spec.settable)
    r = spec.range
    if with_range and r is not None:
        if spec.type == "double":
            d.floating_point_range = [FloatingPointRange(from_value=float(r.low), to_value=float(r.high), step=0.0)]
        else:
            low = math.floor(r.low) + 1 if r.low_open else math.ceil(r.low)
            high = INT64_MAX if math.isinf(r.high) else (math.ceil(r.high) - 1 if r.high_open else math.floor(r.high))
            d.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    return d


def declare_spec(node, spec: ParamSpec, default: Any = _SPEC_DEFAULT) -> Any:
    """Declare ``spec`` on ``node`` and return its value (the override's, else the default).

    ``default`` replaces the spec's default (required where the spec's is ``None``: computed at
    start). A ``required`` spec is declared by its type only: not given, it refuses the start with
    one line (``required parameter 'x' is not set: <what to pass>``). A value outside the spec's range raises ValueError with one line; a value of the wrong
    type raises rclpy's InvalidParameterTypeException (both refuse a node's start, ros_io.run_node).
    """
    if spec.required:
        if default is not _SPEC_DEFAULT:
            raise TypeError(f"parameter {spec.name!r} is required: it has no default")
        got = node.declare_parameter(spec.name, _ROS_TYPES[spec.type], descriptor(spec)).value
        if got is None:  # declared by type only, and no parameter file or -p gave it
            raise ValueError(spec.missing_error())
        return got
    value = spec.default if default is _SPEC_DEFAULT else default
    if value is None:
        raise TypeError(f"parameter {spec.name!r}: the node must pass the default it computes ({spec.computed})")
    if not value_matches(spec.type, value):
        raise TypeError(f"parameter {spec.name!r}: default {value!r} is not a {spec.type}")
    if isinstance(value, tuple):
        value = list(value)
    if spec.range is None:
        return node.declare_parameter(spec.name, value, descriptor(spec)).value
    # declared without the range first, so that a bad value gets this one-line reason (not rclpy's),
    # then the range is attached: ros2 param describe shows it, ros2 param set is held to it
    got = node.declare_parameter(spec.name, value, descriptor(spec, with_range=False)).value
    if not spec.range.contains(got):
        raise ValueError(spec.range_error(got))
    full = descriptor(spec)
    full.type = node.describe_parameter(spec.name).type
    node.set_descriptor(spec.name, full)
    return got


class Declared:
    """The values a node declared from its spec, read-only: ``p.name``.

    Each value has its spec's type (ROS refuses an override of another type where it is declared).
    """

    __slots__ = ("_node", "_values")

    def __init__(self, node: str, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a slot not set yet (copy, pickle): no parameter name starts with _
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"node {self._node} declared no parameter {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the declared parameters of {self._node} are read-only")

    def __repr__(self) -> str:
        return f"Declared({self._node}: " + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"

    def pick(self, *names: str) -> dict[str, Any]:
        """``{name: value}`` of ``names`` (a config built from parameters of the same names)."""
        return {name: getattr(self, name) for name in names}


def declare_all(node, params: NodeParams, *, on_set: Mapping[str, Callable[[Any], None]] | None = None,
                **computed: Any) -> Declared:
    """Declare every parameter of ``params`` on ``node``, in spec order, and return their values.

    ``computed[name]`` is the default of a parameter the node computes at start (required where the
    spec's default is ``None``); a callable is called with the values declared before it
    (a :class:`Declared`), e.g. the joint names of the ``robot_model`` declared earlier. The first
    value that is refused (wrong type, outside the range) stops the declaration, as
    :func:`declare_spec` says.

    ``on_set[name]`` applies a new value of the ``settable`` parameter ``name`` at run time; it is
    required for exactly the spec's settable parameters (a settable one the node did not apply would
    be accepted and ignored). Every other parameter is read-only.
    """
    unknown = sorted(set(computed) - set(params.names))
    if unknown:
        raise KeyError(f"node {params.node} has no parameter {unknown} in its spec")
    on_set = dict(on_set or {})
    settable = {p.name: p for p in params if p.settable}
    if set(on_set) != set(settable):
        raise KeyError(f"node {params.node}: on_set must apply exactly its settable parameters {sorted(settable)}, "
                       f"got {sorted(on_set)}")
    values: dict[str, Any] = {}
    for spec in params:
        default = computed.get(spec.name, _SPEC_DEFAULT)
        if callable(default):
            default = default(Declared(params.node, values))
        values[spec.name] = declare_spec(node, spec, default)
    if settable:  # after the declarations: rclpy calls this callback for them too
        node.add_on_set_parameters_callback(lambda changed: _apply(settable, on_set, changed))
    return Declared(params.node, values)


def _apply(settable: Mapping[str, ParamSpec], on_set: Mapping[str, Callable[[Any], None]],
           changed) -> SetParametersResult:
    """rclpy's on-set callback: check every settable parameter in ``changed`` against its spec, then apply
    them all (others pass: rclpy refused the read-only ones already, a new declaration is not a change)."""
    mine = [p for p in changed if p.name in settable]
    for p in mine:
        try:
            settable[p.name].check(p.value, what="new value")
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
    for p in mine:
        on_set[p.name](p.value)
    return SetParametersResult(successful=True)
