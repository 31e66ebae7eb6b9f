"""The learner's losses on small hand-computed cases, the KL to a known mixture, the fused critic,
and which parameters each update moves."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from legion_policy.networks import sac_trunk
from legion_training.config import ConfigError, load_config
from legion_training.dpmm import log_responsibilities
from legion_training.learner import (Learner, TwinCritic, actor_loss, alpha_loss, critic_loss, critic_target,
                                     kl_diag_gaussians, kl_standard_normal, soft_mixture_kl, tanh_gaussian_sample,
                                     vae_loss)
from legion_training.lifelong import cluster_purity, stream_metrics


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_tanh_gaussian_at_zero_is_the_plain_gaussian_density():
    # u = 0: tanh'(0) = 1, so log pi = sum_d log N(0; 0, 1) = -d/2 log(2 pi)
    a, logp = tanh_gaussian_sample(t([[0.0, 0.0, 0.0, 0.0]]), t([[0.0] * 4]), noise=t([[0.0] * 4]))
    assert torch.equal(a, t([[0.0] * 4]))
    assert logp.item() == pytest.approx(-2.0 * math.log(2 * math.pi))


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    mean, log_std, noise = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64) * 0.3, \
        torch.randn(5, 4, dtype=torch.float64)
    a, logp = tanh_gaussian_sample(mean, log_std, noise)
    u = mean + log_std.exp() * noise
    expected = Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    assert torch.allclose(a, torch.tanh(u))
    assert torch.allclose(logp, expected, atol=1e-9)


def test_critic_target_bootstraps_through_time_limits_and_stops_at_terminals():
    # y = 1 + 0.9 * (min(2, 3) - 0.5 * (-1)) = 1 + 0.9 * 2.5 = 3.25 ; terminal: y = r = 1
    y = critic_target(t([1.0, 1.0]), t([0.0, 1.0]), t([2.0, 2.0]), t([3.0, 3.0]), t([-1.0, -1.0]), t(0.5), 0.9)
    assert y.tolist() == pytest.approx([3.25, 1.0])


def test_critic_loss_sums_the_two_mses():
    # mean((1-1)^2, (2-1)^2) + mean((0-1)^2, (0-1)^2) = 0.5 + 1
    assert critic_loss(t([1.0, 2.0]), t([0.0, 0.0]), t([1.0, 1.0])).item() == pytest.approx(1.5)


def test_actor_loss_uses_the_smaller_q():
    # mean(0.5*-1 - min(1,2), 0.5*1 - min(2,0)) = mean(-1.5, 0.5) = -0.5
    assert actor_loss(t(0.5), t([-1.0, 1.0]), t([1.0, 2.0]), t([2.0, 0.0])).item() == pytest.approx(-0.5)


def test_alpha_loss_value_and_direction():
    log_alpha = torch.tensor([math.log(2.0)] * 2, dtype=torch.float64, requires_grad=True)
    loss = alpha_loss(log_alpha, t([1.0, 3.0]), -4.0)   # -(ln2 * mean(-3, -1)) = 2 ln 2
    assert loss.item() == pytest.approx(2 * math.log(2.0))
    loss.backward()
    # entropy (-logp) above target -> d loss / d log_alpha > 0 -> gradient descent lowers alpha
    assert torch.all(log_alpha.grad > 0)


def test_kl_to_standard_normal_hand_case():
    mu, logvar = t([[1.0, 0.0]]), t([[0.0, math.log(2.0)]])
    expected = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 2 - 1 - math.log(2.0))
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(expected)


def test_diag_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    means, var = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.2
    got = kl_diag_gaussians(mu, logvar, means, var)
    for n in range(6):
        for k in range(2):
            q = Independent(Normal(mu[n], (0.5 * logvar[n]).exp()), 1)
            p = Independent(Normal(means[k], var[k].sqrt()), 1)
            assert got[n, k].item() == pytest.approx(kl_divergence(q, p).item(), rel=1e-9)


def test_soft_mixture_kl_to_a_known_mixture():
    # two points, two components; resp rows [1, 0] and [0.25, 0.75]
    mu, logvar = t([[0.0, 0.0], [3.0, 1.0]]), t([[0.0, 0.0], [0.0, 0.0]])
    means, var = t([[0.0, 0.0], [3.0, 0.0]]), t([[1.0, 1.0], [2.0, 2.0]])
    resp = t([[1.0, 0.0], [0.25, 0.75]])
    # KL(N(0,I)||N(0,I)) = 0 ; point 2 vs comp 1: 0.5*(9+1)=5 ; vs comp 2: 0.5*sum(ln2 + (1+d^2)/2 - 1)
    kl21 = 0.5 * ((0 + 1 + 9 - 1) + (0 + 1 + 1 - 1))
    kl22 = 0.5 * ((math.log(2) + 1 / 2 - 1) + (math.log(2) + 2 / 2 - 1))
    expected = (0.0 + 0.25 * kl21 + 0.75 * kl22) / 2
    assert kl21 == pytest.approx(5.0)
    assert soft_mixture_kl(mu, logvar, resp, means, var).item() == pytest.approx(expected)


def test_soft_mixture_kl_has_no_gradient_through_responsibilities():
    mu = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    resp = torch.tensor([[0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    soft_mixture_kl(mu, torch.zeros(1, 2, dtype=torch.float64), resp, t([[1.0, 1.0], [-1.0, 0.0]]),
                    t([[1.0, 1.0], [1.0, 1.0]])).backward()
    assert resp.grad is None and mu.grad is not None


def test_responsibilities_match_bayes_rule_by_hand():
    from scipy.stats import multivariate_normal

    w, m, v = t([0.3, 0.7]), t([[0.0, 0.0], [1.0, 2.0]]), t([[1.0, 0.5], [2.0, 1.0]])
    z = t([[0.5, 0.5], [1.0, 1.5]])
    dens = np.array([[w[k].item() * multivariate_normal(m[k].numpy(), np.diag(v[k].numpy())).pdf(zi.numpy())
                      for k in range(2)] for zi in z])
    expected = dens / dens.sum(1, keepdims=True)
    assert np.allclose(log_responsibilities(z, w, m, v).exp().numpy(), expected, atol=1e-12)


def test_vae_loss_hand_case():
    total, parts = vae_loss(torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([[1.0, 0.0]] * 2),
                            torch.zeros(2, 2), torch.tensor(2.0), beta=0.5, dynamics_weight=0.5, semantic_weight=1.0)
    # 0.5 * mse(=1) + sum-squared(=1 per row, mean 1) + 0.5 * 2
    assert total.item() == pytest.approx(2.5)
    assert parts == pytest.approx({"vae/dynamics": 1.0, "vae/semantic": 1.0, "vae/kl": 2.0})


def test_twin_critic_is_two_copies_of_the_paper_trunk():
    torch.manual_seed(0)
    crit = TwinCritic(7, (16, 16, 8))
    x = torch.randn(5, 7)
    out = crit(x)
    assert out.shape == (2, 5)
    for k in range(2):
        trunk = sac_trunk(7, (16, 16, 8))
        head = torch.nn.Linear(8, 1)
        linears = [m for m in trunk if isinstance(m, torch.nn.Linear)] + [head]
        with torch.no_grad():
            for lin, w, b in zip(linears, crit.weights, crit.biases):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
            trunk[1].weight.copy_(crit.ln_weight[k, 0])
            trunk[1].bias.copy_(crit.ln_bias[k, 0])
        assert torch.allclose(out[k], head(trunk(x)).squeeze(-1), atol=1e-6)


def test_stream_metrics_hand_case():
    M = np.array([[0.9, 0.5, 0.6], [0.1, 0.8, 0.7], [0.0, 0.0, 0.9]])
    m = stream_metrics(M)
    assert m["average_success"] == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)
    assert m["backward_transfer"] == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    assert stream_metrics(np.array([[0.4], [0.2]]))["forgetting"] == 0.0


def test_cluster_purity():
    assert cluster_purity(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7])) == 1.0
    assert cluster_purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7])) == 0.75


def _learner(algorithm: str) -> Learner:
    cfg = load_config("smoke", [f"run.algorithm={algorithm}"])
    emb = np.eye(2, 8, dtype=np.float32)
    return Learner(cfg, obs_dim=12, action_dim=4, embeddings=emb)


def _batch(learner: Learner, n: int = 32):
    rng = np.random.default_rng(0)
    b = {"obs": rng.normal(size=(n, 12)).astype(np.float32), "action": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
         "reward": rng.normal(size=n).astype(np.float32), "next_obs": rng.normal(size=(n, 12)).astype(np.float32),
         "terminal": np.zeros(n, np.float32), "task": rng.integers(0, 2, n)}
    return learner.to_batch(b)


def test_rl_update_never_touches_the_encoder_and_vae_update_does():
    torch.manual_seed(0)
    lr = _learner("legion")
    b = _batch(lr)
    enc0 = [p.detach().clone() for p in lr.encoder.parameters()]
    act0 = [p.detach().clone() for p in lr.actor.parameters()]
    alpha0 = lr.log_alpha.detach().clone()
    lr.update_sac(b)
    assert all(torch.equal(a, p) for a, p in zip(enc0, lr.encoder.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(act0, lr.actor.parameters()))
    # only the temperatures of tasks present in the batch move
    assert not torch.equal(alpha0, lr.log_alpha.detach())
    lr.update_vae(b)
    assert not all(torch.equal(a, p) for a, p in zip(enc0, lr.encoder.parameters()))


def test_prior_switches_to_the_mixture_after_a_fit_only_for_legion():
    from legion_training.dpmm import Mixture

    mix = Mixture(np.array([0.5, 0.5]), np.zeros((2, 4)), np.ones((2, 4)))
    a, g = _learner("legion"), _learner("legion_gaussian")
    assert a.prior == "normal"
    a.set_mixture(mix)
    g.set_mixture(mix)
    assert a.prior == "mixture" and g.prior == "normal"


@pytest.mark.parametrize("algorithm,latent", [("sac", 0), ("sac_lang", 8), ("mtsac", 2), ("legion", 4)])
def test_baselines_condition_the_actor_on_their_task_code(algorithm, latent):
    lr = _learner(algorithm)
    assert lr.net_cfg.latent_dim == latent
    b = _batch(lr)
    z = lr.task_code(b.obs, b.task, sample=False)
    assert z.shape == (32, latent)
    if algorithm == "mtsac":
        assert torch.equal(z.argmax(1), b.task)
    info = lr.update_sac(b)
    assert np.isfinite(info["sac/critic"])


def test_optimizers_are_recreated_at_a_task_switch():
    lr = _learner("legion")
    lr.update_sac(_batch(lr))
    assert len(lr.critic_opt.state) > 0
    lr.reset_optimizers()
    assert len(lr.critic_opt.state) == 0 and len(lr.actor_opt.state) == 0


def test_demo_bc_weight_clones_the_demonstration_rows_only():
    """sac.demo_bc_weight adds TD3+BC's clone term on the batch's first n_demo rows (the demonstrations): the actor's
    deterministic action moves to the expert's on those rows, much faster than from the Q term alone."""
    def trained(weight: float, n_demo: int) -> tuple[float, float, dict]:  # the first n_demo rows: demonstrations
        torch.manual_seed(0)
        cfg = load_config("smoke", ["run.algorithm=sac", "env.expert_demo_episodes=1", "sac.demo_batch_fraction=0.5",
                                    f"sac.demo_bc_weight={weight}"] if weight else ["run.algorithm=sac"])
        lr = Learner(cfg, obs_dim=12, action_dim=4, embeddings=np.eye(2, 8, dtype=np.float32))
        b = _batch(lr)
        target = b.action.clone()
        target[:16] = torch.tensor([0.5, -0.5, 0.25, 0.8])  # the "expert" always does this on the demo rows
        b.action = target
        for _ in range(150):
            info = lr.update_sac(b, demo_action=target[:n_demo])
        with torch.no_grad():
            mean, _ = lr.actor(b.obs, lr.task_code(b.obs, b.task, sample=False))
            a = torch.tanh(mean)
        return (float(((a[:16] - target[:16]) ** 2).mean()), float(((a[16:] - target[:16]) ** 2).mean()), info)

    plain_demo, _, plain_info = trained(0.0, 16)
    bc_demo, bc_rest, bc_info = trained(10.0, 16)
    assert "sac/demo_bc" in bc_info and "sac/demo_bc" not in plain_info
    assert bc_demo < 0.2 * plain_demo  # cloned on the demonstration rows
    assert bc_demo < 0.5 * bc_rest  # and not on the others (random observations, no clone term)
    _, _, no_rows = trained(10.0, 0)  # a batch without demonstration rows: no clone term
    assert "sac/demo_bc" not in no_rows
    for bad, msg in (("sac.demo_bc_weight=-1", "demo_bc_weight"), ("sac.demo_bc_weight=0.5", "demo_batch_fraction > 0")):
        with pytest.raises(ConfigError, match=msg):
            load_config("smoke", [bad])
