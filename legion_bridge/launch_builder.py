"""Build launch_ros descriptions from the one graph definition (used by launch/*.launch.py).

The launch description declares every launch argument of :data:`legion_bridge.graph.LAUNCH_ARGS`
(``ros2 launch ... --show-args`` lists them with description and default) and, once the
arguments are known, resolves the nodes with :func:`legion_bridge.graph.resolve`, exactly what
``legion-launch`` runs: the same parameter files, parameters, remappings, the same nodes left out
(the sequencer without a sequence or task), the same one-line errors for a bad value.

Process exits, as ``legion-launch`` handles them:

- a node marked ``ends_graph`` (the sequencer) that exits 0 shuts the graph down, launch exits 0;
- a required node that exits otherwise (a failed sequence, a crash, a kill) ends launch with a
  non-zero status and the line ``required node <name> exited with code <rc>``;
- a node that is not required only logs its exit; exits during shutdown (Ctrl-C) are expected.

This is the only module importing ``launch`` / ``launch_ros``; :func:`launch_arguments` and
:func:`exit_outcome` are plain data (testable without them).
"""
from __future__ import annotations

from legion_bridge import graph as graph_mod
from legion_bridge.paths import PACKAGE, config_path


class NodeExitError(RuntimeError):
    """A required node of the graph exited: launch ends with a non-zero status."""


def launch_arguments(mode: str) -> list[tuple[str, str, str]]:
    """(name, default, description) of every launch argument for ``mode``."""
    out = []
    for a in graph_mod.LAUNCH_ARGS:
        default = a.default(mode)
        if a.kind == "params_file" and not default:
            default = str(config_path(a.parameter))
        out.append((a.name, default, a.description))
    return out


def exit_outcome(spec: graph_mod.NodeSpec, returncode: int, shutting_down: bool) -> tuple[str, str]:
    """What a node's exit means for the graph: (action, message) with action ``ignore`` (expected, or a
    node that is not required), ``shutdown`` (the graph ends cleanly) or ``fail`` (launch exits non-zero)."""
    if shutting_down:
        return "ignore", f"{spec.name} exited with code {returncode} during shutdown"
    if spec.ends_graph and returncode == 0:
        return "shutdown", f"{spec.name} finished (exit code 0): shutting the graph down"
    if spec.required:
        return "fail", f"required node {spec.name} exited with code {returncode}: shutting the graph down"
    return "ignore", f"node {spec.name} exited with code {returncode}; not required, the graph keeps running"


def generate_launch_description(mode: str):
    """The LaunchDescription of ``mode`` (needs launch and launch_ros, i.e. a ROS 2 install)."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    entities: list = [DeclareLaunchArgument(name, default_value=default, description=desc)
                      for name, default, desc in launch_arguments(mode)]
    entities.append(OpaqueFunction(function=_graph_entities, args=[mode]))
    entities += _rviz_entities(mode)
    return LaunchDescription(entities)


def _graph_entities(context, mode: str) -> list:
    """The nodes of ``mode`` for the launch arguments of ``context`` (run by launch once they are known)."""
    from launch.actions import EmitEvent, LogInfo, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown
    from launch_ros.actions import Node

    values = _given(context, mode)
    try:
        launches = graph_mod.resolve(mode, values)
    except (ValueError, KeyError) as exc:
        raise ValueError(exc.args[0] if exc.args else str(exc)) from None
    entities: list = []
    for nl in launches:
        missing = [str(f) for f in nl.param_files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"node {nl.spec.name}: parameter file not found: {missing[0]}")
        node = Node(package=PACKAGE, executable=nl.spec.executable, name=nl.spec.name, output="screen",
                    parameters=[str(f) for f in nl.param_files] + ([nl.parameters] if nl.parameters else []),
                    remappings=list(nl.remappings))
        entities.append(node)

        def on_exit(event, ctx, spec=nl.spec):
            action, message = exit_outcome(spec, int(event.returncode), ctx.is_shutdown)
            if action == "fail":
                raise NodeExitError(message)
            if action == "shutdown":
                return [LogInfo(msg=message), EmitEvent(event=Shutdown(reason=message))]
            return [LogInfo(msg=message)]

        entities.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit)))
    return entities


#: The RViz 2 configuration started with ``rviz:=true`` (relative to config/).
RVIZ_CONFIG = "rviz/legion.rviz"
#: robot_state_publisher's TF frames are ``legion/<link>``: a driver's own robot_state_publisher
#: (iiwa_bringup publishes link_0 .. tool0) keeps its frames, and no frame has two publishers.
RVIZ_FRAME_PREFIX = "legion/"


def _rviz_entities(mode: str) -> list:
    """With ``rviz:=true``: robot_state_publisher (robot_description = the description node's URDF; its
    joint states = the description node's arm + finger states) and rviz2 with config/rviz/legion.rviz.
    Both are other packages' executables (robot_state_publisher, rviz2: a ROS 2 install)."""
    from launch.actions import OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration

    return [OpaqueFunction(function=_rviz_nodes, args=[mode], condition=IfCondition(LaunchConfiguration("rviz")))]


def rviz_node_specs(mode: str, values: dict) -> list[dict]:
    """(plain data) the package, executable, parameters, remappings and arguments of the nodes that
    ``rviz:=true`` starts for launch-argument ``values`` (strings; unset ones take their defaults)."""
    from legion_bridge.calibration import read_ros_params
    from legion_bridge.node_params import DESCRIPTION
    from legion_bridge.robot.description import robot_description

    values = graph_mod.argument_values(mode, values)
    profile = read_ros_params(config_path(graph_mod.launch_arg("driver").parameter.format(values["driver"])))
    description = read_ros_params(config_path("description.yaml"))
    urdf = robot_description(values["robot_model"] or "iiwa7", profile.get("arm_joint_names"))
    sim_time = graph_mod.convert(values["use_sim_time"] or "false", "bool")
    joint_states = description.get("robot_joint_states_topic", DESCRIPTION["robot_joint_states_topic"].default)
    return [
        {"package": "robot_state_publisher", "executable": "robot_state_publisher", "name": "robot_state_publisher",
         "parameters": {"robot_description": urdf, "use_sim_time": sim_time, "frame_prefix": RVIZ_FRAME_PREFIX},
         # the description node publishes /robot_description (also without rviz): this copy goes aside
         "remappings": [("joint_states", joint_states), ("robot_description", "/legion/rviz/robot_description")],
         "arguments": []},
        {"package": "rviz2", "executable": "rviz2", "name": "rviz2", "parameters": {"use_sim_time": sim_time},
         "remappings": [], "arguments": ["-d", str(config_path(RVIZ_CONFIG))]},
    ]


def _given(context, mode: str) -> dict:
    """The launch arguments whose value differs from the default: what the user gave (an argument left at
    its default stays out, so the graph derives it, e.g. ``task:=...`` alone replaces the default sequence)."""
    from launch.substitutions import LaunchConfiguration

    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in graph_mod.LAUNCH_ARGS}
    return {a.name: values[a.name] for a in graph_mod.LAUNCH_ARGS if values[a.name] != str(a.default(mode))}


def _rviz_nodes(context, mode: str) -> list:
    from launch_ros.actions import Node

    values = _given(context, mode)
    try:
        specs = rviz_node_specs(mode, values)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise ValueError(exc.args[0] if exc.args else str(exc)) from None
    return [Node(package=s["package"], executable=s["executable"], name=s["name"], output="screen",
                 parameters=[s["parameters"]], remappings=s["remappings"], arguments=s["arguments"])
            for s in specs]
