"""Skills and scenes as data (ROS-free): ``config/skills.yaml`` and ``config/scenes/<scene>.yaml``.

One entry per skill in ``config/skills.yaml`` (:class:`SkillDef`)::

    - name: handle-press-v3           # the skill name (/legion/task, sequences, agent manifests)
      task: handle-press-v3           # its Metaworld v3 task (XML, placement, reward; default: name)
      network: handle-press-v3        # the agent skill whose network and embedding run it (default: name)
      instructions: [press the handle down]        # the first is the default instruction
      quat_order: zero                # order of object 1's quaternion in the task's observation
      object: {pos: [site, handleStart], rot: [site, handleStart], offset: [0, 0, 0]}  # how the cell reads object 1
      success: {kind: object_z_to_goal_z, threshold: 0.02}   # legion_policy.success.PREDICATE_KINDS + parameters
      finger_yaw_deg: 90              # the gripper's finger yaw the skill runs with (0: fingers along sim x)
      start_lift_m: 0.04              # the hand starts this much above Metaworld's start
      hand_start: [0.0, 0.6, 0.2]     # Metaworld's hand start of the task (the skill's training start)

One file per multi-object scene in ``config/scenes/`` (:class:`SceneDef`): ``base`` (the placement whose task XML
holds table, walls and its objects, unprefixed), ``hand_start`` ([x, y, z], or a placement name: that placement's
skill start), ``placements`` (:class:`Placement`: ``name``, ``skill``, ``offset``, ``object`` (the tracked name of
the object 1 the placement brings, read with its skill's ``object``; null: none), ``observe`` (tracked names filling
the observation's object slots; default ``[object]``), ``goal`` (its goal marker's tracked name), ``attach``/``prefix``
(the top-level body of the skill's XML attached under that prefix), ``goal_rgba``).

From these the sequencer derives a step's binding (:meth:`SceneDef.binding`) and the start of a skill at a placement
(:meth:`SkillDef.start`: training hand start + placement offset + start lift), the cell builds its scenes, real2sim
subscribes to :func:`tracked_names`, the trainer takes finger yaw and instructions. Files are read from the share dir
(:func:`legion_policy.paths.config_path`; ``LEGION_SHARE_DIR`` selects another); a bad entry raises
:class:`DataError`, one line naming the file and the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from legion_policy.binding import MAX_FINGER_YAW_DEG, MAX_TASK_OFFSET_M, Binding
from legion_policy.observation_layout import QUAT_ORDERS
from legion_policy.paths import config_path
from legion_policy.success import SuccessPredicate, predicate_from_spec

#: The skills file and the scenes folder under config/.
SKILLS_FILE = "skills.yaml"
SCENES_DIR = "scenes"
#: Names of the tracked object and goal in the single-task scenes of the sim cell.
SINGLE_TASK_OBJECT = "object"
SINGLE_TASK_GOAL = "goal"
#: Where a cell reads a position or orientation: a body frame (data.xpos: Metaworld's get_body_com), a geom, a site.
FRAME_KINDS = ("body", "geom", "site")
#: Goal marker colour when a placement names none.
DEFAULT_GOAL_RGBA = (0.0, 0.8, 0.0, 1.0)

SKILL_KEYS = {"name", "task", "network", "instructions", "quat_order", "object", "success", "finger_yaw_deg",
              "start_lift_m", "hand_start"}
SCENE_KEYS = {"name", "description", "base", "hand_start", "placements"}
PLACEMENT_KEYS = {"name", "skill", "offset", "object", "observe", "goal", "attach", "prefix", "goal_rgba"}


class DataError(ValueError):
    """A skill or scene file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ObjectRef:
    """How a tracked object's pose is read from MuJoCo, as the Metaworld env computes obs[4:11].

    ``pos_kind``: ``"body"`` (data.xpos: the body frame, which is what Metaworld's ``get_body_com`` returns),
    ``"geom"`` (data.geom_xpos) or ``"site"`` (data.site_xpos) of ``pos_name``, plus ``offset`` (world frame,
    metres). Orientation: ``rot_kind``/``rot_name``.
    """

    pos_kind: str
    pos_name: str
    rot_kind: str
    rot_name: str
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def prefixed(self, prefix: str) -> "ObjectRef":
        return ObjectRef(self.pos_kind, prefix + self.pos_name, self.rot_kind, prefix + self.rot_name, self.offset)


@dataclass(frozen=True)
class SkillDef:
    """One skill's data (config/skills.yaml)."""

    name: str
    task: str
    network: str
    instructions: tuple[str, ...]
    quat_order: str
    object: ObjectRef | None
    success: SuccessPredicate
    finger_yaw_deg: float = 0.0
    start_lift_m: float = 0.0
    hand_start: tuple[float, float, float] | None = None

    @property
    def instruction(self) -> str:
        """The default instruction."""
        return self.instructions[0]

    def start(self, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
        """Where the hand starts this skill at a placement shifted by ``offset``: its training hand start +
        ``offset`` + its start lift (sim frame, m). ValueError when the spec has no ``hand_start``."""
        if self.hand_start is None:
            raise ValueError(f"skill {self.name!r} has no hand_start in {SKILLS_FILE}: its start cannot be derived")
        return np.asarray(self.hand_start, dtype=np.float64) + np.asarray(offset, dtype=np.float64) \
            + np.array([0.0, 0.0, self.start_lift_m])

    def default_binding(self) -> Binding:
        """Its binding in its single-task scene (object ``object``, goal ``goal``), without the skill name."""
        return Binding(objects=(SINGLE_TASK_OBJECT,), goal_object=SINGLE_TASK_GOAL, quat_order=self.quat_order,
                       finger_yaw_deg=self.finger_yaw_deg)


@dataclass(frozen=True)
class Placement:
    """One skill's task instance in a multi-object scene: its objects and goal, shifted by ``offset``."""

    name: str
    skill: str
    offset: tuple[float, float, float]
    object: str | None
    observe: tuple[str, ...]
    goal: str
    attach: str | None = None
    prefix: str = ""
    goal_rgba: tuple[float, float, float, float] = DEFAULT_GOAL_RGBA


@dataclass(frozen=True)
class SceneDef:
    """A multi-object scene (config/scenes/<name>.yaml); placement k draws from a Metaworld env seeded seed + k."""

    name: str
    base: str
    placements: tuple[Placement, ...]
    hand_start: tuple[float, float, float]
    source: str = ""
    description: str = ""
    skills: Mapping[str, SkillDef] = field(default_factory=dict, repr=False, compare=False)

    def placement(self, name: str) -> Placement:
        for p in self.placements:
            if p.name == name:
                return p
        raise KeyError(f"scene {self.name!r} has no placement {name!r} (placements: "
                       f"{', '.join(p.name for p in self.placements)})")

    @property
    def base_placement(self) -> Placement:
        return self.placement(self.base)

    @property
    def tracked(self) -> tuple[str, ...]:
        """Tracked names of the scene: every placement's object, then every goal."""
        return tuple(p.object for p in self.placements if p.object) + tuple(p.goal for p in self.placements)

    def binding(self, placement: str, skill: SkillDef | None = None, extra_offset=None) -> Binding:
        """The binding of ``skill`` (default: the placement's own) run at ``placement``: the placement's observed
        objects and goal, its offset (+ ``extra_offset``) as ``task_offset``, the skill's quaternion order and
        finger yaw."""
        p = self.placement(placement)
        skill = skill or self.skills[p.skill]
        offset = np.asarray(p.offset, dtype=np.float64)
        if extra_offset is not None:
            offset = offset + np.asarray(extra_offset, dtype=np.float64)
        return Binding(skill=skill.name, objects=p.observe, goal_object=p.goal, quat_order=skill.quat_order,
                       task_offset=tuple(round(float(v), 9) for v in offset), finger_yaw_deg=skill.finger_yaw_deg)

    def start(self, placement: str, skill: SkillDef | None = None) -> np.ndarray:
        """Where ``skill`` (default: the placement's own) starts at ``placement`` (:meth:`SkillDef.start`)."""
        p = self.placement(placement)
        return (skill or self.skills[p.skill]).start(p.offset)


# --- reading and validating --------------------------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    import yaml  # noqa: PLC0415

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


class _Checker:
    """Typed reads of one entry, each failure one line: ``<file>: <where>.<key>: <problem>``."""

    def __init__(self, source: str, where: str, entry: Any, allowed: set[str]):
        self.source, self.where = source, where
        if not isinstance(entry, Mapping):
            self.fail("", f"expected a mapping, got {entry!r}")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            self.fail("", f"unknown keys {unknown} (allowed: {sorted(allowed)})")
        self.entry = entry

    def fail(self, key: str, problem: str):
        raise DataError(f"{self.source}: {self.where}{'.' + key if key else ''}: {problem}")

    def name(self, key: str, required: bool = True, default: str | None = None) -> str | None:
        v = self.entry.get(key, default)
        if v is None and not required:
            return None
        if not isinstance(v, str) or not v.strip() or v != v.strip():
            self.fail(key, f"must be a non-empty name, got {v!r}")
        return v

    def number(self, key: str, default: float, low: float = -math.inf, high: float = math.inf) -> float:
        v = self.entry.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            self.fail(key, f"must be a number in [{low:g}, {high:g}], got {v!r}")
        return float(v)

    def vector(self, key: str, n: int, default=None, bound: float = math.inf, low: float = -math.inf):
        v = self.entry.get(key, default)
        if v is None:
            return None
        ok = isinstance(v, (list, tuple)) and len(v) == n and all(
            not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) and low <= x <= bound
            and abs(x) <= bound for x in v)
        if not ok:
            self.fail(key, f"must be {n} finite numbers" + (f" within +-{bound:g}" if math.isfinite(bound) else "")
                      + f", got {v!r}")
        return tuple(float(x) for x in v)


def _object_ref(c: _Checker, key: str) -> ObjectRef | None:
    v = c.entry.get(key)
    if v is None:
        return None
    sub = _Checker(c.source, f"{c.where}.{key}", v, {"pos", "rot", "offset"})
    parts = {}
    for k in ("pos", "rot"):
        ref = v.get(k)
        if not (isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[0] in FRAME_KINDS
                and isinstance(ref[1], str) and ref[1]):
            sub.fail(k, f"must be [kind, name] with kind one of {list(FRAME_KINDS)}, got {ref!r}")
        parts[k] = ref
    offset = sub.vector("offset", 3, (0.0, 0.0, 0.0), bound=MAX_TASK_OFFSET_M)
    return ObjectRef(parts["pos"][0], parts["pos"][1], parts["rot"][0], parts["rot"][1], offset)


def _success(c: _Checker, name: str) -> SuccessPredicate:
    v = c.entry.get("success")
    if not isinstance(v, Mapping):
        c.fail("success", f"must be a mapping with kind and threshold, got {v!r}")
    params = dict(v)
    kind, threshold = params.pop("kind", None), params.pop("threshold", None)
    strict, description = params.pop("strict", False), params.pop("description", "")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        c.fail("success.threshold", f"must be a number [m], got {threshold!r}")
    if not isinstance(strict, bool):
        c.fail("success.strict", f"must be true or false, got {strict!r}")
    try:
        return predicate_from_spec(name, str(kind), threshold, strict, str(description), **params)
    except ValueError as exc:
        c.fail("success.kind", str(exc))


def parse_skills(doc: Any, source: str) -> dict[str, SkillDef]:
    """The skills of a parsed skills file (``skills:`` list); DataError naming the file and key."""
    if not isinstance(doc, Mapping) or set(doc) - {"skills"} or not isinstance(doc.get("skills"), list) \
            or not doc["skills"]:
        raise DataError(f"{source}: expected a mapping with one key 'skills': a non-empty list of skill entries")
    out: dict[str, SkillDef] = {}
    for i, entry in enumerate(doc["skills"]):
        label = entry.get("name") if isinstance(entry, Mapping) else None
        c = _Checker(source, f"skills[{i}]" + (f" ({label})" if isinstance(label, str) else ""), entry, SKILL_KEYS)
        name = c.name("name")
        if name in out:
            c.fail("name", f"duplicate skill {name!r}")
        instructions = entry.get("instructions")
        if (not isinstance(instructions, list) or not instructions
                or not all(isinstance(t, str) and t.strip() for t in instructions)):
            c.fail("instructions", f"must be a non-empty list of texts, got {instructions!r}")
        order = entry.get("quat_order")
        if order not in QUAT_ORDERS:
            c.fail("quat_order", f"must be one of {list(QUAT_ORDERS)}, got {order!r}")
        out[name] = SkillDef(
            name=name, task=c.name("task", default=name), network=c.name("network", default=name),
            instructions=tuple(t.strip() for t in instructions), quat_order=order, object=_object_ref(c, "object"),
            success=_success(c, name),
            finger_yaw_deg=c.number("finger_yaw_deg", 0.0, -MAX_FINGER_YAW_DEG, MAX_FINGER_YAW_DEG),
            start_lift_m=c.number("start_lift_m", 0.0, 0.0, 0.2),
            hand_start=c.vector("hand_start", 3, bound=2.0))
    return out


def parse_scene(doc: Any, source: str, skills: Mapping[str, SkillDef], name: str | None = None) -> SceneDef:
    """A scene from a parsed scene file; DataError naming the file and key. ``name``: the file's stem."""
    c = _Checker(source, "scene", doc, SCENE_KEYS)
    scene_name = c.name("name", default=name)
    if name is not None and scene_name != name:
        c.fail("name", f"{scene_name!r} differs from the file name {name!r}")
    if scene_name in {s.task for s in skills.values()}:
        c.fail("name", f"{scene_name!r} is a task's single-task scene name")
    raw = doc.get("placements")
    if not isinstance(raw, list) or not raw:
        c.fail("placements", "must be a non-empty list")
    placements: list[Placement] = []
    tracked: set[str] = set()
    for i, entry in enumerate(raw):
        label = entry.get("name") if isinstance(entry, Mapping) else None
        pc = _Checker(source, f"placements[{i}]" + (f" ({label})" if isinstance(label, str) else ""), entry,
                      PLACEMENT_KEYS)
        pname = pc.name("name")
        if any(p.name == pname for p in placements):
            pc.fail("name", f"duplicate placement {pname!r}")
        skill = pc.name("skill")
        if skill not in skills:
            pc.fail("skill", f"unknown skill {skill!r} (skills of {SKILLS_FILE}: {', '.join(skills)})")
        obj = pc.name("object", required=False)
        if obj is not None and skills[skill].object is None:
            pc.fail("object", f"skill {skill!r} says nothing of how its object is read ('object' in {SKILLS_FILE})")
        goal = pc.name("goal")
        for n, key in ((obj, "object"), (goal, "goal")):
            if n is not None and n in tracked:
                pc.fail(key, f"tracked name {n!r} is used twice in the scene")
            if n is not None:
                tracked.add(n)
        attach = pc.name("attach", required=False)
        prefix = entry.get("prefix", "")
        if not isinstance(prefix, str) or (attach is not None and not prefix):
            pc.fail("prefix", f"an attached placement needs a non-empty prefix, got {prefix!r}")
        rgba = pc.vector("goal_rgba", 4, DEFAULT_GOAL_RGBA, bound=1.0, low=0.0)
        placements.append(Placement(pname, skill, pc.vector("offset", 3, (0.0, 0.0, 0.0), bound=MAX_TASK_OFFSET_M),
                                    obj, (), goal, attach, prefix, rgba))
    for i, (p, entry) in enumerate(zip(list(placements), raw)):
        observe = entry.get("observe", [p.object] if p.object else [])
        if (not isinstance(observe, list) or len(observe) > 2
                or not all(isinstance(n, str) and n in tracked for n in observe)):
            raise DataError(f"{source}: placements[{i}] ({p.name}).observe: must be at most 2 tracked names of the "
                            f"scene ({', '.join(sorted(tracked))}), got {observe!r}")
        placements[i] = Placement(p.name, p.skill, p.offset, p.object, tuple(observe), p.goal, p.attach, p.prefix,
                                  p.goal_rgba)
    base = c.name("base")
    by_name = {p.name: p for p in placements}
    if base not in by_name:
        c.fail("base", f"must be a placement name ({', '.join(by_name)}), got {base!r}")
    if by_name[base].attach is not None:
        c.fail("base", f"the base placement {base!r} is the scene's XML and cannot be attached")
    hs = doc.get("hand_start")
    if isinstance(hs, str):
        if hs not in by_name:
            c.fail("hand_start", f"must be [x, y, z] or a placement name ({', '.join(by_name)}), got {hs!r}")
        try:
            hand_start = tuple(float(v) for v in skills[by_name[hs].skill].start(by_name[hs].offset))
        except ValueError as exc:
            c.fail("hand_start", str(exc))
    else:
        hand_start = c.vector("hand_start", 3, bound=2.0)
        if hand_start is None:
            c.fail("hand_start", "must be [x, y, z] or a placement name")
    return SceneDef(scene_name, base, tuple(placements), hand_start, source, str(doc.get("description", "")),
                    dict(skills))


@lru_cache(maxsize=8)
def _skills_at(path: str) -> dict[str, SkillDef]:
    return parse_skills(_read_yaml(Path(path)), path)


def load_skills(path: str | Path | None = None) -> dict[str, SkillDef]:
    """The skills of ``path`` (default: the share dir's config/skills.yaml), by name, in file order."""
    return dict(_skills_at(str(path if path is not None else config_path(SKILLS_FILE))))


def get_skill(name: str) -> SkillDef | None:
    """The shipped data's skill ``name`` (None when the skills file has no such entry)."""
    return load_skills().get(name)


def skill_for_task(task: str) -> SkillDef | None:
    """The skill named ``task``, else the first skill whose Metaworld task is ``task`` (None: none)."""
    skills = load_skills()
    return skills.get(task) or next((s for s in skills.values() if s.task == task), None)


def scene_names() -> tuple[str, ...]:
    """Names of the scene files under the share dir's config/scenes/ (sorted)."""
    folder = config_path(SCENES_DIR)
    return tuple(sorted(p.stem for p in folder.glob("*.yaml"))) if folder.is_dir() else ()


@lru_cache(maxsize=16)
def _scene_at(path: str, skills_path: str) -> SceneDef:
    return parse_scene(_read_yaml(Path(path)), path, _skills_at(skills_path), Path(path).stem)


def load_scene(name: str) -> SceneDef:
    """The scene ``name`` (config/scenes/<name>.yaml, or a path to a scene file); DataError if missing or bad."""
    p = Path(name)
    path = p if p.suffix in (".yaml", ".yml") else config_path(SCENES_DIR, f"{name}.yaml")
    if not path.is_file():
        raise DataError(f"{path}: no such scene file (scenes: {', '.join(scene_names()) or 'none'})")
    return _scene_at(str(path), str(config_path(SKILLS_FILE)))


def load_scenes() -> dict[str, SceneDef]:
    """Every scene of config/scenes/, by name."""
    return {n: load_scene(n) for n in scene_names()}


def tracked_names() -> tuple[str, ...]:
    """Every tracked name of the data: the single-task scenes' ``object`` and ``goal``, then each scene's."""
    out = [SINGLE_TASK_OBJECT, SINGLE_TASK_GOAL]
    for scene in load_scenes().values():
        out += [n for n in scene.tracked if n not in out]
    return tuple(out)
