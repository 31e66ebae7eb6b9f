"""`legion-train --extend RUN --add-task T`: a finished lifelong run learns one more task in a new run
directory, keeping what it knew (networks, replay, DPMM, success matrix), and refusing what cannot work."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from legion_policy.agent_format import load_agent
from legion_training.cli import main
from legion_training.config import ConfigError, load_config
from legion_training.export import export_run
from legion_training.lifelong import CHECKPOINT, Trainer, extend_run


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("extend") / "reach"
    cfg = load_config("smoke", ["env.tasks=[reach-v3]"])
    Trainer(cfg, run, log=lambda s: None).train()
    return run


def _state(run: Path) -> dict:
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=False)


def test_extend_learns_the_new_task_and_keeps_the_old_knowledge(reach_run, tmp_path, capsys):
    before = _state(reach_run)
    src_bytes = (reach_run / CHECKPOINT).read_bytes()
    out = tmp_path / "reach+push"
    assert main(["--extend", str(reach_run), "--add-task", "push-v3", "--steps-per-task", "200",
                 "--out", str(out), "--no-progress"]) == 0
    assert (reach_run / CHECKPOINT).read_bytes() == src_bytes  # the source run is untouched

    after = _state(out)
    cfg = after["config"]
    assert cfg["env"]["tasks"] == ["reach-v3", "push-v3"]
    steps = before["config"]["run"]["steps_per_task"]  # the reach phase's length
    assert cfg["run"]["steps_per_task"] == 200          # the push phase's
    assert after["counters"]["step"] == steps + 200 and after["counters"]["phase"] == 2
    # the first task's embedding and instruction are kept exactly; the new one is a different instruction
    np.testing.assert_array_equal(np.asarray(after["embeddings"])[0], np.asarray(before["embeddings"])[0])
    assert after["instructions"][0] == before["instructions"][0] and len(after["instructions"]) == 2
    assert not np.allclose(after["embeddings"][0], after["embeddings"][1])
    # one temperature per task, the new one trained away from its initial value
    assert after["learner"]["log_alpha"].shape == (2,)
    assert after["learner"]["log_alpha"][1].item() != pytest.approx(np.log(load_config("smoke").sac.init_alpha))
    # replay kept the reach transitions and added push ones
    assert after["replay"]["size"] == steps + 200
    np.testing.assert_array_equal(after["replay"]["task"][:steps], before["replay"]["task"][:steps])
    assert set(np.unique(after["replay"]["task"])) == {0, 1}
    # evaluations of the new phase happened at its own steps, the last at its end
    assert max(r["step"] for r in after["eval_history"]) == steps + 200
    # the success matrix keeps the reach phase and gains the push phase
    M = np.asarray(after["matrix"])
    assert M.shape == (2, 2)
    assert M[0, 0] == np.asarray(before["matrix"])[0, 0]
    assert np.isnan(M[1, 0]) and not np.isnan(M[:, 1]).any()
    header = (out / "success_matrix.csv").read_text().splitlines()[0]
    assert header == "task,after_reach-v3,after_push-v3"
    # DPMM was fitted again in the new phase, the history of the first is kept
    assert [r["phase"] for r in after["dpmm_history"]] == [0, 1]

    agent = load_agent(export_run(out, tmp_path / "agent"))
    assert agent.skill_names == ["reach-v3", "push-v3"]


def test_extend_refuses_what_cannot_work(reach_run, tmp_path):
    with pytest.raises(ValueError, match="already in the stream"):
        extend_run(reach_run, tmp_path / "a", ["reach-v3"], log=lambda s: None)
    with pytest.raises(ValueError, match="unknown Metaworld task"):
        extend_run(reach_run, tmp_path / "b", ["fly-to-the-moon-v3"], log=lambda s: None)
    assert not (tmp_path / "b" / CHECKPOINT).exists()
    # an unfinished run must be finished first
    unfinished = tmp_path / "unfinished"
    Trainer(load_config("smoke", ["env.tasks=[reach-v3]"]), unfinished, log=lambda s: None).train(stop_after=50)
    with pytest.raises(ValueError, match="not finished"):
        extend_run(unfinished, tmp_path / "c", ["push-v3"], log=lambda s: None)
    # the progress total of an extended run counts the finished phases at their own length
    ext = extend_run(reach_run, tmp_path / "e", ["push-v3"], log=lambda s: None, steps_per_task=300)
    trainer = Trainer(None, ext, resume=True, log=lambda s: None)
    done_steps = _state(reach_run)["counters"]["step"]
    assert (trainer.step, trainer.total_steps) == (done_steps, done_steps + 300)
    # the CLI: one line, exit 2
    assert main(["--add-task", "push-v3"]) == 2
    assert main(["--steps-per-task", "10"]) == 2
    with pytest.raises(ValueError, match="positive integer"):
        extend_run(reach_run, tmp_path / "d", ["push-v3"], log=lambda s: None, steps_per_task=0)
    assert main(["--extend", str(reach_run), "--add-task", "push-v3", "--set", "sac.lr=1"]) == 2
    # --set with --extend: only the new tasks' entries of the per-task env maps
    with pytest.raises(ConfigError, match="'reach-v3' is not a task this --extend adds"):
        extend_run(reach_run, tmp_path / "f", ["push-v3"], log=lambda s: None,
                   overrides=["env.max_target_lead_m={reach-v3: 0.05}"])
    with pytest.raises(ConfigError, match="only the new tasks' entries"):
        extend_run(reach_run, tmp_path / "f", ["push-v3"], log=lambda s: None, overrides=["env.episode_length=50"])
    with pytest.raises(ConfigError, match="expected a positive number"):
        extend_run(reach_run, tmp_path / "f", ["push-v3"], log=lambda s: None,
                   overrides=["env.max_target_lead_m={push-v3: -1}"])
    assert not (tmp_path / "f" / CHECKPOINT).exists()


def test_extend_trains_the_new_task_under_its_own_target_lead_cap(reach_run, tmp_path):
    """``--set env.max_target_lead_m={NEW: m}`` with --extend: the new task's environments (training and
    evaluation) cap Metaworld's target lead, the earlier task's stay as they were trained."""
    out = tmp_path / "capped"
    assert main(["--extend", str(reach_run), "--add-task", "push-v3", "--steps-per-task", "100", "--out", str(out),
                 "--set", "env.max_target_lead_m={push-v3: 0.05}", "--set", "env.instructions={push-v3: shove the puck}",
                 "--no-progress"]) == 0
    state = _state(out)
    assert state["config"]["env"]["max_target_lead_m"] == {"push-v3": 0.05}
    assert state["instructions"][1] == "shove the puck"
    trainer = Trainer(None, out, resume=True, log=lambda s: None)
    assert [e.max_target_lead_m for e in trainer.envs] == [None, 0.05]
    assert [e.max_target_lead_m for e in trainer.eval_envs] == [None, 0.05]
    agent = load_agent(export_run(out, tmp_path / "agent"))
    assert agent.provenance["training_config"]["config"]["env"]["max_target_lead_m"] == {"push-v3": 0.05}
