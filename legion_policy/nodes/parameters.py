"""Declaring a node's parameters from its :class:`~legion_policy.params.NodeParams` (the ROS side).

Every node shell does ``d = declarer(self, SPEC)`` and then ``value = d("name")`` (or
``d("name", default)`` for a default the node computes at start) in its own order: the name,
type, default, description and range come from the spec, so ``ros2 param describe`` shows the
description, the range (FloatingPointRange / IntegerRange) and the constraints, and a value
outside the range refuses the start with one line (``<name> must be in [lo, hi], got <value>``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from legion_policy.params import NodeParams, ParamSpec, value_matches

_SPEC_DEFAULT = object()
#: An integer range's open upper end (ROS has no infinite integer).
INT64_MAX = 2**63 - 1


def descriptor(spec: ParamSpec, with_range: bool = True) -> ParameterDescriptor:
    """The ParameterDescriptor of ``spec``: description, constraints and (``with_range``) its ROS range."""
    d = ParameterDescriptor(description=spec.description, additional_constraints=spec.constraint_text())
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
    start). A value outside the spec's range raises ValueError with one line; a value of the wrong
    type raises rclpy's InvalidParameterTypeException (both refuse a node's start, ros_io.run_node).
    """
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


def declarer(node, params: NodeParams) -> Callable[..., Any]:
    """``d(name[, default])``: declare ``params[name]`` on ``node`` and return its value."""

    def d(name: str, default: Any = _SPEC_DEFAULT) -> Any:
        return declare_spec(node, params[name], default)

    return d
