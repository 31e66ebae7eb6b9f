"""One replay buffer for the whole task stream (never reset), uniform sampling.

Stores (s, a, r, s', terminal, task id); rewards are stored already normalised
(as the learner saw them at collection time). Grows its arrays on demand up to
``capacity`` so that a 10M-capacity config does not allocate 10M rows at start.
"""
from __future__ import annotations

import numpy as np

_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "task")


class ReplayBuffer:
    def __init__(self, obs_dim: int, action_dim: int, capacity: int, initial_rows: int = 65536) -> None:
        if capacity <= 0:
            raise ValueError("replay capacity must be > 0")
        self.obs_dim, self.action_dim, self.capacity = obs_dim, action_dim, int(capacity)
        self.size = 0      # rows holding data
        self.pos = 0       # next row to write (wraps at capacity)
        self._alloc(min(self.capacity, initial_rows))

    def _alloc(self, rows: int) -> None:
        new = {
            "obs": np.zeros((rows, self.obs_dim), np.float32),
            "action": np.zeros((rows, self.action_dim), np.float32),
            "reward": np.zeros((rows,), np.float32),
            "next_obs": np.zeros((rows, self.obs_dim), np.float32),
            "terminal": np.zeros((rows,), np.float32),
            "task": np.zeros((rows,), np.int64),
        }
        if hasattr(self, "obs"):
            for k in _FIELDS:
                new[k][: self.size] = getattr(self, k)[: self.size]
        for k, v in new.items():
            setattr(self, k, v)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminal: bool, task: int) -> None:
        if self.pos >= len(self.obs):
            self._alloc(min(self.capacity, 2 * len(self.obs)))
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.terminal[i] = float(terminal)
        self.task[i] = task
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_indices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=n)

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: getattr(self, k)[idx] for k in _FIELDS}

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        return self.batch(self.sample_indices(rng, n))

    def state_dict(self) -> dict:
        d = {k: getattr(self, k)[: self.size].copy() for k in _FIELDS}
        d.update(size=self.size, pos=self.pos, capacity=self.capacity)
        return d

    def load_state_dict(self, d: dict) -> None:
        self.capacity = int(d["capacity"])
        n = int(d["size"])
        for k in _FIELDS:
            delattr(self, k) if hasattr(self, k) else None
        self.size = 0
        self._alloc(max(n, 1))
        for k in _FIELDS:
            getattr(self, k)[:n] = d[k]
        self.size, self.pos = n, int(d["pos"])
