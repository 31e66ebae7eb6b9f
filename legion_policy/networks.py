"""The networks of a LEGION agent that the deployed policy runs (and the trainer trains).

Shapes follow the paper (legion-method.md); widths are arguments so that the
CPU config can shrink them. The trainer imports these classes; the frozen
agent stores their constructor arguments in its manifest.

* :class:`TaskEncoder`: [s, e] -> (mu, logvar) of the latent task code z.
* :class:`Actor`: [s, z] -> tanh-squashed Gaussian over the 4-d action.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of widths ``hidden`` with activation ``act``, then a linear output."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), act()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def sac_trunk(in_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """The paper's actor/critic trunk: Linear-LayerNorm-Tanh, then (Linear, LeakyReLU) per hidden width."""
    first, rest = hidden[0], hidden[1:]
    layers: list[nn.Module] = [nn.Linear(in_dim, first), nn.LayerNorm(first), nn.Tanh()]
    last = first
    for width in rest:
        layers += [nn.Linear(last, width), nn.LeakyReLU()]
        last = width
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the deployed networks (stored in the frozen agent's manifest).

    obs_dim: observation size (the layout's). embedding_dim: language embedding size.
    latent_dim: size of z (paper: 10). action_dim: 4.
    encoder_hidden: widths of the task-inference encoder (paper: 400, 400, 400).
    actor_hidden: widths of the actor trunk (paper: 300 x 4: the first is the LayerNorm layer).
    """

    obs_dim: int
    embedding_dim: int
    latent_dim: int = 10
    action_dim: int = 4
    encoder_hidden: tuple[int, ...] = (400, 400, 400)
    actor_hidden: tuple[int, ...] = (300, 300, 300, 300)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        d["actor_hidden"] = list(self.actor_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        return cls(obs_dim=int(d["obs_dim"]), embedding_dim=int(d["embedding_dim"]),
                   latent_dim=int(d["latent_dim"]), action_dim=int(d["action_dim"]),
                   encoder_hidden=tuple(int(x) for x in d["encoder_hidden"]),
                   actor_hidden=tuple(int(x) for x in d["actor_hidden"]))


class TaskEncoder(nn.Module):
    """Task-inference encoder q(z | s, e): returns mu and logvar of a diagonal Gaussian."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.net = mlp(cfg.obs_dim + cfg.embedding_dim, cfg.encoder_hidden, 2 * cfg.latent_dim)

    def forward(self, obs: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(torch.cat([obs, embedding], dim=-1)).chunk(2, dim=-1)
        return mu, logvar


class Actor(nn.Module):
    """pi(a | s, z): tanh-squashed Gaussian; ``forward`` returns mean and log_std (pre-tanh)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.trunk = sac_trunk(cfg.obs_dim + cfg.latent_dim, cfg.actor_hidden)
        self.head = nn.Linear(cfg.actor_hidden[-1], 2 * cfg.action_dim)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(self.trunk(torch.cat([obs, z], dim=-1))).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def deterministic(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mean) in [-1, 1] (evaluation and deployment)."""
        mean, _ = self(obs, z)
        return torch.tanh(mean)


class DeployedPolicy(nn.Module):
    """What the policy node runs: z = mu(s, e) (no sampling), a = tanh(mean(s, z))."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TaskEncoder(cfg)
        self.actor = Actor(cfg)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encoder(obs, embedding)
        return self.actor.deterministic(obs, mu)
