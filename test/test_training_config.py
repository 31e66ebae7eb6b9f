"""Training configs: named YAMLs load, --set overrides are typed, mistakes name the key."""
from __future__ import annotations

import pytest

from legion_training.config import ConfigError, TrainConfig, config_from_dict, describe, load_config


def test_named_configs_load_and_differ_where_they_should():
    smoke, cpu, paper = (load_config(n) for n in ("smoke", "cpu", "paper"))
    assert smoke.env.tasks == ["reach-v3", "push-v3"]
    assert cpu.sac.batch_size == 256 and cpu.net.actor_hidden == [256, 256]
    assert paper.sac.batch_size == 512 and paper.net.actor_hidden == [300] * 4
    assert paper.net.encoder_hidden == [400] * 3 and paper.run.steps_per_task == 1_000_000
    assert len(paper.env.tasks) == 10 and paper.env.tasks[0] == "reach-v3"


def test_overrides_are_parsed_as_yaml_and_typed():
    cfg = load_config("smoke", ["sac.batch_size=48", "env.tasks=[push-v3]", "vae.beta=2e-3",
                                "language.enabled=false", "run.algorithm=mtsac"])
    assert cfg.sac.batch_size == 48 and isinstance(cfg.sac.batch_size, int)
    assert cfg.env.tasks == ["push-v3"] and cfg.vae.beta == 0.002
    assert cfg.language.enabled is False and cfg.run.algorithm == "mtsac"


@pytest.mark.parametrize("override,message", [
    ("sac.batchsize=3", "unknown key sac.batchsize"),
    ("sack.batch_size=3", "unknown section 'sack'"),
    ("sac.batch_size=big", "sac.batch_size: expected an integer"),
    ("sac.batch_size", "expected section.key=value"),
    ("run.algorithm=ppo", "run.algorithm='ppo'"),
    ("env.tasks=[reach-v3, reach-v3]", "duplicates"),
    ("sac.learning_starts=10", "learning_starts=10 < sac.batch_size"),
    ("env.reward_versions={reach-v3: v3}", "env.reward_versions['reach-v3']='v3': expected one of"),
    ("env.max_target_lead_m={reach-v3: 0}", "env.max_target_lead_m['reach-v3']=0: expected a positive number"),
    ("env.max_target_lead_m={reach-v3: far}", "env.max_target_lead_m['reach-v3']='far': expected a positive"),
])
def test_mistakes_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config("smoke", [override])


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError, match="no such file"):
        load_config("does/not/exist.yaml")


def test_round_trip_through_a_dict_and_every_field_documented():
    cfg = load_config("cpu", ["run.seed=7"])
    assert config_from_dict(cfg.to_dict()) == cfg
    text = describe()
    n_fields = sum(len(v) for v in TrainConfig().to_dict().values())
    entries = [line for line in text.splitlines() if line.startswith("  ")]
    assert len(entries) == n_fields
    assert all(len(line.split(": ", 1)) == 2 and line.split(": ", 1)[1].strip() for line in entries)


def test_named_configs_come_from_the_share_folders_config_training(tmp_path, monkeypatch):
    """A named config is looked up where the package's data is (legion_bridge.paths: the source tree here, the
    install's share/legion_bridge after colcon or pip; test_workstation runs it from a colcon install)."""
    from legion_policy import paths
    from legion_training.config import config_dir, load_config, resolve_config_path

    assert config_dir() == paths.config_path("training")
    assert resolve_config_path("cpu") == paths.share_dir() / "config" / "training" / "cpu.yaml"
    (tmp_path / "config" / "training").mkdir(parents=True)
    (tmp_path / "config" / "training" / "smoke.yaml").write_text("run:\n  seed: 17\n")
    monkeypatch.setenv("LEGION_SHARE_DIR", str(tmp_path))
    paths.share_dir.cache_clear()
    try:
        assert resolve_config_path("smoke") == tmp_path / "config" / "training" / "smoke.yaml"
        assert load_config("smoke").run.seed == 17
    finally:
        monkeypatch.delenv("LEGION_SHARE_DIR")
        paths.share_dir.cache_clear()
