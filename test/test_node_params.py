"""Node parameters defined once: the specs, the generated docs/architecture.md tables, and the nodes
declaring exactly their spec (descriptions, ranges and constraints reach `ros2 param describe`)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legion_bridge import param_docs
from legion_bridge.graph import LAUNCH_ARGS, NODES
from legion_bridge.node_params import COMMAND_INTERFACES, MONITOR, RECORDER, SIM2REAL
from legion_bridge.paths import config_path, default_agent_path
from legion_policy.node_params import POLICY
from legion_policy.params import NON_NEGATIVE, POSITIVE, NodeParams, ParamSpec, Range, value_matches

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SPECS = {name: spec for name, (spec, _where) in param_docs.SPECS.items()}


# --- the specs -----------------------------------------------------------------------------------


def test_every_graph_node_has_a_spec_named_after_it():
    assert set(SPECS) == {n.name for n in NODES}
    assert all(spec.node == name for name, spec in SPECS.items())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(type="double", default=1), TypeError, "is not a double"),          # an int is declared INTEGER
    (dict(type="int", default=True), TypeError, "is not a int"),             # a bool is never an int in ROS
    (dict(type="double[]", default=[1.0, 2]), TypeError, "is not a double"),
    (dict(type="string", default="a", range=POSITIVE), ValueError, "needs type int or double"),
    (dict(type="double", default=0.0, range=POSITIVE), ValueError, "x must be > 0, got 0.0"),
    (dict(type="string", default="c", choices=("a", "b")), ValueError, "must be one of"),
    (dict(type="string", default=None), ValueError, "needs `computed`"),
    (dict(type="string", default="a", required="pass it"), ValueError, "a required parameter has no default"),
    (dict(type="float", default=1.0), ValueError, "is not one of"),
    (dict(type="double", default=1.0, description=" "), ValueError, "needs a description"),
])
def test_a_spec_that_lies_is_refused_where_it_is_defined(kwargs, error, match):
    args = dict(name="x", description="a parameter") | kwargs
    with pytest.raises(error, match=match):
        ParamSpec(**args)


def test_a_node_spec_names_each_parameter_once():
    p = ParamSpec("x", "double", 1.0, "a parameter")
    with pytest.raises(ValueError, match="'x' defined twice"):
        NodeParams("n", (p, p))
    with pytest.raises(KeyError, match="node n has no parameter 'y'"):
        NodeParams("n", (p,))["y"]


def test_ranges_open_and_closed_ends():
    fraction = Range(0.0, 1.0, low_open=True)
    assert [fraction.contains(v) for v in (0.0, 1e-9, 1.0, 1.0 + 1e-9, math.nan)] == [False, True, True, False, False]
    assert str(fraction) == "(0, 1]" and str(POSITIVE) == "> 0" and str(NON_NEGATIVE) == ">= 0"
    assert POSITIVE.contains(math.inf) and not NON_NEGATIVE.contains(-1e-12)
    with pytest.raises(ValueError, match="low < high"):
        Range(1.0, 1.0)


def test_every_spec_default_is_what_ros_would_declare_with_its_type():
    for spec in SPECS.values():
        for p in spec:
            assert p.default is None or value_matches(p.type, p.default), (spec.node, p.name)
            assert p.default is not None or p.computed or p.required, (spec.node, p.name)


def test_sim2real_command_interfaces_are_the_bridge_loops():
    from legion_bridge.sim.bridge_loop import COMMAND_INTERFACES as LOOP  # the ROS-free chain keeps its own tuple

    assert SIM2REAL["command_interface"].choices == COMMAND_INTERFACES == LOOP


def _sections(path: Path, node: str) -> dict:
    """The keys a ROS 2 parameter file gives ``node`` (its `/**` and `<node>` sections)."""
    doc = yaml.safe_load(path.read_text()) or {}
    out: dict = {}
    for section in ("/**", node, f"/{node}"):
        out.update((doc.get(section) or {}).get("ros__parameters") or {})
    return out


@pytest.mark.parametrize("node", [n.name for n in NODES])
def test_the_nodes_own_parameter_files_set_only_declared_parameters(node):
    """config/<node>.yaml and the modes' `<node>:` sections: a key outside the spec would be silently ignored."""
    spec = SPECS[node]
    own = _sections(config_path(f"{node}.yaml"), node)
    for mode in ("sim", "real"):
        doc = yaml.safe_load(config_path("modes", f"{mode}.yaml").read_text())
        own.update((doc.get(node) or {}).get("ros__parameters") or {})
    unknown = sorted(k for k in own if k not in spec)
    assert not unknown, f"{node}: parameter files set {unknown}, which the node never declares"
    for key, value in own.items():  # the file's values have the declared types (else the start is refused)
        p = spec[key]
        assert value_matches(p.type, value), f"{node}: {key}: {value!r} in a parameter file is not a {p.type}"


#: The graph's wiring, written out in full: the file a cell edits to rewire its topics (topics.yaml) and the
#: default driver's profile (what another profile copies). Their values equal the spec defaults, checked below.
WIRING = ("topics.yaml", "drivers/iiwa_ros2.yaml")


def _what_each_file_gives():
    """{config-relative file: {(node, key): value}} over every node each graph (both modes, every driver,
    recording on) starts, with the files the graph gives it (`/**` and `<node>` sections)."""
    from legion_bridge.graph import DRIVERS, resolve

    out: dict = {}
    for mode in ("sim", "real"):
        for driver in DRIVERS:
            for launch in resolve(mode, {"driver": driver, "record": "true", "task": "reach-v3"}):
                node = launch.spec.name
                for f in launch.param_files:
                    rel = str(Path(f).relative_to(config_path()))
                    for key, value in _sections(Path(f), node).items():
                        out.setdefault(rel, {})[(node, key)] = value
    return out


def test_parameter_files_only_override_the_specs_defaults():
    """One default per parameter, in the spec. A parameter file sets only parameters a node that loads it
    declares (a key no node declares is silently ignored), with the declared type, and never a spec's
    default: a value repeating one would be a second place to keep in step (drift: the monitor's tolerance
    was 0.1 in its spec and 0.05 in monitor.yaml), so it is removed, and a new default is written in the spec
    alone. The wiring files (WIRING) are the exception: they write out every topic name for a cell to edit,
    and each value there equals the spec's default, so the two cannot drift apart either."""
    from legion_policy.params import GRAPH_TOPICS

    problems = []
    for rel, given in sorted(_what_each_file_gives().items()):
        for (node, key), value in sorted(given.items()):
            spec = SPECS[node]
            if key in spec:
                p = spec[key]
            elif key in GRAPH_TOPICS and spec.dynamic:  # a `$name` topic entry of the monitor or recorder
                p = GRAPH_TOPICS[key]
            else:
                if not any(k == key and (k in SPECS[n] or (k in GRAPH_TOPICS and SPECS[n].dynamic))
                           for n, k in given):
                    problems.append(f"{rel}: {key} is declared by no node that loads the file")
                continue
            if not value_matches(p.type, value):
                problems.append(f"{rel}: {node}.{key}: {value!r} is not a {p.type}")
            default = None if p.default is None else (list(p.default) if isinstance(p.default, tuple) else p.default)
            if rel in WIRING:
                if key in GRAPH_TOPICS and value != GRAPH_TOPICS[key].default:
                    problems.append(f"{rel}: {key} = {value!r} drifted from the spec's default "
                                    f"{GRAPH_TOPICS[key].default!r}")
            elif default is not None and value == default:
                problems.append(f"{rel}: {node}.{key} = {value!r} repeats the spec's default: remove it")
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_drift_rule_catches_a_copy(tmp_path, monkeypatch):
    """The rule above is not vacuous: monitor.yaml with the old copy of its tolerance fails it."""
    import legion_bridge.graph as graph_mod

    cfg = tmp_path / "config"
    import shutil
    shutil.copytree(config_path(), cfg)
    with (cfg / "monitor.yaml").open("a") as f:
        f.write(f"    tolerance: {MONITOR['tolerance'].default}\n")
    monkeypatch.setattr(graph_mod, "config_path", lambda *parts: cfg.joinpath(*parts))
    monkeypatch.setattr(sys.modules[__name__], "config_path", lambda *parts: cfg.joinpath(*parts))
    with pytest.raises(AssertionError, match=r"monitor.yaml: monitor.tolerance = 0.05 repeats the spec's default"):
        test_parameter_files_only_override_the_specs_defaults()


def test_launch_arguments_set_declared_parameters():
    for arg in LAUNCH_ARGS:
        if arg.kind != "param" or arg.parameter == "use_sim_time":  # use_sim_time: every rclpy node's own
            continue
        nodes = [n.name for n in NODES] if arg.nodes == ("*",) else arg.nodes
        for node in nodes:
            assert arg.parameter in SPECS[node], f"launch argument {arg.name} sets {node}.{arg.parameter}: not declared"


# --- the generated docs --------------------------------------------------------------------------------


def test_architecture_md_parameter_tables_are_what_the_specs_generate():
    text = DOC.read_text()
    assert param_docs.updated(text, str(DOC)) == text, \
        "docs/architecture.md is stale: run python -m legion_bridge.param_docs --write docs/architecture.md"
    block = text.split(param_docs.BEGIN)[1].split(param_docs.END)[0]
    for name, spec in SPECS.items():  # one table per node, every parameter a row
        assert f"#### {name} (" in block
        for p in spec:
            assert f"| `{p.name}` | {p.type} |" in block
    assert "| `similarity_threshold` | double | `0.5` | [-1, 1] |" in block
    assert r"\<prefix>/\<name>/pose" in block  # no bare <name>: markdown would take it for an HTML tag
    assert "Declared at start besides these: each `$name` entry of `topics`" in block  # monitor, recorder


def test_check_and_write_cli(tmp_path):
    doc = tmp_path / "architecture.md"
    good = DOC.read_text()
    row = "| `similarity_threshold` | double | `0.5` |"
    assert row in good
    doc.write_text(good.replace(row, row.replace("0.5", "0.7")))
    assert param_docs.main(["--check", str(doc)]) == 1
    assert param_docs.main(["--write", str(doc)]) == 0
    assert doc.read_text() == good
    assert param_docs.main(["--check", str(doc)]) == 0
    doc.write_text("# no markers\n")
    assert param_docs.main(["--check", str(doc)]) == 2


def test_write_leaves_the_rest_of_the_file_alone(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(f"intro\n\n{param_docs.BEGIN}\nold table\n{param_docs.END}\nafter\n")
    assert param_docs.main(["--write", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n\n" + param_docs.BEGIN) and text.endswith(param_docs.END + "\nafter\n")
    assert "old table" not in text and param_docs.updated(text) == text


# --- the nodes declare their spec ------------------------------------------------------------------------

ros = pytest.mark.ros
#: real2sim and sim2real need the calibration (no defaults): the shipped file
CALIBRATION_ARGS = ["--ros-args", "--params-file", str(config_path("calibration.yaml"))]


def _declared(node) -> dict:
    """The parameters the node itself declared (not rclpy's own)."""
    return {k: v for k, v in node.get_parameters_by_prefix("").items() if k not in param_docs.RCLPY_PARAMETERS}


def _assert_declares_spec(node, spec: NodeParams, dynamic: set[str] = frozenset()) -> None:
    declared = _declared(node)
    assert set(declared) - dynamic == set(spec.names), (
        f"{spec.node}: declared but not in the spec {sorted(set(declared) - set(spec.names) - dynamic)}, "
        f"in the spec but not declared {sorted(set(spec.names) - set(declared))}")
    for p in spec:
        d = node.describe_parameter(p.name)
        assert d.description == p.description and d.additional_constraints == p.constraint_text(), p.name
        assert d.read_only is not p.settable, p.name  # read at start: read-only, unless the node applies it
        if p.range is None:
            assert not d.floating_point_range and not d.integer_range, p.name
        elif p.type == "double":
            (r,) = d.floating_point_range
            assert (r.from_value, r.to_value) == (p.range.low, p.range.high), p.name
        else:
            assert d.integer_range, p.name


@ros
def test_bridge_nodes_declare_exactly_their_spec(tmp_path):
    from rclpy.parameter import Parameter

    from legion_bridge.nodes.description_node import DescriptionNode
    from legion_bridge.nodes.monitor_node import MonitorNode
    from legion_bridge.nodes.real2sim_node import Real2SimNode
    from legion_bridge.nodes.recorder_node import RecorderNode
    from legion_bridge.nodes.sim2real_node import Sim2RealNode
    from rosutil import ros_context

    with ros_context() as (ctx, _ex):
        nodes = [Real2SimNode(context=ctx, cli_args=CALIBRATION_ARGS), Sim2RealNode(context=ctx, cli_args=CALIBRATION_ARGS),
                 DescriptionNode(context=ctx),
                 MonitorNode(context=ctx, parameter_overrides=[
                     Parameter("topics", value=["$joint_states_topic:sensor_msgs/msg/JointState"]),
                     Parameter("joint_states_topic", value="/lbr/joint_states")]),
                 RecorderNode(context=ctx, parameter_overrides=[
                     Parameter("bag_path", value=str(tmp_path / "bag")),
                     Parameter("topics", value=["$action_topic"]), Parameter("action_topic", value="/a")])]
        try:
            for node in nodes[:3]:
                _assert_declares_spec(node, SPECS[node.get_name()])
            _assert_declares_spec(nodes[3], MONITOR, dynamic={"joint_states_topic"})
            _assert_declares_spec(nodes[4], RECORDER, dynamic={"action_topic"})
            s2r = nodes[1]
            assert _declared(s2r)["acceleration_limits"].value == [10.0] * 7  # computed: one per joint
            assert _declared(s2r)["arm_joint_names"].value == [f"joint_a{i}" for i in range(1, 8)]
            assert _declared(s2r)["command_horizon_periods"].value == 2.0
            # read at start, so read-only: `ros2 param set` is refused, in the range or not
            for value in (1.5, 0.25):
                result = s2r.set_parameters([Parameter("velocity_scale", value=value)])[0]
                assert not result.successful and "velocity_scale" in result.reason
        finally:
            for node in nodes:
                node.destroy_node()


@ros
def test_ros2_param_describe_gets_description_range_and_constraints_over_the_service(tmp_path):
    """What `ros2 param describe /recorder discovery_period_s` asks: the node's describe_parameters service."""
    import rclpy
    from rcl_interfaces.srv import DescribeParameters
    from rclpy.parameter import Parameter

    from legion_bridge.nodes.recorder_node import RecorderNode
    from rosutil import ros_context, spin_until

    with ros_context() as (ctx, ex):
        node = RecorderNode(context=ctx, parameter_overrides=[Parameter("bag_path", value=str(tmp_path / "bag"))])
        client = rclpy.create_node("describe_client", context=ctx)
        try:
            ex.add_node(node)
            ex.add_node(client)
            cli = client.create_client(DescribeParameters, "/recorder/describe_parameters")
            assert spin_until(ex, cli.service_is_ready, 5.0)
            future = cli.call_async(DescribeParameters.Request(names=["discovery_period_s", "topics"]))
            assert spin_until(ex, future.done, 5.0)
            period, topics = future.result().descriptors
            spec = RECORDER["discovery_period_s"]
            assert period.description == spec.description
            assert period.additional_constraints == "> 0"
            (r,) = period.floating_point_range
            assert (r.from_value, r.to_value) == (0.0, math.inf)
            assert topics.description == RECORDER["topics"].description and not topics.floating_point_range
        finally:
            client.destroy_node()
            node.destroy_node()


@ros
def test_sim_arm_declares_its_spec_with_the_calibration_files_defaults():
    from legion_bridge.calibration import read_ros_params
    from legion_bridge.nodes.sim_arm_node import SimArmNode
    from rosutil import ros_context

    with ros_context() as (ctx, _ex):
        node = SimArmNode(context=ctx)
        try:
            _assert_declares_spec(node, SPECS["sim_arm"])
            cal = read_ros_params(config_path("calibration.yaml"))
            assert _declared(node)["sim_from_base_xyz"].value == [float(v) for v in cal["sim_from_base_xyz"]]
        finally:
            node.destroy_node()


@ros
def test_policy_and_sequencer_declare_their_spec_and_default_to_the_shipped_agent():
    from rclpy.parameter import Parameter

    from legion_policy.nodes.policy_node import PolicyNode
    from legion_policy.nodes.sequencer_node import SequencerNode
    from rosutil import ros_context

    with ros_context() as (ctx, _ex):
        policy = PolicyNode(context=ctx, parameter_overrides=[Parameter("preload_language_model", value=False)])
        seq = SequencerNode(context=ctx, parameter_overrides=[Parameter("task", value="reach-v3")])
        try:
            _assert_declares_spec(policy, POLICY)
            _assert_declares_spec(seq, SPECS["sequencer"])
            for node in (policy, seq):
                assert _declared(node)["agent_path"].value == str(default_agent_path())
        finally:
            policy.destroy_node()
            seq.destroy_node()


@ros
@pytest.mark.parametrize("make, overrides, message", [
    ("policy", {"similarity_threshold": 1.5}, "similarity_threshold must be in [-1, 1], got 1.5"),
    ("recorder", {"discovery_period_s": 0.0}, "discovery_period_s must be > 0, got 0.0"),
    ("sim2real", {"velocity_scale": 0.0}, "velocity_scale must be in (0, 1], got 0.0"),
])
def test_a_value_outside_the_range_refuses_the_start_with_one_line(make, overrides, message, tmp_path):
    from rclpy.parameter import Parameter

    from legion_bridge.nodes.recorder_node import RecorderNode
    from legion_bridge.nodes.sim2real_node import Sim2RealNode
    from legion_policy.nodes.policy_node import PolicyNode
    from rosutil import ros_context

    cls = {"policy": PolicyNode, "recorder": RecorderNode, "sim2real": Sim2RealNode}[make]
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    if make == "recorder":
        params.append(Parameter("bag_path", value=str(tmp_path / "bag")))
    with ros_context() as (ctx, _ex):
        with pytest.raises(ValueError) as err:
            cls(context=ctx, parameter_overrides=params, cli_args=CALIBRATION_ARGS if make == "sim2real" else None)
    assert str(err.value) == message


@ros
def test_the_node_process_prints_the_range_error_as_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "legion_bridge.nodes.recorder_node", "--ros-args",
                           "-p", f"bag_path:={tmp_path / 'bag'}", "-p", "discovery_period_s:=-1.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "recorder: discovery_period_s must be > 0, got -1.0"
    assert not (tmp_path / "bag").exists()


@ros
@pytest.mark.parametrize("node", ["real2sim", "sim2real"])
def test_a_node_started_without_the_calibration_refuses_to_start_with_one_line(node, tmp_path):
    """The calibration has no default (an envelope for an uncalibrated cell would be a guess): the process,
    started as `ros2 run` starts it with every parameter file but calibration.yaml, exits 2 with one line
    naming the missing parameter and the file to pass; with the file it starts (here: it refuses the agent
    path that comes next instead, so nothing runs)."""
    from legion_bridge.launcher import node_commands

    (cmd,) = node_commands("real", only=[node], resolve_executables=False)
    argv = list(cmd.argv[1:])
    i = argv.index(str(config_path("calibration.yaml")))
    without = argv[:i - 1] + argv[i + 1:]
    assert "calibration.yaml" not in " ".join(without)
    proc = subprocess.run([sys.executable, "-m", f"legion_bridge.nodes.{node}_node", *without],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"{node}: required parameter 'sim_from_base_xyz' is not set: pass the calibration "
                                   "file (config/calibration.yaml, docs/calibration.md)"), proc.stderr
    partial = tmp_path / "partial.yaml"  # a calibration file missing a key names that key
    partial.write_text("/**:\n  ros__parameters:\n    sim_from_base_xyz: [0.0, 0.65, 1.36]\n"
                       "    sim_from_base_rpy: [3.14, 0.0, 1.57]\n")
    proc = subprocess.run([sys.executable, "-m", f"legion_bridge.nodes.{node}_node", *without,
                           "--params-file", str(partial)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(
        f"{node}: required parameter 'base_from_camera_xyz' is not set"), proc.stderr


def test_graph_topic_defaults_are_the_parameter_files_topic_names():
    """config/topics.yaml (what every node loads first) and GRAPH_TOPICS (the declared defaults, the docs) agree."""
    import yaml

    from legion_policy.params import GRAPH_TOPICS
    from legion_policy.paths import config_path

    shipped = yaml.safe_load(config_path("topics.yaml").read_text())["/**"]["ros__parameters"]
    declared = {p.name: p.default for p in GRAPH_TOPICS}
    assert {k: declared.get(k) for k in shipped} == shipped


# --- run time: read-only unless the node applies a new value --------------------------------------------


def test_every_settable_parameter_is_one_its_node_applies():
    """`settable` is a promise that the node applies a new value at run time: only the monitor's tolerance
    keeps it (read at every report); everything else is read at start and declared read-only."""
    settable = {(name, p.name) for name, spec in SPECS.items() for p in spec if p.settable}
    assert settable == {("monitor", "tolerance")}


@ros
def test_ros2_param_set_on_the_safety_layer_is_refused_and_changes_nothing():
    """`ros2 param set /sim2real velocity_scale 1.0` on the real graph's sim2real (started with the files and
    arguments `legion-launch real` gives it) goes to its set_parameters service, as here: refused with a reason
    naming the parameter, the value and the envelope the node enforces unchanged. Before parameters were
    read-only it was accepted (successful=True) and silently ignored: the envelope kept 0.5."""
    from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
    from rclpy.parameter import Parameter

    from legion_bridge.launcher import node_commands
    from legion_bridge.nodes.sim2real_node import Sim2RealNode
    from rosutil import node_with_client

    (cmd,) = node_commands("real", only=["sim2real"], resolve_executables=False)
    with node_with_client(Sim2RealNode, cmd.argv[1:], "param_client") as (node, call):
        before = node.core.limits
        assert before.velocity_scale == 0.5 and node.get_parameter("legion_mode").value == "real"
        for name, value in (("velocity_scale", 1.0), ("velocity_scale", 7.0), ("position_margin", 0.0),
                            ("start_enabled", True)):
            req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            (result,) = call(SetParameters, "/sim2real/set_parameters", req).results
            assert not result.successful, (name, value)
            assert result.reason == f"Trying to set a read-only parameter: {name}.", result.reason
        got = call(GetParameters, "/sim2real/get_parameters",
                   GetParameters.Request(names=["velocity_scale", "start_enabled"])).values
        assert [got[0].double_value, got[1].bool_value] == [0.5, False]
        (d,) = call(DescribeParameters, "/sim2real/describe_parameters",
                    DescribeParameters.Request(names=["velocity_scale"])).descriptors
        assert d.read_only
        assert node.core.limits is before and node.core.limits.velocity_scale == 0.5
        assert not node.core.enabled


@ros
def test_a_settable_parameter_is_checked_against_its_spec_and_applied():
    """The monitor's tolerance, over its set_parameters service: outside its range refused with a reason naming
    it, inside applied at once (the next report compares rates with it); its period stays read-only."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    from legion_bridge.launcher import node_commands
    from legion_bridge.nodes.monitor_node import MonitorNode
    from rosutil import node_with_client

    (cmd,) = node_commands("sim", only=["monitor"], resolve_executables=False)
    with node_with_client(MonitorNode, cmd.argv[1:], "param_client") as (node, call):
        assert node.tolerance == MONITOR["tolerance"].default

        def set_(name, value):
            req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            return call(SetParameters, "/monitor/set_parameters", req).results[0]

        refused = set_("tolerance", -0.1)
        assert not refused.successful and "tolerance" in refused.reason and "-0.1" in refused.reason
        assert node.tolerance == MONITOR["tolerance"].default
        assert set_("tolerance", 0.2).successful
        assert node.tolerance == 0.2 and node.get_parameter("tolerance").value == 0.2
        refused = set_("period_s", 2.0)
        assert not refused.successful and refused.reason == "Trying to set a read-only parameter: period_s."


@ros
def test_a_settable_parameter_is_held_to_what_ros_ranges_cannot_say():
    """ROS ranges are closed: an open end (> 0) and string choices are checked by declare_all's callback, which
    applies nothing of a refused change; a settable parameter without its apply function is a programming error."""
    import rclpy
    from rclpy.parameter import Parameter

    from legion_policy.nodes.parameters import declare_all
    from rosutil import ros_context

    spec = NodeParams("n", (ParamSpec("x", "double", 1.0, "a parameter", range=POSITIVE, settable=True),
                            ParamSpec("mode", "string", "a", "a choice", choices=("a", "b"), settable=True),
                            ParamSpec("y", "double", 1.0, "another")))
    applied: list = []
    with ros_context() as (ctx, _ex):
        node = rclpy.create_node("n", context=ctx)
        try:
            with pytest.raises(KeyError, match="on_set must apply exactly its settable parameters"):
                declare_all(node, spec, on_set={"x": applied.append})
            node.destroy_node()
            node = rclpy.create_node("n", context=ctx)
            declare_all(node, spec, on_set={"x": applied.append, "mode": applied.append})
            results = node.set_parameters([Parameter("x", value=0.0), Parameter("mode", value="c"),
                                           Parameter("x", value=2.0), Parameter("mode", value="b")])
            assert [(r.successful, r.reason) for r in results] == [
                (False, "x must be > 0, got 0.0"), (False, "mode must be one of ('a', 'b'), got 'c'"),
                (True, ""), (True, "")]
            assert applied == [2.0, "b"] and node.get_parameter("x").value == 2.0
            (y,) = node.set_parameters([Parameter("y", value=2.0)])
            assert not y.successful and node.get_parameter("y").value == 1.0
        finally:
            node.destroy_node()
