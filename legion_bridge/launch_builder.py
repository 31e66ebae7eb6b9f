"""Build launch_ros descriptions from the one graph definition (used by launch/*.launch.py).

:func:`launch_nodes` is plain data (testable without launch_ros);
:func:`generate_launch_description` turns it into launch actions and is the
only place that imports ``launch`` / ``launch_ros``.
"""
from __future__ import annotations

from dataclasses import dataclass

from legion_bridge import graph as graph_mod
from legion_bridge.paths import PACKAGE, config_path


@dataclass(frozen=True)
class LaunchNode:
    """A node as a launch file declares it: parameter sources in order.

    param_sources: each item is ("file", path) or ("file_arg", launch-argument name) or
    ("param", parameter name, launch-argument name, value type).
    """

    name: str
    executable: str
    param_sources: tuple
    remappings: tuple[tuple[str, str], ...]
    required: bool
    ends_graph: bool


def launch_nodes(mode: str) -> list[LaunchNode]:
    out = []
    for spec in graph_mod.graph(mode):
        file_args = {config_path(a.parameter): a.name for a in graph_mod.LAUNCH_ARGS
                     if a.kind == "params_file" and (a.nodes == ("*",) or spec.name in a.nodes)}
        sources: list[tuple] = []
        for p in spec.params:
            path = config_path(p.format(mode=mode))
            sources.append(("file_arg", file_args[path]) if path in file_args else ("file", str(path)))
        for a in graph_mod.LAUNCH_ARGS:
            if a.kind == "param" and (a.nodes == ("*",) or spec.name in a.nodes):
                sources.append(("param", a.parameter, a.name, a.value_type))
        out.append(LaunchNode(spec.name, spec.executable, tuple(sources), spec.remappings, spec.required,
                              spec.ends_graph))
    return out


def launch_arguments(mode: str) -> list[tuple[str, str, str]]:
    """(name, default, description) of every launch argument for ``mode``."""
    out = []
    for a in graph_mod.LAUNCH_ARGS:
        default = a.default(mode)
        if a.kind == "params_file" and not default:
            default = str(config_path(a.parameter))
        out.append((a.name, default, a.description))
    return out


def generate_launch_description(mode: str):
    """The LaunchDescription of ``mode`` (needs launch and launch_ros, i.e. a ROS 2 install)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    types = {"str": str, "bool": bool, "float": float, "int": int}
    entities: list = [DeclareLaunchArgument(name, default_value=default, description=desc)
                      for name, default, desc in launch_arguments(mode)]
    for ln in launch_nodes(mode):
        params: list = []
        for src in ln.param_sources:
            if src[0] == "file":
                params.append(src[1])
            elif src[0] == "file_arg":
                params.append(LaunchConfiguration(src[1]))
            else:
                _, param, arg, vtype = src
                params.append({param: ParameterValue(LaunchConfiguration(arg), value_type=types[vtype])})
        node = Node(package=PACKAGE, executable=ln.executable, name=ln.name, output="screen",
                    parameters=params, remappings=list(ln.remappings))
        entities.append(node)
        if ln.ends_graph or ln.required:
            reason = f"{ln.name} finished" if ln.ends_graph else f"required node {ln.name} exited"
            entities.append(RegisterEventHandler(OnProcessExit(
                target_action=node, on_exit=[LogInfo(msg=reason), EmitEvent(event=Shutdown(reason=reason))])))
    return LaunchDescription(entities)
