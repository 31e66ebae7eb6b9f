"""A scripted tabletop world for the sequencer tests: it observes like real2sim (object 1 and the
goal come from the latest binding) and the bound object moves towards its goal while the matching
skill is active, at a fixed speed."""
from __future__ import annotations

import numpy as np

from legion_policy.observation_layout import METAWORLD39
from legion_policy.success import HAND_TO_TCP_OFFSET_M

START = {"hand": [0.0, 0.6, 0.2], "puck": [0.0, 0.65, 0.02], "button": [0.1, 0.85, 0.3],
         "reach_goal": [-0.05, 0.85, 0.2], "push_goal": [0.05, 0.85, 0.02], "button_goal": [0.1, 0.85, 0.2]}


class ScriptedWorld:
    def __init__(self, speed_m_per_obs: float = 0.01, stuck: tuple[str, ...] = ()) -> None:
        self.pos = {k: np.array(v, dtype=np.float64) for k, v in START.items()}
        self.speed = speed_m_per_obs
        self.stuck = set(stuck)          # skills that make no progress (to provoke timeouts)
        self.binding = None
        self.task = ""

    def _binding(self) -> dict | None:
        """The latest binding as its wire mapping (a Binding from the core, or a decoded message)."""
        b = self.binding
        return b.to_dict() if hasattr(b, "to_dict") else b

    def observe(self) -> np.ndarray:
        b = self._binding() or {"objects": ["puck"], "goal_object": "reach_goal", "goal": None}
        obj = self.pos[b["objects"][0]] if b["objects"] else np.zeros(3)
        goal = self.pos[b["goal_object"]] if b.get("goal_object") else np.asarray(b["goal"])
        values = {"hand_pos": self.pos["hand"], "gripper_opening": [1.0], "object1_pos": obj,
                  "object1_quat": [0, 0, 0, 1], "object2_pos": np.zeros(3), "object2_quat": np.zeros(4)}
        prev = {f"prev_{k}": v for k, v in values.items()}
        return METAWORLD39.pack({**values, **prev, "goal_pos": goal})

    def step(self) -> None:
        """Progress of the active skill (by the task's bound skill) for one observation period."""
        b = self._binding()
        if not b or self.task in ("", "stop") or b["skill"] in self.stuck:
            return
        skill = b["skill"]
        goal = self.pos[b["goal_object"]]
        if skill == "reach-v3":
            self._move("hand", goal - HAND_TO_TCP_OFFSET_M)
        elif skill == "push-v3":
            self._move(b["objects"][0], goal)
        elif skill == "button-press-topdown-v3":
            name = b["objects"][0]
            self._move(name, np.array([self.pos[name][0], self.pos[name][1], goal[2]]))

    def _move(self, name: str, target: np.ndarray) -> None:
        d = target - self.pos[name]
        n = np.linalg.norm(d)
        self.pos[name] = target.copy() if n <= self.speed else self.pos[name] + d / n * self.speed
