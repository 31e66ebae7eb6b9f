"""Helpers shared by the policy tests: small agents with real MiniLM skill embeddings, recorded
Metaworld observations."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from legion_policy.agent_format import SkillSpec, save_agent
from legion_policy.language import default_instruction, embed
from legion_policy.networks import DeployedPolicy, NetworkConfig
from legion_policy.observation_layout import METAWORLD39

SKILLS = ("reach-v3", "push-v3", "button-press-topdown-v3")


def make_agent(path: Path, seed: int = 0, cfg: NetworkConfig | None = None,
               skills=SKILLS) -> tuple[Path, DeployedPolicy]:
    """An agent with the deployed widths (unless ``cfg``), random weights, real instruction embeddings."""
    cfg = cfg or NetworkConfig(obs_dim=METAWORLD39.size, embedding_dim=384)
    torch.manual_seed(seed)
    policy = DeployedPolicy(cfg).eval()
    specs = [SkillSpec(s, default_instruction(s), embed(default_instruction(s))[0]) for s in skills]
    save_agent(path, policy, METAWORLD39, specs, training_config={"kind": "test"})
    return path, policy


def record_observations(n: int, task: str = "push-v3", seed: int = 0) -> np.ndarray:
    """``n`` real Metaworld observations (float64, 39): expert actions mixed with random ones."""
    import metaworld
    from metaworld.policies import ENV_POLICY_MAP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mt = metaworld.MT1(task, seed=seed)
    env = mt.train_classes[task]()
    rng = np.random.default_rng(seed)
    expert = ENV_POLICY_MAP[task]()
    out = []
    episode = 0
    while len(out) < n:
        env.set_task(mt.train_tasks[episode % len(mt.train_tasks)])
        obs, _ = env.reset()
        for _ in range(200):
            out.append(obs.copy())
            a = expert.get_action(obs) if rng.random() < 0.7 else rng.uniform(-1, 1, 4)
            obs, *_ = env.step(np.clip(a, -1, 1))
            if len(out) == n:
                break
        episode += 1
    env.close()
    return np.stack(out)


def reference_actions(policy: DeployedPolicy, obs: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """The in-memory model's actions, one float32 forward per observation (as the node runs it)."""
    e = torch.from_numpy(np.asarray(embedding, dtype=np.float32).reshape(1, -1))
    with torch.no_grad():
        return np.stack([policy(torch.from_numpy(o.astype(np.float32)).reshape(1, -1), e).numpy()[0] for o in obs])
