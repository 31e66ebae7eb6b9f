"""The LEGION learner, readable in one place.

    z ~ q(z | s, e) = N(mu, sigma^2)      task-inference encoder (legion_policy.networks.TaskEncoder)
    pi(a | s, z)                          tanh-Gaussian actor (legion_policy.networks.Actor)
    Q1, Q2 (s, z, a) + targets            twin critics, evaluated together (TwinCritic)
    e_hat = tanh(D_sem(z))                semantic decoder
    s'_hat = D_dyn(s, a, z)               dynamics decoder
    alpha_t                               one temperature per task

SAC losses (z detached: RL never updates the encoder):
    y        = r + gamma (1 - terminal) (min_i Q_i^targ(s', z', a') - alpha_t log pi(a' | s', z')),  a' ~ pi(. | s', z')
    L_Q      = mean (Q1 - y)^2 + mean (Q2 - y)^2
    L_pi     = mean (alpha_t log pi(a | s, z) - min_i Q_i(s, z, a)),  a ~ pi(. | s, z)
    L_alpha  = -mean log(alpha_t) (log pi(a | s, z) + H_target)

VAE loss (every ``vae.update_every`` env steps):
    L_vae = w_dyn mean (s' - s'_hat)^2 + w_sem mean_n sum_d (e_hat - e)^2 + beta KL
    KL    = mean_n KL(q(z | s_n, e_n) || N(0, I))                           before the first DPMM fit (and always for
                                                                           the Gaussian-prior ablation)
          = mean_n sum_k r_nk KL(q(z | s_n, e_n) || N(m_k, diag v_k))      after it (r from the DPMM, no gradient)

What z is for each algorithm (``run.algorithm``):
    legion, legion_gaussian: sampled from the encoder (the mean mu at evaluation / deployment)
    sac_lang: z = e (the language embedding, no encoder)
    mtsac:    z = one-hot task id
    sac:      no z (a single policy for every task)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from legion_policy.networks import Actor, NetworkConfig, TaskEncoder, mlp

from .config import TrainConfig
from .dpmm import Mixture, log_responsibilities

LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)

# ------------------------------------------------------------------ pure loss functions


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """a = tanh(u), u = mean + std * noise; returns (a, log pi(a)) with the tanh change of variables.

    log pi(a) = sum_d [log N(u_d; mean_d, std_d) - log(1 - tanh(u_d)^2)], the second term in the stable form
    2 (log 2 - u - softplus(-2u)).
    """
    if noise is None:
        noise = torch.randn_like(mean)
    u = mean + log_std.exp() * noise
    logp_u = (-0.5 * noise.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
    log_det = (2.0 * (LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)
    return torch.tanh(u), logp_u - log_det


def critic_target(reward: torch.Tensor, terminal: torch.Tensor, q1_next: torch.Tensor, q2_next: torch.Tensor,
                  logp_next: torch.Tensor, alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - terminal) (min(Q1', Q2') - alpha log pi')."""
    return reward + gamma * (1.0 - terminal) * (torch.min(q1_next, q2_next) - alpha * logp_next)


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def actor_loss(alpha: torch.Tensor, logp: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    return (alpha * logp - torch.min(q1, q2)).mean()


def behaviour_cloning_loss(mean: torch.Tensor, demo_action: torch.Tensor) -> torch.Tensor:
    """MSE between the actor's deterministic action tanh(mean) and the expert's action (TD3+BC's term)."""
    return F.mse_loss(torch.tanh(mean), demo_action)


def alpha_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    return -(log_alpha * (logp + target_entropy).detach()).mean()


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """mean_n KL(N(mu_n, exp(logvar_n)) || N(0, I))."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(-1).mean()


def kl_diag_gaussians(mu: torch.Tensor, logvar: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
                      ) -> torch.Tensor:
    """KL(N(mu_n, exp(logvar_n)) || N(m_k, v_k)) for every n, k: (N, K)."""
    mu_, lv_ = mu[:, None, :], logvar[:, None, :]
    m, v = means[None], variances[None]
    return 0.5 * (torch.log(v) - lv_ + (lv_.exp() + (mu_ - m).pow(2)) / v - 1.0).sum(-1)


def soft_mixture_kl(mu: torch.Tensor, logvar: torch.Tensor, resp: torch.Tensor, means: torch.Tensor,
                    variances: torch.Tensor) -> torch.Tensor:
    """mean_n sum_k r_nk KL(N(mu_n, sigma_n) || N(m_k, v_k)); no gradient flows through r."""
    return (resp.detach() * kl_diag_gaussians(mu, logvar, means, variances)).sum(-1).mean()


def vae_loss(next_obs: torch.Tensor, next_obs_hat: torch.Tensor, emb: torch.Tensor, emb_hat: torch.Tensor,
             kl: torch.Tensor, beta: float, dynamics_weight: float = 0.5, semantic_weight: float = 1.0
             ) -> tuple[torch.Tensor, dict]:
    dyn = F.mse_loss(next_obs_hat, next_obs)
    sem = (emb_hat - emb).pow(2).sum(-1).mean()
    total = dynamics_weight * dyn + semantic_weight * sem + beta * kl
    return total, {"vae/dynamics": dyn.item(), "vae/semantic": sem.item(), "vae/kl": kl.item()}


# ------------------------------------------------------------------ networks owned by the trainer


class TwinCritic(nn.Module):
    """Q1 and Q2 evaluated in one batched pass (stacked weights, bmm): the paper's trunk
    (Linear-LayerNorm-Tanh, then Linear-LeakyReLU per width) and a linear head, once per critic."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], n: int = 2) -> None:
        super().__init__()
        dims = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            w = torch.empty(n, a, b)
            bias = torch.empty(n, 1, b)
            for k in range(n):  # same init as nn.Linear
                lin = nn.Linear(a, b)
                w[k] = lin.weight.detach().T
                bias[k, 0] = lin.bias.detach()
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))
        self.ln_weight = nn.Parameter(torch.ones(n, 1, hidden[0]))
        self.ln_bias = nn.Parameter(torch.zeros(n, 1, hidden[0]))
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in) -> (n, B)."""
        h = x.unsqueeze(0).expand(self.n, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i == 0:
                h = torch.tanh(F.layer_norm(h, h.shape[-1:]) * self.ln_weight + self.ln_bias)
            elif i < last:
                h = F.leaky_relu(h)
        return h.squeeze(-1)


class SemanticDecoder(nn.Module):
    def __init__(self, latent_dim: int, hidden: tuple[int, ...], embedding_dim: int) -> None:
        super().__init__()
        self.net = mlp(latent_dim, hidden, embedding_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


class DynamicsDecoder(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, latent_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim + latent_dim, hidden, obs_dim)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action, z], dim=-1))


# ------------------------------------------------------------------ the learner


@dataclass
class Batch:
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminal: torch.Tensor
    task: torch.Tensor


def uses_encoder(algorithm: str) -> bool:
    return algorithm in ("legion", "legion_gaussian")


class Learner:
    """Networks, optimisers and the update rules of every algorithm in ``ALGORITHMS``."""

    def __init__(self, cfg: TrainConfig, obs_dim: int, action_dim: int, embeddings: np.ndarray) -> None:
        self.cfg = cfg
        self.algorithm = cfg.run.algorithm
        self.device = torch.device(cfg.run.device)
        self.n_tasks = len(cfg.env.tasks)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.shape[0] != self.n_tasks:
            raise ValueError(f"need one embedding per task ({self.n_tasks}), got {emb.shape}")
        if not cfg.language.enabled:
            emb = np.zeros_like(emb)
        self.embeddings = torch.as_tensor(emb, device=self.device)
        self.embedding_dim = emb.shape[1]
        latent = {"legion": cfg.net.latent_dim, "legion_gaussian": cfg.net.latent_dim,
                  "sac_lang": self.embedding_dim, "mtsac": self.n_tasks, "sac": 0}[self.algorithm]
        self.net_cfg = NetworkConfig(obs_dim=obs_dim, embedding_dim=self.embedding_dim, latent_dim=latent,
                                     action_dim=action_dim, encoder_hidden=tuple(cfg.net.encoder_hidden),
                                     actor_hidden=tuple(cfg.net.actor_hidden))
        d = self.device
        self.actor = Actor(self.net_cfg).to(d)
        self.critic = TwinCritic(obs_dim + latent + action_dim, tuple(cfg.net.critic_hidden)).to(d)
        self.critic_target = TwinCritic(obs_dim + latent + action_dim, tuple(cfg.net.critic_hidden)).to(d)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.full((self.n_tasks,), math.log(cfg.sac.init_alpha), device=d, requires_grad=True)
        self.encoder = self.sem_decoder = self.dyn_decoder = None
        if uses_encoder(self.algorithm):
            self.encoder = TaskEncoder(self.net_cfg).to(d)
            self.sem_decoder = SemanticDecoder(latent, tuple(cfg.net.decoder_hidden), self.embedding_dim).to(d)
            self.dyn_decoder = DynamicsDecoder(obs_dim, action_dim, latent, tuple(cfg.net.decoder_hidden)).to(d)
        self.mixture: Mixture | None = None
        self._mix_t: tuple[torch.Tensor, ...] | None = None
        self.reset_optimizers()

    # -- optimisers (re-created at every task switch)
    def reset_optimizers(self) -> None:
        lr = self.cfg.sac.lr
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)
        self.vae_opt = None
        if self.encoder is not None:
            params = [*self.encoder.parameters(), *self.sem_decoder.parameters(), *self.dyn_decoder.parameters()]
            self.vae_opt = torch.optim.Adam(params, lr=self.cfg.vae.lr)

    # -- DPMM prior
    def set_mixture(self, mixture: Mixture | None) -> None:
        self.mixture = mixture
        if mixture is None:
            self._mix_t = None
        else:
            self._mix_t = tuple(torch.as_tensor(a, dtype=torch.float32, device=self.device)
                                for a in (mixture.weights, mixture.means, mixture.variances))

    @property
    def prior(self) -> str:
        return "mixture" if (self.algorithm == "legion" and self._mix_t is not None) else "normal"

    # -- task code
    def task_code(self, obs: torch.Tensor, task: torch.Tensor, sample: bool) -> torch.Tensor:
        """z for observations of tasks ``task`` (no gradient into whatever produces it)."""
        if self.algorithm in ("legion", "legion_gaussian"):
            with torch.no_grad():
                mu, logvar = self.encoder(obs, self.embeddings[task])
                if not sample:
                    return mu
                return mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        if self.algorithm == "sac_lang":
            return self.embeddings[task]
        if self.algorithm == "mtsac":
            return F.one_hot(task, self.n_tasks).to(obs.dtype)
        return obs.new_zeros(obs.shape[0], 0)

    @torch.no_grad()
    def act(self, obs: np.ndarray, task: int, deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(np.asarray(obs, np.float32), device=self.device).unsqueeze(0)
        t = torch.tensor([task], device=self.device)
        z = self.task_code(o, t, sample=not deterministic)
        if deterministic:
            a = self.actor.deterministic(o, z)
        else:
            mean, log_std = self.actor(o, z)
            a, _ = tanh_gaussian_sample(mean, log_std)
        return a[0].cpu().numpy()

    def to_batch(self, b: dict[str, np.ndarray]) -> Batch:
        d = self.device
        return Batch(*(torch.as_tensor(b[k], device=d) for k in ("obs", "action", "reward", "next_obs", "terminal", "task")))

    # -- SAC
    def update_sac(self, b: Batch, demo_action: torch.Tensor | None = None) -> dict[str, float]:
        """One SAC step on ``b``; its first ``len(demo_action)`` rows are expert demonstrations, whose expert
        actions ``demo_action`` ``sac.demo_bc_weight`` clones."""
        g = self.cfg.sac.gamma
        n = b.obs.shape[0]
        z_both = self.task_code(torch.cat([b.obs, b.next_obs]), torch.cat([b.task, b.task]), sample=True)
        z, z_next = z_both[:n], z_both[n:]
        alpha = self.log_alpha.exp().detach()[b.task]

        with torch.no_grad():
            mean_n, log_std_n = self.actor(b.next_obs, z_next)
            a_next, logp_next = tanh_gaussian_sample(mean_n, log_std_n)
            q_next = self.critic_target(torch.cat([b.next_obs, z_next, a_next], -1))
            y = critic_target(b.reward, b.terminal, q_next[0], q_next[1], logp_next, alpha, g)
        q = self.critic(torch.cat([b.obs, z, b.action], -1))
        l_q = critic_loss(q[0], q[1], y)
        self.critic_opt.zero_grad(set_to_none=True)
        l_q.backward()
        self.critic_opt.step()

        mean, log_std = self.actor(b.obs, z)
        a, logp = tanh_gaussian_sample(mean, log_std)
        self.critic.requires_grad_(False)
        q_pi = self.critic(torch.cat([b.obs, z, a], -1))
        self.critic.requires_grad_(True)
        l_pi = actor_loss(alpha, logp, q_pi[0], q_pi[1])
        w_bc = self.cfg.sac.demo_bc_weight
        l_bc = None
        if w_bc and demo_action is not None and len(demo_action):
            # TD3+BC's scale: the clone term weighs w_bc x max(mean|Q|, 1) against the Q term
            l_bc = behaviour_cloning_loss(mean[:len(demo_action)], demo_action)
            q_scale = torch.min(q_pi[0], q_pi[1]).abs().mean().detach().clamp(min=1.0)
            l_pi = l_pi + w_bc * q_scale * l_bc
        self.actor_opt.zero_grad(set_to_none=True)
        l_pi.backward()
        self.actor_opt.step()

        l_a = alpha_loss(self.log_alpha[b.task], logp, self.cfg.sac.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        l_a.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            tp, sp = list(self.critic_target.parameters()), list(self.critic.parameters())
            torch._foreach_mul_(tp, 1.0 - self.cfg.sac.tau)
            torch._foreach_add_(tp, sp, alpha=self.cfg.sac.tau)
        info = {"sac/critic": l_q.item(), "sac/actor": l_pi.item(), "sac/alpha_loss": l_a.item(),
                "sac/q": q[0].mean().item(), "sac/entropy": -logp.mean().item()}
        if l_bc is not None:
            info["sac/demo_bc"] = l_bc.item()
        return info

    # -- VAE
    def vae_losses(self, b: Batch) -> tuple[torch.Tensor, dict]:
        e = self.embeddings[b.task]
        mu, logvar = self.encoder(b.obs, e)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        e_hat = self.sem_decoder(z)
        s_next_hat = self.dyn_decoder(b.obs, b.action, z)
        if self.prior == "mixture":
            w, m, v = self._mix_t
            with torch.no_grad():
                resp = log_responsibilities(mu.detach(), w, m, v).exp()
            kl = soft_mixture_kl(mu, logvar, resp, m, v)
        else:
            kl = kl_standard_normal(mu, logvar)
        vc = self.cfg.vae
        return vae_loss(b.next_obs, s_next_hat, e, e_hat, kl, vc.beta, vc.dynamics_weight, vc.semantic_weight)

    def update_vae(self, b: Batch) -> dict[str, float]:
        if self.encoder is None:
            return {}
        loss, info = self.vae_losses(b)
        self.vae_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.vae_opt.step()
        info["vae/loss"] = loss.item()
        return info

    @torch.no_grad()
    def latent(self, obs: np.ndarray, task: np.ndarray, sample: bool = True) -> np.ndarray:
        """z of stored transitions (for the DPMM fit and the latent plot)."""
        o = torch.as_tensor(obs, device=self.device)
        t = torch.as_tensor(task, device=self.device)
        return self.task_code(o, t, sample=sample).cpu().numpy()

    # -- checkpoint
    def state_dict(self) -> dict:
        d = {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
             "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
             "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
             "alpha_opt": self.alpha_opt.state_dict(),
             "mixture": None if self.mixture is None else self.mixture.state_dict()}
        if self.encoder is not None:
            d.update(encoder=self.encoder.state_dict(), sem_decoder=self.sem_decoder.state_dict(),
                     dyn_decoder=self.dyn_decoder.state_dict(), vae_opt=self.vae_opt.state_dict())
        return d

    def load_state_dict(self, d: dict) -> None:
        self.actor.load_state_dict(d["actor"])
        self.critic.load_state_dict(d["critic"])
        self.critic_target.load_state_dict(d["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(d["log_alpha"])
        self.actor_opt.load_state_dict(d["actor_opt"])
        self.critic_opt.load_state_dict(d["critic_opt"])
        self.alpha_opt.load_state_dict(d["alpha_opt"])
        if self.encoder is not None:
            self.encoder.load_state_dict(d["encoder"])
            self.sem_decoder.load_state_dict(d["sem_decoder"])
            self.dyn_decoder.load_state_dict(d["dyn_decoder"])
            self.vae_opt.load_state_dict(d["vae_opt"])
        self.set_mixture(None if d["mixture"] is None else Mixture.from_state_dict(d["mixture"]))
