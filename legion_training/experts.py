"""Metaworld's scripted experts (``metaworld.policies``) by task name, for demonstration episodes.

``env.expert_demo_episodes`` (legion_training.config) seeds each new task with that many episodes whose actions
are the task's scripted expert's (reading the 39-d Metaworld observation of the training environment, on
whatever arm it runs): a documented departure from the paper, which learns every task from its reward alone
(the ``paper`` config keeps it at 0). bench/bench_expert_parity.py uses the same lookup.
"""
from __future__ import annotations

#: Experts whose class name is not the task name in CamelCase.
EXPERT_NAMES = {"peg-insert-side-v3": "SawyerPegInsertionSideV3Policy"}


def expert_for(task: str):
    """Metaworld's scripted expert of ``task`` (``reach-v3`` -> ``SawyerReachV3Policy()``); ValueError if none."""
    import metaworld.policies as policies

    name = EXPERT_NAMES.get(task) or (
        "Sawyer" + "".join(w.capitalize() for w in task.rsplit("-v", 1)[0].split("-")) + "V3Policy")
    try:
        return getattr(policies, name)()
    except AttributeError:
        raise ValueError(f"metaworld.policies has no {name} for {task!r}") from None
