"""The bnpy DPMM behind legion_training.dpmm: K grows from 1 to the number of separated clusters,
warm starts keep what was learned and add what is new, the state survives a checkpoint."""
from __future__ import annotations

import numpy as np

from legion_training.config import DPMMConfig
from legion_training.dpmm import DPMM, Mixture, responsibilities
from legion_training.lifelong import cluster_purity


def _clusters(rng, centres, n=250, d=4, scale=0.1):
    X = np.concatenate([rng.normal(c, scale, (n, d)) for c in centres])
    labels = np.repeat(np.arange(len(centres)), n)
    return X, labels


def test_dpmm_grows_k_from_one_to_the_number_of_separated_clusters():
    rng = np.random.default_rng(0)
    X, labels = _clusters(rng, [-4.0, 0.0, 4.0, 8.0])
    dp = DPMM(DPMMConfig(seed=0))
    assert dp.K == 0
    mix = dp.fit(X)
    assert mix.K == 4
    assert np.isclose(mix.weights.sum(), 1.0)
    clusters = responsibilities(X, mix).argmax(1)
    assert cluster_purity(labels, clusters) == 1.0
    # each component's mean sits on one true centre
    assert np.allclose(np.sort(mix.means.mean(1)), [-4, 0, 4, 8], atol=0.05)


def test_warm_start_keeps_old_clusters_and_adds_a_new_one():
    rng = np.random.default_rng(1)
    X, _ = _clusters(rng, [-4.0, 0.0, 4.0])
    dp = DPMM(DPMMConfig(seed=0))
    old = dp.fit(X)
    assert old.K == 3
    X2, labels2 = _clusters(rng, [-4.0, 0.0, 4.0, 10.0])
    new = dp.fit(X2)
    assert dp.n_fits == 2 and new.K == 4
    assert cluster_purity(labels2, responsibilities(X2, new).argmax(1)) == 1.0
    for m in old.means:   # every old component is still there
        assert np.min(np.abs(new.means.mean(1) - m.mean())) < 0.05


def test_state_dict_round_trip_and_warm_start_after_restore():
    rng = np.random.default_rng(2)
    X, _ = _clusters(rng, [-3.0, 3.0])
    dp = DPMM(DPMMConfig(seed=0))
    dp.fit(X)
    restored = DPMM(DPMMConfig(seed=0))
    restored.load_state_dict(dp.state_dict())
    assert restored.K == 2 and restored.n_fits == 1
    assert np.array_equal(restored.mixture.means, dp.mixture.means)
    assert restored.fit(X).K == 2


def test_responsibilities_are_a_distribution_over_components():
    mix = Mixture(np.array([0.5, 0.5]), np.array([[0.0], [10.0]]), np.array([[1.0], [1.0]]))
    r = responsibilities(np.array([[0.0], [10.0], [5.0]]), mix)
    assert np.allclose(r.sum(1), 1.0)
    assert r[0, 0] > 0.999 and r[1, 1] > 0.999 and np.isclose(r[2, 0], 0.5)
