"""The one graph definition drives both the launch files and legion-launch."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from legion_bridge import graph as graph_mod
from legion_bridge import launch_builder, launcher
from legion_bridge.paths import config_path

ROOT = Path(__file__).resolve().parent.parent


def launcher_nodes(mode, values=None):
    return [(c.name, Path(c.argv[0]).name) for c in launcher.node_commands(mode, values, resolve_executables=False)]


def test_sim_graph_runs_the_default_sequence_on_its_scene_and_real_waits_without_a_sequencer():
    sim = {c.name: c.argv for c in launcher.node_commands("sim", resolve_executables=False)}
    assert set(sim) == {"sim_arm", "real2sim", "policy", "sim2real", "sequencer", "monitor", "description"}
    seq = graph_mod.resolve_sequence_path(graph_mod.DEFAULT_SIM_SEQUENCE)
    assert seq.is_file() and f"sequence_file:={seq}" in sim["sequencer"]
    assert f"scene:={graph_mod.sequence_scene(seq)}" in sim["sim_arm"] and graph_mod.sequence_scene(seq)
    real = {c.name for c in launcher.node_commands("real", resolve_executables=False)}
    assert real == {"real2sim", "policy", "sim2real", "monitor", "description"}
    for args in ({"task": "close the drawer"}, {"sequence": "workbench.yaml"}):
        assert "sequencer" in {c.name for c in launcher.node_commands("real", args, resolve_executables=False)}


def test_scene_follows_the_sequence_unless_given():
    reach = {c.name: c.argv for c in launcher.node_commands("sim", {"sequence": "tabletop_reach.yaml"},
                                                            resolve_executables=False)}
    assert "scene:=tabletop" in reach["sim_arm"]
    given = {c.name: c.argv for c in launcher.node_commands("sim", {"sequence": "tabletop_reach.yaml",
                                                                    "scene": "reach-v3"}, resolve_executables=False)}
    assert "scene:=reach-v3" in given["sim_arm"]
    only_task = {c.name: c.argv for c in launcher.node_commands("sim", {"sequence": "", "task": "reach-v3"},
                                                                resolve_executables=False)}
    assert f"scene:={graph_mod.DEFAULT_SIM_SCENE}" in only_task["sim_arm"]
    assert not any(a.startswith("sequence_file:=") for a in only_task["sequencer"])


def test_a_task_alone_replaces_the_default_sequence_and_a_given_sequence_wins():
    task_only = {c.name: c.argv for c in launcher.node_commands("sim", {"task": "reach-v3"}, resolve_executables=False)}
    assert "task:=reach-v3" in task_only["sequencer"]
    assert not any(a.startswith("sequence_file:=") for a in task_only["sequencer"]), task_only["sequencer"]
    assert f"scene:={graph_mod.DEFAULT_SIM_SCENE}" in task_only["sim_arm"]
    both = {c.name: c.argv for c in launcher.node_commands("sim", {"task": "reach-v3", "sequence": "workbench.yaml"},
                                                           resolve_executables=False)}
    assert any(a.startswith("sequence_file:=") and a.endswith("workbench.yaml") for a in both["sequencer"])


def test_sim_arm_only_in_sim():
    assert "sim_arm" in dict(launcher_nodes("sim"))
    assert "sim_arm" not in dict(launcher_nodes("real"))


def test_a_node_added_to_the_graph_appears_in_the_launcher(monkeypatch):
    extra = graph_mod.NodeSpec("extra_node", "legion_extra", "added by a test",
                               params=("topics.yaml",), modes=("real",))
    monkeypatch.setattr(graph_mod, "NODES", graph_mod.NODES + (extra,))
    assert ("extra_node", "legion_extra") in launcher_nodes("real")
    assert "extra_node" not in dict(launcher_nodes("sim"))


@pytest.mark.parametrize("rc,shutting_down,required,ends,action", [
    (0, False, True, True, "shutdown"), (1, False, True, True, "fail"), (-9, False, True, False, "fail"),
    (0, False, True, False, "fail"), (1, False, False, False, "ignore"), (1, True, True, True, "ignore")])
def test_what_a_node_exit_means_for_launch(rc, shutting_down, required, ends, action):
    spec = graph_mod.NodeSpec("n", "legion_n", "x", required=required, ends_graph=ends)
    got, message = launch_builder.exit_outcome(spec, rc, shutting_down)
    assert got == action and "n" in message and str(rc) in message


@pytest.mark.parametrize("name,mode", [("sim_robot.launch.py", "sim"), ("real_robot.launch.py", "real")])
def test_launch_files_are_thin_and_use_the_builder(name, mode):
    tree = ast.parse((ROOT / "launch" / name).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert [i.module for i in imports] == ["legion_bridge.launch_builder"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert len(calls) == 1 and [a.value for a in calls[0].args] == [mode]


def test_every_parameter_file_of_every_node_exists():
    for mode in graph_mod.MODES:
        for nl in graph_mod.resolve(mode):
            for f in nl.param_files:
                assert Path(f).is_file(), f"{nl.spec.name}: {f}"


def test_launch_arguments_reach_the_right_nodes_in_both():
    cmds = {c.name: c.argv for c in launcher.node_commands("real", {"robot_model": "iiwa14", "enable": "true"},
                                                           resolve_executables=False)}
    assert "robot_model:=iiwa14" in cmds["sim2real"] and "robot_model:=iiwa14" in cmds["real2sim"]
    assert not any("robot_model" in a for a in cmds["policy"])
    assert "start_enabled:=true" in cmds["sim2real"]


def test_seed_argument_sets_the_simulated_instances_only():
    sim = {c.name: c.argv for c in launcher.node_commands("sim", {"seed": "7"}, resolve_executables=False)}
    assert "seed:=7" in sim["sim_arm"]
    assert not any("seed:=" in a for n, argv in sim.items() if n != "sim_arm" for a in argv)
    with pytest.raises(ValueError, match="seed"):
        graph_mod.resolve("sim", {"seed": "seven"})


def test_the_simulated_graph_runs_at_the_agents_control_period(tmp_path):
    """An agent trained at 50 ms (on the iiwa) runs at 50 ms in simulation, the shipped Sawyer-trained one at its
    12.5 ms; a given policy_period wins; the real arm keeps policy_period_real_s."""
    import json
    import shutil

    from legion_bridge.paths import default_agent_path

    def periods(mode, values):
        nodes = {n.spec.name: n.parameters for n in graph_mod.resolve(mode, values)}
        return {n: nodes[n].get("policy_period_sim_s") for n in ("real2sim", "sim2real")}

    shipped = json.loads((default_agent_path() / "manifest.json").read_text())["control_period_s"]
    assert periods("sim", {}) == {"real2sim": shipped, "sim2real": shipped}
    agent = tmp_path / "agent"
    shutil.copytree(default_agent_path(), agent)
    manifest = json.loads((agent / "manifest.json").read_text())
    (agent / "manifest.json").write_text(json.dumps({**manifest, "control_period_s": 0.05}))
    assert periods("sim", {"agent": str(agent)}) == {"real2sim": 0.05, "sim2real": 0.05}
    assert periods("sim", {"agent": str(agent), "policy_period": "0.025"}) == {"real2sim": 0.025, "sim2real": 0.025}
    assert periods("real", {"agent": str(agent)}) == {"real2sim": None, "sim2real": None}
    with pytest.raises(ValueError, match="policy_period: applies to the simulated graph"):
        graph_mod.resolve("real", {"policy_period": "0.05"})


def test_real_graph_starts_disabled_and_sim_enabled():
    real = {c.name: c.argv for c in launcher.node_commands("real", resolve_executables=False)}
    sim = {c.name: c.argv for c in launcher.node_commands("sim", resolve_executables=False)}
    assert "start_enabled:=false" in real["sim2real"]
    assert "start_enabled:=true" in sim["sim2real"]
    assert "use_sim_time:=false" in real["policy"] and "use_sim_time:=true" in sim["policy"]


def test_calibration_argument_replaces_the_calibration_file(tmp_path):
    cal = tmp_path / "cell.yaml"
    cal.write_text(config_path("calibration.yaml").read_text())
    cmds = {c.name: c.argv for c in launcher.node_commands("real", {"calibration": str(cal)},
                                                           resolve_executables=False)}
    for name in ("real2sim", "sim2real"):
        assert str(cal) in cmds[name]
        assert str(config_path("calibration.yaml")) not in cmds[name]


def test_mode_overrides_come_after_the_node_files():
    for nl in graph_mod.resolve("sim"):
        assert Path(nl.param_files[-1]).name == "sim.yaml"


@pytest.mark.parametrize("values,message", [
    ({"nope": "1"}, "unknown launch argument 'nope'"),
    ({"enable": "maybe"}, "launch argument enable: expected true or false"),
    ({"seed": ""}, None), ({"seed": "3.5"}, "launch argument seed: expected an integer, got '3.5'"),
])
def test_bad_launch_arguments_are_named(values, message):
    if message is None:  # an empty value leaves the node's default
        assert "seed" not in {k for nl in graph_mod.resolve("sim", values) for k in nl.parameters}
        return
    with pytest.raises((KeyError, ValueError), match=message):
        graph_mod.resolve("sim", values)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode 'lab'"):
        graph_mod.graph("lab")


@pytest.mark.parametrize("value,text", [("abc", "abc"), ("true", '"true"'), ("1.5", '"1.5"'), (True, "true"),
                                        ("/a b/c", "/a b/c"), ("", '""')])
def test_parameter_values_keep_their_type_on_the_command_line(value, text):
    assert launcher.ros_param_value(value) == text


def test_node_spec_is_frozen():
    spec = graph_mod.NODES[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
