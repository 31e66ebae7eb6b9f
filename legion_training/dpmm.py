"""The DPMM knowledge space: the ONLY module that touches bnpy.

bnpy 0.1.7 (2019) predates Python 3.11 / NumPy 2: :func:`_shim` restores
``inspect.getargspec`` and the NumPy aliases it uses before importing it.

Fit: ``DPMixtureModel`` + ``DiagGauss`` with memoVB birth/merge/shuffle moves
(gamma0, sF, ECovMat = eye, nBatch, nLap from :class:`DPMMConfig`). The first
fit starts from K = 1; later fits are warm-started from the previous mixture:
its responsibilities on the new data initialise bnpy (``initname='warmLP'``).

The fitted mixture is kept as plain arrays (:class:`Mixture`: weights E[pi_k],
posterior means m_k and diagonal variances v_k), which is all the learner needs
for the soft-mixture KL prior and all a checkpoint stores; responsibilities
r_nk are the posterior of the plug-in mixture (:func:`responsibilities`).
"""
from __future__ import annotations

import collections
import inspect
import logging
import math
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import torch

_BNPY = None


def _shim() -> None:
    """Restore what bnpy needs and current Python/NumPy removed (idempotent)."""
    if not hasattr(inspect, "getargspec"):
        ArgSpec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")

        def getargspec(func):
            s = inspect.getfullargspec(func)
            return ArgSpec(s.args, s.varargs, s.varkw, s.defaults)

        inspect.getargspec = getargspec
    aliases = {"float": float, "int": int, "bool": bool, "object": object, "complex": complex,
               "bool8": np.bool_, "float_": np.float64, "unicode_": np.str_}
    for name, value in aliases.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _bnpy():
    global _BNPY
    if _BNPY is None:
        _shim()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import bnpy
        logging.getLogger("bnpy").setLevel(logging.WARNING)
        _BNPY = bnpy
    return _BNPY


@dataclass
class Mixture:
    """A fitted diagonal Gaussian mixture (the DPMM's active components)."""

    weights: np.ndarray    # (K,) expected mixture weights, sum 1
    means: np.ndarray      # (K, D)
    variances: np.ndarray  # (K, D) diagonal covariances

    @property
    def K(self) -> int:
        return int(self.weights.shape[0])

    def state_dict(self) -> dict:
        return {"weights": self.weights, "means": self.means, "variances": self.variances}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Mixture":
        return cls(np.asarray(d["weights"], np.float64), np.asarray(d["means"], np.float64),
                   np.asarray(d["variances"], np.float64))


def log_responsibilities(z: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                         variances: torch.Tensor) -> torch.Tensor:
    """log r_nk of points z (N, D) under the mixture: log w_k + log N(z; m_k, diag v_k), normalised over k."""
    diff = z[:, None, :] - means[None]
    logp = -0.5 * ((diff ** 2) / variances[None] + torch.log(2 * math.pi * variances[None])).sum(-1)
    logp = logp + torch.log(weights.clamp_min(1e-300))[None]
    return logp - torch.logsumexp(logp, dim=1, keepdim=True)


def responsibilities(z: np.ndarray | torch.Tensor, mixture: Mixture) -> np.ndarray:
    zt = torch.as_tensor(np.asarray(z), dtype=torch.float64)
    w, m, v = (torch.as_tensor(a, dtype=torch.float64) for a in (mixture.weights, mixture.means, mixture.variances))
    return log_responsibilities(zt, w, m, v).exp().numpy()


class DPMM:
    """Fits the knowledge space with bnpy, warm-starting each fit from the last one."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.mixture: Mixture | None = None
        self.n_fits = 0

    @property
    def K(self) -> int:
        return 0 if self.mixture is None else self.mixture.K

    def fit(self, z: np.ndarray) -> Mixture:
        """Fit (or refit, warm) the DPMM on latent codes z (N, D); returns the new mixture."""
        bnpy = _bnpy()
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or len(z) < 2 or not np.all(np.isfinite(z)):
            raise ValueError(f"DPMM.fit needs a finite (N >= 2, D) array, got shape {z.shape}")
        data = bnpy.data.XData(z)
        kwargs = dict(moves=self.cfg.moves, nLap=self.cfg.n_lap, nBatch=min(self.cfg.n_batch, len(z)),
                      gamma0=self.cfg.gamma0, sF=self.cfg.sF, ECovMat="eye",
                      doWriteStdOut=False, doSaveToDisk=True, nTask=1,
                      algseed=int(self.cfg.seed) + self.n_fits, dataorderseed=int(self.cfg.seed) + self.n_fits)
        if self.mixture is None or self.mixture.means.shape[1] != z.shape[1]:
            kwargs.update(initname="randexamplesbydist", K=1)
        else:
            resp = responsibilities(z, self.mixture)
            keep = resp.sum(0) > 1e-8 * len(z)   # components that own no data would start empty
            resp = resp[:, keep] / resp[:, keep].sum(1, keepdims=True)
            kwargs.update(initname="warmLP", initLP={"resp": resp}, K=int(resp.shape[1]))
        # bnpy's birth/merge loggers insist on an output folder; keep it temporary.
        with tempfile.TemporaryDirectory(prefix="legion-bnpy-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _info = bnpy.run(data, "DPMixtureModel", "DiagGauss", "memoVB", output_path=tmp, **kwargs)
            _close_bnpy_logs(tmp)
        self.mixture = self._extract(model)
        self.n_fits += 1
        return self.mixture

    @staticmethod
    def _extract(model) -> Mixture:
        K = model.obsModel.K
        w = np.asarray(model.allocModel.get_active_comp_probs(), dtype=np.float64)[:K]
        w = w / w.sum()
        means = np.stack([np.asarray(model.obsModel.get_mean_for_comp(k), np.float64) for k in range(K)])
        var = np.stack([np.diag(np.asarray(model.obsModel.get_covar_mat_for_comp(k), np.float64)) for k in range(K)])
        return Mixture(w, means, np.maximum(var, 1e-8))

    def state_dict(self) -> dict:
        return {"n_fits": self.n_fits, "mixture": None if self.mixture is None else self.mixture.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.n_fits = int(d["n_fits"])
        self.mixture = None if d["mixture"] is None else Mixture.from_state_dict(d["mixture"])


def _close_bnpy_logs(folder: str) -> None:
    """bnpy leaves file handlers open on its loggers after a fit: close those writing under ``folder``."""
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    for lg in loggers:
        for h in list(getattr(lg, "handlers", [])):
            if isinstance(h, logging.FileHandler) and h.baseFilename.startswith(folder):
                h.close()
                lg.removeHandler(h)
