"""The long-horizon sequencer core (ROS-free): steps, success counting, timeouts, the run report.

A sequence file (YAML)::

    name: workbench-tidy
    scene: workbench            # the scene it runs in: config/scenes/<scene>.yaml (the sim cell builds it too)
    k_consecutive: 3            # default per step: successes in a row needed to advance
    timeout_s: 30.0             # default per step [s]
    settle_s: 0.2               # default per step: observations this soon after a switch are ignored
    steps:
      - skill: drawer-close-v3                   # a skill name of the agent (or of config/skills.yaml), or
        placement: drawer                        # where in the scene it runs
      - skill: move-to                           # the policy's scripted move-to: to the next step's start,
        via: [0.0, -0.2, 0.0]                    # here 20 cm in front of it
        timeout_s: 10
      - skill: move-to                           # ... then the start itself
      - instruction: press the handle down       # a free-form instruction (matched to a skill)
        placement: handle
      - skill: reach-v3
        placement: push                          # a skill on another skill's placement,
        shift: [0.0, 0.0, -0.035]                # its offset shifted (where this skill learned its goals)

A step's binding is derived from the scene and the skill data (:mod:`legion_policy.skills`): ``placement`` gives
the observed objects, the goal and the ``task_offset`` (the placement's offset, + ``shift``), the skill its
quaternion order and finger yaw. A ``move-to`` without a target goes to where the next learned step's skill starts
at its placement (its training hand start + the placement's offset + its start lift, + ``via``) and turns the
fingers to that skill's yaw. A ``binding`` mapping (the ``/legion/binding`` keys) may still be given: on top of the
derived one, or alone where no scene file describes the cell (a real arm's objects).

:class:`SequenceRunner` is fed observations with their time; it advances when the
step's success predicate (the skill's, from the agent manifest) holds for
``k_consecutive`` observations in a row, fails the run on a step timeout (or an
explicit :meth:`SequenceRunner.abort`), and produces progress and the report.
What to publish (task, binding, enable) is returned as :class:`Command` values: the
node shell publishes them.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from legion_policy.binding import Binding
from legion_policy.observation_layout import ObservationLayout
from legion_policy.skills import DataError, SceneDef, SkillDef, get_skill, load_scene, load_skills, scene_names
from legion_policy.success import SuccessPredicate, get_predicate
from legion_policy.tasks import MOVE_TO, MOVE_TO_BINDING, default_binding, finger_yaw_deg

#: Defaults when neither the step nor the sequence says otherwise.
DEFAULT_K_CONSECUTIVE = 3
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_SETTLE_S = 0.2
#: The task string that makes the policy idle (zero action), see legion_policy.policy.IDLE_TASKS.
STOP_TASK = "stop"

STEP_KEYS = {"name", "skill", "instruction", "placement", "shift", "via", "binding", "timeout_s", "k_consecutive",
             "settle_s"}
SEQUENCE_KEYS = {"name", "description", "scene", "steps", "k_consecutive", "timeout_s", "settle_s"}


class SequenceError(ValueError):
    """A sequence file or task cannot be run with this agent; the message names the step."""


@dataclass(frozen=True)
class Step:
    """One resolved step: what to publish and how to judge it."""

    name: str
    task: str                 # published on /legion/task as written (skill name or instruction)
    skill: str                # the agent skill it resolves to
    predicate: SuccessPredicate
    binding: Binding          # /legion/binding payload (with "skill")
    timeout_s: float
    k_consecutive: int
    settle_s: float
    similarity: float = 1.0   # instruction -> skill match score (1 for a name)


@dataclass(frozen=True)
class Sequence_:
    name: str
    steps: tuple[Step, ...]
    source: str = ""


@dataclass(frozen=True)
class Command:
    """What the node must publish now. ``task``/``binding``: None = unchanged; ``enable``: None = unchanged."""

    task: str | None = None
    binding: Binding | None = None
    enable: bool | None = None
    finished: bool = False


# --- building sequences ------------------------------------------------------------------------------


#: skill name -> {"predicate": task name, SuccessPredicate or None, "binding": Binding, mapping or None}
SkillInfo = Mapping[str, Mapping[str, Any]]
Matcher = Callable[[str], tuple[str, float]]  # instruction -> (skill, similarity) or raise ValueError


def _num(v: Any, what: str, low: float, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v) or v < low:
        raise SequenceError(f"{what} must be a {'whole ' if integer else ''}number >= {low}, got {v!r}")
    return int(v) if integer else float(v)


def _xyz(v: Any, what: str) -> tuple[float, float, float]:
    try:
        xyz = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        xyz = ()
    if len(xyz) != 3 or isinstance(v, str) or not all(np.isfinite(xyz)):
        raise SequenceError(f"{what} must be [dx, dy, dz] in metres, got {v!r}")
    return xyz  # type: ignore[return-value]


def step_binding(skill: str, skills: SkillInfo, override: Mapping | None = None, where: str = "binding",
                 base: Binding | None = None) -> Binding:
    """The ``/legion/binding`` of a step running ``skill``: ``base`` (a scene's derived binding), else the skill's
    own (the agent's, else the task's default), ``override`` on top, the skill's finger yaw filled in.
    ValueError naming the problem."""
    if base is None:
        own = skills[skill].get("binding")
        base = (Binding.parse(own, where) if own else MOVE_TO_BINDING if skill == MOVE_TO else default_binding(skill))
    b = base.merged(override, where).with_(skill=skill)
    if skill != MOVE_TO and b.finger_yaw_deg is None:  # agents exported before it was recorded
        b = b.with_(finger_yaw_deg=finger_yaw_deg(skill))
    return b


def _skill_def(skill: str, where: str) -> SkillDef:
    spec = get_skill(skill)
    if spec is None:
        raise SequenceError(f"{where}: skill {skill!r} has no entry in config/skills.yaml: its binding and start "
                            f"cannot be derived (give a 'binding')")
    return spec


def _resolve_skill(entry: Any, index: int, skills: SkillInfo, match: Matcher) -> tuple[str, str, float]:
    """(task as published, skill, similarity) of one step entry; SequenceError naming the step."""
    where = f"step {index + 1}"
    if not isinstance(entry, Mapping):
        raise SequenceError(f"{where}: expected a mapping with 'skill' or 'instruction', got {entry!r}")
    unknown = sorted(set(entry) - STEP_KEYS)
    if unknown:
        raise SequenceError(f"{where}: unknown keys {unknown} (allowed: {sorted(STEP_KEYS)})")
    if ("skill" in entry) == ("instruction" in entry):
        raise SequenceError(f"{where}: give exactly one of 'skill' or 'instruction'")
    if "skill" in entry:
        skill = str(entry["skill"])
        if skill not in skills:
            raise SequenceError(f"{where}: the agent has no skill {skill!r} (skills: {', '.join(skills)})")
        return skill, skill, 1.0
    task = str(entry["instruction"]).strip()
    if not task:
        raise SequenceError(f"{where}: empty instruction")
    try:
        skill, similarity = match(task)
    except ValueError as exc:
        raise SequenceError(f"{where}: {exc}") from None
    return task, skill, float(similarity)


def _placement_binding(entry: Mapping, skill: str, scene: SceneDef | None, where: str) -> Binding:
    """The binding a step's ``placement`` (+ ``shift``) derives in ``scene``."""
    if scene is None:
        raise SequenceError(f"{where}: 'placement' needs the sequence's 'scene' (a file of config/scenes/)")
    try:
        scene.placement(str(entry["placement"]))
    except KeyError as exc:
        raise SequenceError(f"{where}: {exc.args[0]}") from None
    shift = _xyz(entry["shift"], f"{where}: shift") if "shift" in entry else None
    try:
        return scene.binding(str(entry["placement"]), _skill_def(skill, where), shift)
    except ValueError as exc:
        raise SequenceError(f"{where}: {exc}") from None


def _move_to_target(entries: list, resolved: list, index: int, scene: SceneDef | None, where: str) -> Binding:
    """A target-less move-to: the start of the next learned step's skill at its placement (+ ``via``), with that
    skill's finger yaw."""
    nxt = next((k for k in range(index + 1, len(entries)) if resolved[k][1] != MOVE_TO), None)
    if nxt is None or "placement" not in entries[nxt] or scene is None:
        raise SequenceError(f"{where}: {MOVE_TO} needs a target: binding 'goal' [x, y, z] or 'goal_object', or a "
                            f"later step with a 'placement' in the sequence's scene (whose start it goes to)")
    skill = _skill_def(resolved[nxt][1], f"step {nxt + 1}")
    try:
        start = scene.start(str(entries[nxt]["placement"]), skill)
    except (KeyError, ValueError) as exc:
        raise SequenceError(f"step {nxt + 1}: {exc.args[0]}") from None
    if "via" in entries[index]:
        start = start + np.asarray(_xyz(entries[index]["via"], f"{where}: via"))
    # to the nanometre: the sums' last-bit noise (0.6 + 0.2 = 0.8000000000000002) kept off the wire
    return MOVE_TO_BINDING.with_(goal=tuple(round(float(v), 9) for v in start), finger_yaw_deg=skill.finger_yaw_deg)


def build_step(entry: Mapping[str, Any], index: int, skills: SkillInfo, match: Matcher,
               defaults: Mapping[str, Any], scene: SceneDef | None = None,
               entries: list | None = None, resolved: list | None = None) -> Step:
    """Resolve one step entry against the agent's skills (and the sequence's scene); SequenceError naming the step.
    ``entries``/``resolved``: the whole sequence's entries and their (task, skill, similarity), which a target-less
    move-to looks ahead in."""
    where = f"step {index + 1}"
    task, skill, similarity = _resolve_skill(entry, index, skills, match)
    pred = skills[skill].get("predicate")
    try:
        predicate = pred if isinstance(pred, SuccessPredicate) else get_predicate(pred)
    except KeyError:
        raise SequenceError(f"{where}: skill {skill!r} has no success predicate, the sequencer cannot judge it") from None
    for key in ("shift", "via"):
        if key in entry and (key == "via") != (skill == MOVE_TO):
            raise SequenceError(f"{where}: '{key}' applies to {'a move-to' if key == 'via' else 'a placement'} only")
    base = None
    if "placement" in entry:
        if skill == MOVE_TO:
            raise SequenceError(f"{where}: a {MOVE_TO} has no placement (it goes to the next skill's start)")
        base = _placement_binding(entry, skill, scene, where)
    elif skill == MOVE_TO and not any((entry.get("binding") or {}).get(k) is not None for k in ("goal", "goal_object")):
        base = _move_to_target(entries or [entry], resolved or [(task, skill, similarity)], index, scene, where)
    elif "binding" not in entry and scene is not None and skill != MOVE_TO:
        raise SequenceError(f"{where}: in scene {scene.name!r} a step names its 'placement' "
                            f"({', '.join(p.name for p in scene.placements)}) or gives a 'binding'")
    try:
        binding = step_binding(skill, skills, entry.get("binding"), f"{where} binding", base)
    except ValueError as exc:
        raise SequenceError(str(exc)) from None
    if skill == MOVE_TO and binding.goal is None and binding.goal_object is None:
        raise SequenceError(f"{where}: {MOVE_TO} needs a target: binding 'goal' [x, y, z] or 'goal_object'")
    return Step(name=str(entry.get("name") or f"{index + 1}:{skill}"), task=task, skill=skill,
                predicate=predicate, binding=binding,
                timeout_s=_num(entry.get("timeout_s", defaults["timeout_s"]), f"{where}: timeout_s", 1e-3),
                k_consecutive=_num(entry.get("k_consecutive", defaults["k_consecutive"]),
                                   f"{where}: k_consecutive", 1, integer=True),
                settle_s=_num(entry.get("settle_s", defaults["settle_s"]), f"{where}: settle_s", 0.0),
                similarity=float(similarity))


def _scene_of(doc: Mapping[str, Any], scene: SceneDef | str | None) -> SceneDef | None:
    """The sequence's scene: given, else its ``scene`` key's file of config/scenes/ (None: no scene file, e.g. a
    single-task scene or a real cell's, where steps give their bindings)."""
    if isinstance(scene, SceneDef):
        return scene
    name = scene or doc.get("scene")
    placed = any(isinstance(e, Mapping) and "placement" in e for e in doc["steps"])
    if not name or (str(name) not in scene_names() and not placed):
        return None
    try:
        return load_scene(str(name))
    except DataError as exc:
        raise SequenceError(f"scene {name!r}: {exc}") from None


def build_sequence(doc: Mapping[str, Any], skills: SkillInfo, match: Matcher, *, source: str = "",
                   k_consecutive: int = DEFAULT_K_CONSECUTIVE, timeout_s: float = DEFAULT_TIMEOUT_S,
                   settle_s: float = DEFAULT_SETTLE_S, scene: SceneDef | str | None = None) -> Sequence_:
    """A sequence from a parsed YAML document (see the module docstring). ``scene``: the scene its placements
    refer to (default: the document's ``scene`` file)."""
    if not isinstance(doc, Mapping):
        raise SequenceError(f"{source or 'sequence'}: expected a mapping with 'steps'")
    unknown = sorted(set(doc) - SEQUENCE_KEYS)
    if unknown:
        raise SequenceError(f"{source or 'sequence'}: unknown keys {unknown} (allowed: {sorted(SEQUENCE_KEYS)})")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise SequenceError(f"{source or 'sequence'}: 'steps' must be a non-empty list")
    defaults = {"k_consecutive": doc.get("k_consecutive", k_consecutive),
                "timeout_s": doc.get("timeout_s", timeout_s), "settle_s": doc.get("settle_s", settle_s)}
    scene_def = _scene_of(doc, scene)
    resolved = [_resolve_skill(e, i, skills, match) for i, e in enumerate(steps)]
    return Sequence_(name=str(doc.get("name") or Path(source).stem or "sequence"),
                     steps=tuple(build_step(e, i, skills, match, defaults, scene_def, steps, resolved)
                                 for i, e in enumerate(steps)),
                     source=source)


def load_sequence_file(path: str | Path, skills: SkillInfo, match: Matcher, **defaults) -> Sequence_:
    """Read and resolve a sequence YAML file; SequenceError (file, step, problem) otherwise."""
    import yaml  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise SequenceError(f"sequence file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SequenceError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    try:
        return build_sequence(doc, skills, match, source=str(path), **defaults)
    except SequenceError as exc:
        msg = str(exc)
        raise SequenceError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def single_task_sequence(task: str, skills: SkillInfo, match: Matcher, **defaults) -> Sequence_:
    """One step running ``task`` (skill name or instruction) with the skill's own binding."""
    key = "skill" if task in skills else "instruction"
    return build_sequence({"name": f"task:{task}", "steps": [{key: task}]}, skills, match, **defaults)


# --- running -------------------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """Progress and outcome of one step (one row of the report)."""

    index: int
    name: str
    skill: str
    task: str
    status: str = "pending"        # pending | running | succeeded | timeout | aborted | not_run
    started_s: float | None = None
    ended_s: float | None = None
    observations: int = 0          # observations evaluated (after settling)
    consecutive: int = 0
    first_distance: float = float("nan")   # at the first judged observation: how far the step started
    last_distance: float = float("nan")
    best_distance: float = float("inf")

    def to_dict(self, step: Step) -> dict:
        t = (self.ended_s - self.started_s) if (self.started_s is not None and self.ended_s is not None) else None
        return {"index": self.index, "name": self.name, "skill": self.skill, "task": self.task,
                "binding": step.binding.to_dict(), "success": self.status == "succeeded", "status": self.status,
                "time_s": t, "steps": self.observations, "k_consecutive": step.k_consecutive,
                "timeout_s": step.timeout_s, "threshold": step.predicate.threshold,
                "initial_distance": None if np.isnan(self.first_distance) else self.first_distance,
                "final_distance": None if np.isnan(self.last_distance) else self.last_distance,
                "best_distance": None if not np.isfinite(self.best_distance) else self.best_distance,
                "similarity": step.similarity}


@dataclass
class SequenceRunner:
    """Drives one run of a sequence. Call :meth:`start`, then :meth:`on_observation` / :meth:`tick`."""

    sequence: Sequence_
    layout: ObservationLayout
    records: list[StepRecord] = field(init=False)
    current: int = field(init=False, default=-1)
    status: str = field(init=False, default="pending")   # pending | running | succeeded | failed
    reason: str = field(init=False, default="")
    started_s: float | None = field(init=False, default=None)
    ended_s: float | None = field(init=False, default=None)
    started_utc: str = field(init=False, default="")

    def __post_init__(self) -> None:
        for step in self.sequence.steps:
            step.predicate.check_layout(self.layout)
        self.records = [StepRecord(i, s.name, s.skill, s.task) for i, s in enumerate(self.sequence.steps)]

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    @property
    def step(self) -> Step | None:
        return self.sequence.steps[self.current] if 0 <= self.current < len(self.sequence.steps) else None

    def _enter(self, index: int, now: float) -> Command:
        self.current = index
        rec = self.records[index]
        rec.status, rec.started_s = "running", now
        step = self.sequence.steps[index]
        return Command(task=step.task, binding=step.binding)

    def start(self, now: float) -> Command:
        """Begin the first step: publish its task and binding."""
        if self.status != "pending":
            raise RuntimeError(f"sequence already {self.status}")
        self.status, self.started_s = "running", now
        self.started_utc = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return self._enter(0, now)

    def _finish(self, status: str, now: float, reason: str = "") -> Command:
        self.status, self.ended_s, self.reason = status, now, reason
        for rec in self.records:
            if rec.status == "pending":
                rec.status = "not_run"
        return Command(task=STOP_TASK, enable=False, finished=True)

    def on_observation(self, obs: np.ndarray, now: float) -> Command | None:
        """Judge one observation for the current step; a Command when the run moves on."""
        if self.status != "running":
            return None
        timeout = self.tick(now)
        if timeout is not None:
            return timeout
        step, rec = self.sequence.steps[self.current], self.records[self.current]
        if now - rec.started_s < step.settle_s:
            return None   # the observation may still carry the previous step's binding
        d = float(step.predicate.distance(obs, self.layout))
        rec.observations += 1
        if rec.observations == 1:
            rec.first_distance = d
        rec.last_distance = d
        rec.best_distance = min(rec.best_distance, d)
        rec.consecutive = rec.consecutive + 1 if d <= step.predicate.threshold else 0
        if rec.consecutive < step.k_consecutive:
            return None
        rec.status, rec.ended_s = "succeeded", now
        if self.current + 1 < len(self.sequence.steps):
            return self._enter(self.current + 1, now)
        return self._finish("succeeded", now)

    def tick(self, now: float) -> Command | None:
        """Check the current step's timeout (call periodically, also without observations)."""
        if self.status != "running":
            return None
        step, rec = self.sequence.steps[self.current], self.records[self.current]
        if now - rec.started_s >= step.timeout_s:
            rec.status, rec.ended_s = "timeout", now
            return self._finish("failed", now, f"step {self.current + 1} ({step.name}) timed out after "
                                               f"{step.timeout_s:g} s (best distance {rec.best_distance:.4g} m, "
                                               f"threshold {step.predicate.threshold:g} m)")
        return None

    def abort(self, reason: str, now: float) -> Command | None:
        """Stop the run as failed (e.g. the graph is shutting down, observations stopped)."""
        if self.finished:
            return None
        if self.status == "running":
            rec = self.records[self.current]
            rec.status, rec.ended_s = "aborted", now
        return self._finish("failed", now, reason)

    def progress(self) -> dict:
        """Where the run is: for diagnostics."""
        step = self.step
        rec = self.records[self.current] if step is not None else None
        return {"status": self.status, "step": self.current + 1, "steps_total": len(self.sequence.steps),
                "skill": step.skill if step else "", "task": step.task if step else "",
                "consecutive": rec.consecutive if rec else 0, "k_consecutive": step.k_consecutive if step else 0,
                "distance": rec.last_distance if rec else float("nan"),
                "threshold": step.predicate.threshold if step else float("nan"),
                "step_observations": rec.observations if rec else 0, "reason": self.reason}

    def report(self, **extra: Any) -> dict:
        """The run report (JSON-ready): overall result and one row per step."""
        total = (self.ended_s - self.started_s) if (self.started_s is not None and self.ended_s is not None) else None
        return {"sequence": self.sequence.name, "source": self.sequence.source,
                "success": self.status == "succeeded", "status": self.status, "reason": self.reason,
                "started_utc": self.started_utc, "total_time_s": total, "layout": self.layout.name,
                **extra,
                "steps": [rec.to_dict(step) for rec, step in zip(self.records, self.sequence.steps)]}


def format_report_table(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table (printed by the node at the end of a run)."""
    rows = [("step", "skill", "task", "result", "time [s]", "obs", "best dist [m]")]
    for st in report["steps"]:
        t = st.get("time_s")
        best = st.get("best_distance")
        rows.append((str(st["index"] + 1), st["skill"], st["task"][:40],
                     "ok" if st["success"] else st["status"].upper(),
                     "-" if t is None else f"{t:.2f}", str(st["steps"]),
                     "-" if best is None else f"{best:.4f} (<= {st['threshold']:g})"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = report.get("total_time_s")
    lines.append(f"sequence {report['sequence']!r}: {'SUCCEEDED' if report['success'] else 'FAILED'}"
                 + (f" in {total:.2f} s" if total is not None else "")
                 + (f" ({report['reason']})" if report.get("reason") else ""))
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], report_dir: str | Path, name: str = "report.json") -> Path:
    """Write the report as JSON into ``report_dir`` (created) and return the file."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def skills_from_agent(agent) -> dict[str, dict]:
    """SkillInfo from a :class:`legion_policy.agent_format.LoadedAgent`, plus the skills of config/skills.yaml that
    re-expose one of its networks under another name (their ``network``: judged by their own success predicate,
    bound by their own default binding), plus the built-in move-to."""
    skills = {s.name: {"predicate": s.success_predicate, "binding": s.binding} for s in agent.skills}
    for spec in load_skills().values():
        if spec.name not in skills and spec.network in skills:
            skills[spec.name] = {"predicate": spec.success, "binding": spec.default_binding(), "network": spec.network}
    skills.setdefault(MOVE_TO, {"predicate": MOVE_TO, "binding": MOVE_TO_BINDING})
    return skills
