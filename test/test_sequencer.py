"""Sequencer core: step transitions after k consecutive successes, settling, timeouts, the report,
and sequence-file validation (including the shipped example sequences)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from legion_policy.agent_format import load_agent
from legion_policy.observation_layout import COMPACT12, METAWORLD39
from legion_policy.policy import SkillMatcher
from legion_policy.skills import get_skill, load_scene
from legion_policy.tasks import finger_yaw_deg
from legion_policy.sequencer import (STOP_TASK, SequenceError, SequenceRunner, build_sequence,
                                     format_report_table, load_sequence_file, single_task_sequence,
                                     skills_from_agent, write_report)
from policy_agents import make_agent
from seq_world import ScriptedWorld

CONFIG = Path(__file__).resolve().parent.parent / "config" / "sequences"
SKILLS = {"reach-v3": {"predicate": "reach-v3", "binding": None},
          "push-v3": {"predicate": "push-v3", "binding": None},
          "button-press-topdown-v3": {"predicate": "button-press-topdown-v3", "binding": None},
          "no-predicate": {"predicate": None, "binding": None}}


def no_language(text):
    raise ValueError(f"no instruction matching in this test ({text!r})")


THREE_STEPS = {"name": "three", "k_consecutive": 3, "timeout_s": 5.0, "settle_s": 0.05, "steps": [
    {"skill": "reach-v3", "binding": {"objects": ["puck"], "goal_object": "reach_goal"}},
    {"skill": "push-v3", "binding": {"objects": ["puck"], "goal_object": "push_goal"}, "timeout_s": 3.0},
    {"skill": "button-press-topdown-v3", "binding": {"objects": ["button"], "goal_object": "button_goal"},
     "k_consecutive": 5},
]}


def run_world(runner: SequenceRunner, world: ScriptedWorld, dt: float = 0.0125, max_obs: int = 5000):
    """Feed observations until the runner finishes; returns the commands in order."""
    t = 0.0
    commands = [runner.start(t)]
    world.binding, world.task = commands[0].binding, commands[0].task
    for _ in range(max_obs):
        t += dt
        cmd = runner.on_observation(world.observe(), t)
        if cmd is not None:
            commands.append(cmd)
            if cmd.binding is not None:
                world.binding = cmd.binding
            if cmd.task is not None:
                world.task = cmd.task
            if cmd.finished:
                break
        world.step()
    return commands


def test_three_step_sequence_advances_and_reports():
    seq = build_sequence(THREE_STEPS, SKILLS, no_language)
    runner = SequenceRunner(seq, METAWORLD39)
    cmds = run_world(runner, ScriptedWorld())
    assert [c.task for c in cmds] == ["reach-v3", "push-v3", "button-press-topdown-v3", STOP_TASK]
    assert cmds[1].binding.to_dict() == {"skill": "push-v3", "objects": ["puck"], "goal": None, "goal_object": "push_goal",
                               "quat_order": "xyzw", "finger_yaw_deg": 0.0}
    assert cmds[2].binding.quat_order == "wxyz"         # the button task's quaternion order by default
    assert cmds[-1].enable is False and cmds[-1].finished
    report = runner.report()
    assert report["success"] and report["status"] == "succeeded"
    rows = report["steps"]
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert all(r["time_s"] > 0 and r["steps"] >= r["k_consecutive"] for r in rows)
    assert rows[2]["k_consecutive"] == 5 and rows[1]["timeout_s"] == 3.0
    assert all(r["final_distance"] <= r["threshold"] for r in rows)
    # the scripted world starts each step away from its goal and approaches it
    assert all(r["initial_distance"] > r["threshold"] >= r["best_distance"] for r in rows)
    assert report["total_time_s"] == pytest.approx(sum(r["time_s"] for r in rows))
    table = format_report_table(report)
    assert "SUCCEEDED" in table and "button-press-topdown-v3" in table


def test_needs_k_consecutive_and_resets_on_a_miss():
    seq = build_sequence({"k_consecutive": 3, "settle_s": 0.0, "steps": [{"skill": "push-v3"}]}, SKILLS, no_language)
    runner = SequenceRunner(seq, METAWORLD39)
    runner.start(0.0)
    good = METAWORLD39.pack({**{f.name: np.zeros(f.size) for f in METAWORLD39.fields},
                             "object1_pos": [0, 0.8, 0.02], "goal_pos": [0.01, 0.8, 0.02]})
    bad = good.copy()
    bad[METAWORLD39.slice("object1_pos")] = [0.3, 0.8, 0.02]
    for i, obs in enumerate([good, good, bad, good, good]):
        assert runner.on_observation(obs, 0.1 * (i + 1)) is None
    assert runner.records[0].consecutive == 2
    assert runner.on_observation(good, 0.6).finished
    assert runner.report()["steps"][0]["steps"] == 6


def test_settle_time_ignores_observations_with_the_old_binding():
    seq = build_sequence({"settle_s": 0.5, "k_consecutive": 1, "steps": [{"skill": "push-v3"}]}, SKILLS, no_language)
    runner = SequenceRunner(seq, METAWORLD39)
    runner.start(10.0)
    good = np.zeros(39)
    assert runner.on_observation(good, 10.2) is None and runner.records[0].observations == 0
    assert runner.on_observation(good, 10.6).finished


def test_timeout_fails_safely_and_marks_the_rest_not_run():
    seq = build_sequence(THREE_STEPS, SKILLS, no_language)
    runner = SequenceRunner(seq, METAWORLD39)
    cmds = run_world(runner, ScriptedWorld(stuck=("push-v3",)))
    assert [c.task for c in cmds] == ["reach-v3", "push-v3", STOP_TASK]
    assert cmds[-1].enable is False
    report = runner.report()
    assert not report["success"] and report["status"] == "failed"
    assert [r["status"] for r in report["steps"]] == ["succeeded", "timeout", "not_run"]
    assert report["steps"][1]["time_s"] == pytest.approx(3.0, abs=0.02)
    assert "step 2" in report["reason"] and "timed out after 3 s" in report["reason"]
    assert "FAILED" in format_report_table(report)


def test_tick_times_out_without_observations_and_abort():
    seq = build_sequence(THREE_STEPS, SKILLS, no_language)
    runner = SequenceRunner(seq, METAWORLD39)
    runner.start(0.0)
    assert runner.tick(4.9) is None
    cmd = runner.tick(5.0)
    assert cmd.finished and cmd.enable is False and runner.status == "failed"
    runner2 = SequenceRunner(seq, METAWORLD39)
    runner2.start(0.0)
    assert runner2.abort("operator stop", 1.0).finished
    assert runner2.report()["steps"][0]["status"] == "aborted" and runner2.reason == "operator stop"


@pytest.mark.parametrize("doc,message", [
    ({"steps": [{"skill": "fly-v3"}]}, r"step 1: the agent has no skill 'fly-v3'"),
    ({"steps": [{"skill": "reach-v3", "instruction": "reach"}]}, r"step 1: give exactly one of"),
    ({"steps": [{"skill": "reach-v3"}, {"skill": "push-v3", "speed": 2}]}, r"step 2: unknown keys \['speed'\]"),
    ({"steps": [{"skill": "push-v3", "binding": {"objects": ["a", "b", "c"]}}]}, r"step 1 binding: 'objects'"),
    ({"steps": [{"skill": "push-v3", "binding": {"quat_order": "zyx"}}]}, r"quat_order"),
    ({"steps": [{"skill": "push-v3", "binding": {"task_offset": [0.1, 0.2]}}]}, r"step 1 binding: 'task_offset'"),
    ({"steps": [{"skill": "push-v3", "binding": {"finger_yaw_deg": 120}}]}, r"step 1 binding: 'finger_yaw_deg'"),
    ({"steps": [{"skill": "push-v3", "binding": {"finger_yaw_deg": "x"}}]}, r"step 1 binding: 'finger_yaw_deg'"),
    ({"steps": [{"skill": "push-v3", "timeout_s": -1}]}, r"step 1: timeout_s must be"),
    ({"steps": [{"skill": "push-v3", "k_consecutive": 0}]}, r"step 1: k_consecutive must be"),
    ({"steps": [{"skill": "no-predicate"}]}, r"has no success predicate"),
    ({"steps": [{"instruction": "dance"}]}, r"step 1: no instruction matching"),
    ({"steps": []}, r"'steps' must be a non-empty list"),
    ({"steps": [{"skill": "push-v3"}], "colour": 1}, r"unknown keys \['colour'\]"),
])
def test_bad_sequences_are_refused_naming_the_step(doc, message):
    with pytest.raises(SequenceError, match=message):
        build_sequence(doc, SKILLS, no_language)


def test_shipped_sequences_derive_every_binding_from_their_scene():
    """No shipped sequence copies a binding, an offset or a move-to goal: each step names a placement (or is a
    move-to whose goal the sequencer derives), and the derived task_offset is the placement's own offset
    (+ the step's shift)."""
    for path in sorted(CONFIG.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        scene = load_scene(doc["scene"])
        for entry in doc["steps"]:
            assert "binding" not in entry, (path.name, entry)
            assert ("placement" in entry) != (entry.get("skill") == "move-to"), (path.name, entry)
        seq = load_sequence_file(path, {**SKILLS, **{n: {"predicate": n, "binding": None} for n in
                                                     ("drawer-close-v3", "handle-press-v3", "move-to")}},
                                 lambda text: ({"push the puck to the goal": "push-v3",
                                                "press the button from the top": "button-press-topdown-v3"}[text], 1.0))
        for step, entry in zip(seq.steps, doc["steps"]):
            if "placement" in entry:
                p = scene.placement(entry["placement"])
                want = np.asarray(p.offset) + np.asarray(entry.get("shift", (0.0, 0.0, 0.0)))
                np.testing.assert_allclose(step.binding.task_offset, want, atol=1e-12)
                assert step.binding.objects == p.observe and step.binding.goal_object == p.goal


def test_bad_placement_steps_are_refused_naming_the_step():
    skills = {**SKILLS, "move-to": {"predicate": "move-to", "binding": None}}
    for doc, message in (
            ({"scene": "tabletop", "steps": [{"skill": "push-v3", "placement": "shelf"}]},
             r"step 1: scene 'tabletop' has no placement 'shelf'"),
            ({"steps": [{"skill": "push-v3", "placement": "push"}]}, r"step 1: 'placement' needs the sequence's 'scene'"),
            ({"scene": "tabletop", "steps": [{"skill": "move-to"}, {"skill": "push-v3", "binding": {}}]},
             r"step 1: move-to needs a target"),
            ({"scene": "tabletop", "steps": [{"skill": "push-v3", "placement": "push", "via": [0, 0, 0.1]}]},
             r"step 1: 'via' applies to a move-to only"),
            ({"scene": "tabletop", "steps": [{"skill": "push-v3", "placement": "push", "shift": [0, 0]}]},
             r"step 1: shift must be \[dx, dy, dz\]"),
            ({"scene": "tabletop", "steps": [{"skill": "push-v3"}]}, r"step 1: in scene 'tabletop' a step names its"),
            ({"scene": "nowhere", "steps": [{"skill": "push-v3", "placement": "push"}]}, r"scene 'nowhere': .*no such scene"),
    ):
        with pytest.raises(SequenceError, match=message):
            build_sequence(doc, skills, no_language)


def test_task_offset_reaches_the_published_binding_only_where_given():
    doc = {"steps": [{"skill": "button-press-topdown-v3",
                      "binding": {"objects": ["button"], "goal_object": "button_goal", "task_offset": [0.3, -0.1, 0]}},
                     {"skill": "reach-v3", "binding": {"objects": ["puck"], "goal_object": "reach_goal"}}]}
    seq = build_sequence(doc, SKILLS, no_language)
    assert seq.steps[0].binding.task_offset == (0.3, -0.1, 0.0)
    assert seq.steps[1].binding.task_offset is None and "task_offset" not in seq.steps[1].binding.to_dict()


def test_learned_skills_carry_their_finger_yaw_and_move_to_keeps_the_current_one():
    skills = {**SKILLS, "handle-press-v3": {"predicate": "handle-press-v3", "binding": None},
              "move-to": {"predicate": "move-to", "binding": None}}
    doc = {"steps": [{"skill": "handle-press-v3"}, {"skill": "push-v3"},
                     {"skill": "push-v3", "binding": {"finger_yaw_deg": -45}},
                     {"skill": "move-to", "binding": {"goal": [0.0, 0.6, 0.2]}},
                     {"skill": "move-to", "binding": {"goal": [0.0, 0.6, 0.2], "finger_yaw_deg": 90}}]}
    b = [s.binding for s in build_sequence(doc, skills, no_language).steps]
    assert b[0].finger_yaw_deg == get_skill("handle-press-v3").finger_yaw_deg == 90.0
    assert b[1].finger_yaw_deg == 0.0 and b[2].finger_yaw_deg == -45.0
    assert b[3].finger_yaw_deg is None and b[4].finger_yaw_deg == 90.0


def test_layout_without_the_predicate_fields_is_refused():
    seq = build_sequence({"steps": [{"skill": "push-v3"}]}, SKILLS, no_language)
    assert SequenceRunner(seq, COMPACT12).step is None   # compact12 has object1_pos and goal_pos
    peg = build_sequence({"steps": [{"skill": "peg"}]}, {"peg": {"predicate": "peg-insert-side-v3"}}, no_language)
    with pytest.raises(ValueError, match="object1_quat"):
        SequenceRunner(peg, COMPACT12)


@pytest.fixture(scope="module")
def real_agent(tmp_path_factory):
    return load_agent(make_agent(tmp_path_factory.mktemp("seq") / "agent")[0])


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.glob("*.yaml")))
def test_shipped_sequences_resolve_against_an_agent(name, real_agent):
    """Each shipped sequence resolves (the workbench one against the shipped agent, whose skills it
    chains) and binds only names its scene tracks."""
    from legion_bridge.paths import default_agent_path

    doc = yaml.safe_load((CONFIG / name).read_text())
    agent = real_agent if doc["scene"] == "tabletop" else load_agent(default_agent_path())
    matcher = SkillMatcher(agent.skill_names, agent.embedding_matrix())
    seq = load_sequence_file(CONFIG / name, skills_from_agent(agent), matcher)
    tracked = set(load_scene(doc["scene"]).tracked)
    assert len(seq.steps) == len(doc["steps"])
    for step, entry in zip(seq.steps, doc["steps"]):
        assert step.task == entry.get("skill", entry.get("instruction"))
        if "instruction" in entry:
            assert step.similarity >= matcher.threshold
        assert set(step.binding.objects) <= tracked
        assert step.binding.goal_object in tracked or step.binding.goal is not None
    SequenceRunner(seq, agent.layout)


def test_instruction_steps_resolve_with_minilm_and_single_task(real_agent):
    skills = skills_from_agent(real_agent)
    matcher = SkillMatcher(real_agent.skill_names, real_agent.embedding_matrix())
    seq = build_sequence({"steps": [{"instruction": "shove the puck over to the target"}]}, skills, matcher)
    assert seq.steps[0].skill == "push-v3" and seq.steps[0].task == "shove the puck over to the target"
    with pytest.raises(SequenceError, match=r"step 1: instruction 'bake a cake' refused: nearest skill"):
        build_sequence({"steps": [{"instruction": "bake a cake"}]}, skills, matcher)
    one = single_task_sequence("button-press-topdown-v3", skills, matcher)
    assert one.steps[0].binding.to_dict() == {"skill": "button-press-topdown-v3", "objects": ["object"], "goal": None,
                                    "goal_object": "goal", "quat_order": "wxyz", "finger_yaw_deg": 0.0}


def test_missing_file_and_written_report(tmp_path):
    with pytest.raises(SequenceError, match="sequence file not found"):
        load_sequence_file(tmp_path / "none.yaml", SKILLS, no_language)
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    with pytest.raises(SequenceError, match="not valid YAML"):
        load_sequence_file(tmp_path / "bad.yaml", SKILLS, no_language)
    runner = SequenceRunner(build_sequence(THREE_STEPS, SKILLS, no_language), METAWORLD39)
    run_world(runner, ScriptedWorld())
    path = write_report(runner.report(agent="x"), tmp_path / "out")
    import json
    data = json.loads(path.read_text())
    assert data["success"] and data["agent"] == "x" and len(data["steps"]) == 3


def test_reach_tour_offsets_put_every_goal_where_reach_learned_goals():
    """The tour drives one skill to three markers; each step's task_offset must bring its marker into
    reach-v3's training goal box (Metaworld: x [-0.1, 0.1], y [0.8, 0.9], z [0.05, 0.3]) on every
    tabletop placement, or the policy sees a goal it never learned."""
    from legion_bridge.sim.cell import TABLETOP, Cell

    steps = load_sequence_file(CONFIG / "tabletop_reach_tour.yaml", SKILLS, no_language).steps
    assert len(steps) >= 3 and {s.skill for s in steps} == {"reach-v3"}
    low, high = np.array([-0.1, 0.8, 0.05]), np.array([0.1, 0.9, 0.3])
    cell = Cell(TABLETOP, seed=0)
    for seed in range(10):
        cell.reset(seed=seed)
        for step in steps:
            b = step.binding
            seen = cell.object_pose(b.goal_object)[0] - np.asarray(b.task_offset)
            assert np.all(seen >= low - 1e-6) and np.all(seen <= high + 1e-6), (seed, step.name, seen)


def test_move_to_is_offered_beside_the_agent_skills_and_needs_a_target(tmp_path):
    path, _ = make_agent(tmp_path / "agent", seed=0)
    skills = skills_from_agent(load_agent(path))
    assert skills["move-to"]["predicate"] == "move-to"
    seq = build_sequence({"steps": [{"skill": "move-to", "binding": {"goal": [0.1, 0.5, 0.2]}}]}, skills, no_language)
    step = seq.steps[0]
    assert step.binding.goal == (0.1, 0.5, 0.2) and step.binding.objects == ()
    obs = np.zeros(METAWORLD39.size)
    obs[METAWORLD39.slice("goal_pos")] = [0.1, 0.5, 0.2]
    obs[METAWORLD39.slice("hand_pos")] = [0.1, 0.5, 0.215]
    assert step.predicate(obs, METAWORLD39)            # within 2 cm
    obs[METAWORLD39.slice("hand_pos")] = [0.1, 0.5, 0.23]
    assert not step.predicate(obs, METAWORLD39)
    with pytest.raises(SequenceError, match="move-to needs a target"):
        build_sequence({"steps": [{"skill": "move-to"}]}, skills, no_language)


def test_workbench_sequence_matches_the_scene_and_starts_each_skill_where_it_learned():
    """The workbench demo: its task offsets are the scene's own shifts, every learned skill is a
    different one, the hand starts at the first skill's training start and the move-to before each
    other skill ends at that skill's Metaworld hand start + its offset (+ its start lift), with its finger yaw."""
    from legion_bridge.sim.cell import WORKBENCH, metaworld_env_class

    doc = yaml.safe_load((CONFIG / "workbench.yaml").read_text())
    assert doc["scene"] == WORKBENCH
    scene = load_scene(WORKBENCH)
    offsets = {p.skill: np.asarray(p.offset) for p in scene.placements}

    def start(task):   # Metaworld's own hand start, not the skill data's copy of it
        return (np.asarray(metaworld_env_class(task)().hand_init_pos) + offsets[task]
                + [0.0, 0.0, get_skill(task).start_lift_m])

    skills = {n: {"predicate": n, "binding": None} for n in ("drawer-close-v3", "handle-press-v3", "reach-v3", "move-to")}
    steps = load_sequence_file(CONFIG / "workbench.yaml", skills, no_language).steps
    learned = [s for s in steps if s.skill != "move-to"]
    assert len(learned) >= 3 and len({s.skill for s in learned}) == len(learned)
    assert {s.skill for s in learned} == set(offsets)
    np.testing.assert_allclose(scene.hand_start, start(learned[0].skill), atol=1e-6)
    for k, step in enumerate(steps):
        if step.skill != "move-to":
            np.testing.assert_allclose(step.binding.task_offset, offsets[step.skill], atol=1e-12)
            if k > 0:
                assert steps[k - 1].skill == "move-to"
                np.testing.assert_allclose(steps[k - 1].binding.goal, start(step.skill), atol=1e-6)
    # the first move-to goes 20 cm in front of the handle-press start (via), clear of the lever
    np.testing.assert_allclose(steps[1].binding.goal, start("handle-press-v3") + [0.0, -0.2, 0.0], atol=1e-6)
    # every learned skill starts with the gripper already turned to its finger yaw (set by a move-to before it;
    # the hand starts with the first skill's)
    yaw = finger_yaw_deg(learned[0].skill)
    for step in steps:
        if step.skill == "move-to":
            yaw = step.binding.finger_yaw_deg if step.binding.finger_yaw_deg is not None else yaw
        else:
            assert yaw == finger_yaw_deg(step.skill) == step.binding.finger_yaw_deg, step
    assert any(finger_yaw_deg(s.skill) != 0.0 for s in learned)   # the turn is exercised
