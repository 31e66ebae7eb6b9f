"""Skills and scenes as data: config/skills.yaml and config/scenes/*.yaml (legion_policy.skills), the one binding
type (legion_policy.binding) and the one observation packing that real2sim and the sim cell share."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from legion_policy.binding import Binding
from legion_policy.observation_layout import METAWORLD39, ObservationBuilder
from legion_policy.paths import config_path
from legion_policy.skills import (DataError, load_scene, load_scenes, load_skills, parse_scene, parse_skills,
                                  tracked_names)
from legion_policy.success import PREDICATES

SKILLS_DOC = yaml.safe_load(config_path("skills.yaml").read_text())


def test_each_skills_success_is_metaworlds_predicate_bit_for_bit():
    """The data names a distance kind and a threshold; the predicate it builds is success.py's row of the task
    (Metaworld's evaluate_state): same fields, threshold, comparison and the same distances bit for bit."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, size=(256, METAWORLD39.size))
    skills = load_skills()
    assert len(skills) >= 11
    for name, skill in skills.items():
        ref = PREDICATES[skill.task]
        assert (skill.success.threshold, skill.success.strict, skill.success.fields) == \
            (ref.threshold, ref.strict, ref.fields), name
        assert np.array_equal(skill.success.distance(obs, METAWORLD39), ref.distance(obs, METAWORLD39)), name
        assert np.array_equal(skill.success(obs, METAWORLD39), ref(obs, METAWORLD39)), name


def test_the_data_gives_what_the_tables_gave():
    skills = load_skills()
    assert {n: s.quat_order for n, s in skills.items() if s.quat_order != "xyzw"} == {
        "drawer-open-v3": "wxyz", "button-press-topdown-v3": "wxyz", "drawer-close-v3": "zero",
        "window-open-v3": "zero", "window-close-v3": "zero", "handle-press-v3": "zero"}
    assert {n: s.finger_yaw_deg for n, s in skills.items() if s.finger_yaw_deg} == {"handle-press-v3": 90.0}
    assert {n: s.start_lift_m for n, s in skills.items() if s.start_lift_m} == {"handle-press-v3": 0.04}
    assert skills["button-press-topdown-v3"].object.offset == (0.0, 0.0, 0.193)
    bench = load_scene("workbench")
    assert bench.hand_start == (-0.26, 0.6, 0.2)            # the drawer skill's training start + its offset
    np.testing.assert_allclose(bench.start("handle"), [0.22, 0.8, 0.24], atol=1e-12)
    assert bench.binding("handle") == Binding(skill="handle-press-v3", objects=("handle",), goal_object="handle_goal",
                                              quat_order="zero", task_offset=(0.22, 0.2, 0.0), finger_yaw_deg=90.0)
    # the tabletop's reach brings no puck: its observation shows push's
    assert load_scene("tabletop").binding("reach").objects == ("puck",)
    assert tracked_names()[:2] == ("object", "goal")
    assert set(tracked_names()) == {"object", "goal", *load_scene("tabletop").tracked, *bench.tracked}


def _bad_skill(**change):
    doc = json.loads(json.dumps(SKILLS_DOC))
    doc["skills"][1].update(change)
    return doc


@pytest.mark.parametrize("change, message", [
    ({"quat_order": "zyx"}, r"skills\.yaml: skills\[1\] \(push-v3\)\.quat_order: must be one of"),
    ({"success": {"kind": "nearby", "threshold": 0.05}}, r"skills\[1\] \(push-v3\)\.success\.kind: unknown success kind 'nearby'"),
    ({"success": {"kind": "axes", "threshold": 0.05, "axis": 1}}, r"\.success\.kind: success kind 'axes': bad parameters \['axis'\]"),
    ({"success": {"kind": "reach"}}, r"\.success\.threshold: must be a number"),
    ({"finger_yaw_deg": 120}, r"\(push-v3\)\.finger_yaw_deg: must be a number in \[-90, 90\]"),
    ({"hand_start": [0.0, 0.6]}, r"\(push-v3\)\.hand_start: must be 3 finite numbers"),
    ({"object": {"pos": ["joint", "obj"], "rot": ["geom", "objGeom"]}}, r"\(push-v3\)\.object\.pos: must be \[kind, name\]"),
    ({"instructions": []}, r"\(push-v3\)\.instructions: must be a non-empty list"),
    ({"name": "reach-v3"}, r"skills\[1\] \(reach-v3\)\.name: duplicate skill 'reach-v3'"),
    ({"colour": "red"}, r"skills\[1\] \(push-v3\): unknown keys \['colour'\]"),
])
def test_a_bad_skill_entry_is_one_line_naming_file_and_key(change, message):
    with pytest.raises(DataError, match=message) as err:
        parse_skills(_bad_skill(**change), "config/skills.yaml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["placements"][1].update(skill="fly-v3"), r"workbench\.yaml: placements\[1\] \(handle\)\.skill: unknown skill 'fly-v3'"),
    (lambda d: d["placements"][2].update(goal="drawer_goal"), r"placements\[2\] \(reach\)\.goal: tracked name 'drawer_goal' is used twice"),
    (lambda d: d["placements"][2].update(prefix=""), r"placements\[2\] \(reach\)\.prefix: an attached placement needs"),
    (lambda d: d["placements"][0].update(offset=[0.0, 2.0, 0.0]), r"placements\[0\] \(drawer\)\.offset: must be 3 finite numbers within \+-1"),
    (lambda d: d["placements"][0].update(observe=["shelf"]), r"placements\[0\] \(drawer\)\.observe: must be at most 2 tracked names"),
    (lambda d: d.update(base="handle"), r"scene\.base: the base placement 'handle' is the scene's XML"),
    (lambda d: d.update(hand_start="shelf"), r"scene\.hand_start: must be \[x, y, z\] or a placement name"),
    (lambda d: d.update(name="push-v3"), r"scene\.name: 'push-v3' differs from the file name"),
])
def test_a_bad_scene_is_one_line_naming_file_and_key(change, message):
    doc = yaml.safe_load(config_path("scenes", "workbench.yaml").read_text())
    change(doc)
    with pytest.raises(DataError, match=message) as err:
        parse_scene(doc, "config/scenes/workbench.yaml", load_skills(), "workbench")
    assert "\n" not in str(err.value)


def test_data_is_read_from_the_share_dir_it_is_pointed_at(tmp_path, monkeypatch):
    """LEGION_SHARE_DIR selects another config/: a skill and a scene added there exist, the shipped ones do not
    change (the graph test of test_end_to_end.py runs a sequence on such a copy)."""
    from legion_policy import paths

    shutil.copytree(config_path(), tmp_path / "config")
    doc = yaml.safe_load((tmp_path / "config" / "skills.yaml").read_text())
    doc["skills"].append({**doc["skills"][0], "name": "reach-alias", "network": "reach-v3",
                          "instructions": ["touch the blue marker"]})
    (tmp_path / "config" / "skills.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "config" / "scenes" / "corner.yaml").write_text(yaml.safe_dump(
        {"base": "target", "hand_start": "target",
         "placements": [{"name": "target", "skill": "reach-alias", "offset": [0.1, -0.1, 0.0],
                         "object": "puck", "goal": "target_goal"}]}))
    monkeypatch.setenv("LEGION_SHARE_DIR", str(tmp_path))
    paths.share_dir.cache_clear()
    try:
        assert load_skills()["reach-alias"].network == "reach-v3"
        corner = load_scenes()["corner"]
        np.testing.assert_allclose(corner.hand_start, [0.1, 0.5, 0.2], atol=1e-12)
        assert "target_goal" in tracked_names()
    finally:
        monkeypatch.delenv("LEGION_SHARE_DIR")
        paths.share_dir.cache_clear()
    assert "reach-alias" not in load_skills() and "corner" not in load_scenes()


def test_binding_wire_format_round_trips_and_refuses_with_the_key():
    wire = {"skill": "handle-press-v3", "objects": ["handle"], "goal": None, "goal_object": "handle_goal",
            "quat_order": "zero", "task_offset": [0.22, 0.2, 0.0], "finger_yaw_deg": 90.0}
    b = Binding.parse(json.dumps(wire))
    assert b.to_dict() == wire and json.loads(b.to_json()) == wire and Binding.parse(b) is b
    bare = Binding.parse({"objects": ["object"], "goal_object": "goal"})
    assert bare.to_dict() == {"objects": ["object"], "goal": None, "goal_object": "goal", "quat_order": "xyzw"}
    assert bare.merged({"goal": [0.1, 0.5, 0.2]}).goal_object is None
    for bad, message in (({"objects": "puck"}, "'objects' must be a list"), ({"goal": [0, 1]}, "'goal' must be"),
                         ({"goal": [0, 0, 0], "goal_object": "g"}, "not both"), ({"task_offset": [2, 0, 0]}, "'task_offset'"),
                         ({"finger_yaw_deg": True}, "'finger_yaw_deg'"), ({"colour": 1}, "unknown keys")):
        with pytest.raises(ValueError, match=message):
            Binding.parse(bad)


def test_cell_and_real2sim_pack_one_binding_alike():
    """Binding.frame is the one packing: the cell's ground truth (offset not applied, no clipping) and real2sim's
    (offset subtracted) of the same poses differ exactly by the task offset in every position."""
    rng = np.random.default_rng(1)
    poses = {"handle": (rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 4)), "handle_goal": (rng.uniform(-1, 1, 3), np.zeros(4))}
    b = Binding(skill="x", objects=("handle",), goal_object="handle_goal", quat_order="wxyz", task_offset=(0.2, 0.1, 0.0))
    hand = rng.uniform(-1, 1, 3)
    truth = ObservationBuilder(METAWORLD39, clip=False).build(*b.with_(task_offset=None).frame(hand, 0.5, poses.get))
    seen = ObservationBuilder(METAWORLD39, clip=False).build(*b.frame(hand, 0.5, poses.get))
    for name in ("hand_pos", "object1_pos", "goal_pos", "prev_hand_pos"):
        np.testing.assert_allclose(METAWORLD39.get(truth, name) - METAWORLD39.get(seen, name), [0.2, 0.1, 0.0], atol=1e-12)
    q = poses["handle"][1]
    assert np.array_equal(METAWORLD39.get(truth, "object1_quat"), [q[3], q[0], q[1], q[2]])


def test_new_data_folders_are_installed(monkeypatch):
    """setup.py's data_files (its tree() of config/, run here without setup()) install config/skills.yaml and
    every scene file into share/legion_bridge/config/."""
    import ast
    import glob
    import os

    root = Path(__file__).resolve().parent.parent
    module = ast.parse((root / "setup.py").read_text())
    tree_def = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "tree")
    ns = {"os": os, "glob": glob.glob, "PACKAGE": "legion_bridge"}
    exec(compile(ast.Module([tree_def], []), "setup.py", "exec"), ns)
    monkeypatch.chdir(root)
    installed = {os.path.join(dest, os.path.basename(f)) for dest, files in ns["tree"]("config") for f in files}
    assert "share/legion_bridge/config/skills.yaml" in installed
    scenes = {f"share/legion_bridge/config/scenes/{p.name}" for p in (root / "config" / "scenes").glob("*.yaml")}
    assert scenes and scenes <= installed


def test_bad_data_refuses_the_nodes_start_with_one_line(tmp_path):
    """A node started on bad data (here sim_arm, which reads the scenes at import, and the sequencer) exits 2 with
    one line naming the file and the key, no traceback."""
    import os
    import subprocess
    import sys

    shutil.copytree(config_path(), tmp_path / "config")
    for folder in ("urdf", "agents"):
        (tmp_path / folder).symlink_to(config_path().parent / folder)
    bad = tmp_path / "config" / "scenes" / "workbench.yaml"
    bad.write_text(bad.read_text().replace("skill: handle-press-v3", "skill: handle-pull-v9"))
    env = {**os.environ, "LEGION_SHARE_DIR": str(tmp_path)}
    bindir = Path(sys.executable).parent
    for cmd in ([str(bindir / "legion_sim_arm")],
                [str(bindir / "legion_sequencer"), "--ros-args", "-p", "sequence_file:=workbench.yaml"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2, (cmd, proc.stderr[-2000:])
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"{bad}: placements[1] (handle).skill: unknown skill 'handle-pull-v9'" in lines[0], lines[0]
