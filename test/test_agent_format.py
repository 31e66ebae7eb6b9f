"""Frozen agent format: round trip, development export, and every corrupt-agent case rejected
by load_agent and by `legion-agent validate` with the right one-line reason."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from legion_policy import agent_cli
from legion_policy.agent_format import (CHECKSUMS_FILE, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE,
                                        AgentFormatError, SkillSpec, describe_agent, init_random_agent,
                                        load_agent, save_agent, validate_agent, write_checksums)
from legion_policy.networks import DeployedPolicy, NetworkConfig
from legion_policy.observation_layout import ACTION_SPEC, METAWORLD39

#: Small widths keep the tests fast; the format does not depend on them.
SMALL = NetworkConfig(obs_dim=METAWORLD39.size, embedding_dim=384, latent_dim=10,
                      encoder_hidden=(32, 32), actor_hidden=(24, 24))
SKILLS = ("reach-v3", "push-v3", "button-press-topdown-v3")


def _unit(rng, n=384):
    v = rng.normal(size=n).astype(np.float32)
    return v / np.linalg.norm(v)


def make_agent(path: Path, seed: int = 0) -> tuple[Path, DeployedPolicy, dict]:
    torch.manual_seed(seed)
    policy = DeployedPolicy(SMALL).eval()
    rng = np.random.default_rng(seed)
    embs = {s: _unit(rng) for s in SKILLS}
    save_agent(path, policy, METAWORLD39,
               [SkillSpec(s, instruction=f"do {s}", embedding=embs[s]) for s in SKILLS],
               training_config={"steps": 10, "lr": 3e-4}, evaluation={"push-v3": {"success_rate": 0.5,
                                                                                   "episodes": 10}})
    return path, policy, embs


@pytest.fixture(scope="module")
def good_agent(tmp_path_factory):
    return make_agent(tmp_path_factory.mktemp("agents") / "good")


@pytest.fixture
def agent_copy(good_agent, tmp_path):
    dst = tmp_path / "agent"
    shutil.copytree(good_agent[0], dst)
    return dst


def test_round_trip_is_bit_identical(good_agent):
    path, policy, embs = good_agent
    agent = load_agent(path)
    assert agent.layout == METAWORLD39 and agent.action_spec == ACTION_SPEC
    assert agent.network_config == SMALL and agent.skill_names == list(SKILLS)
    for key, ref in policy.state_dict().items():
        assert torch.equal(agent.policy.state_dict()[key], ref), key
    for s in agent.skills:
        assert np.array_equal(s.embedding, embs[s.name])
        assert s.success_predicate == s.name
    assert agent.skill("button-press-topdown-v3").binding.quat_order == "wxyz"
    obs = torch.from_numpy(np.random.default_rng(1).normal(size=(64, METAWORLD39.size)).astype(np.float32))
    e = torch.from_numpy(embs["push-v3"]).expand(64, -1)
    assert torch.equal(agent.policy(obs, e), policy(obs, e))
    prov = agent.provenance
    assert prov["training_config"] == {"steps": 10, "lr": 3e-4} and prov["code_version"]
    # every file is covered by the checksum file
    sums = (path / CHECKSUMS_FILE).read_text()
    assert MANIFEST_FILE in sums and WEIGHTS_FILE in sums


def test_weights_file_is_safetensors_not_pickle(good_agent):
    head = (good_agent[0] / WEIGHTS_FILE).read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")   # pickle / torch zip
    n = int.from_bytes(head[:8], "little")
    header = json.loads((good_agent[0] / WEIGHTS_FILE).read_bytes()[8:8 + n])
    assert "policy.actor.head.weight" in header and "skill_embedding.push-v3" in header


def test_inspect_and_validate_cli(good_agent, capsys):
    assert agent_cli.main(["validate", str(good_agent[0])]) == 0
    assert "OK" in capsys.readouterr().out
    assert agent_cli.main(["inspect", str(good_agent[0])]) == 0
    out = capsys.readouterr().out
    for expected in ("metaworld39", "push-v3", "do push-v3", "success_rate", "0.5", "weights.safetensors"):
        assert expected in out
    assert describe_agent(load_agent(good_agent[0])).count("\n") > 10


def test_save_refuses_to_overwrite_and_bad_embedding(good_agent, tmp_path):
    with pytest.raises(FileExistsError):
        make_agent(good_agent[0])
    with pytest.raises(ValueError, match="embedding has 10 values"):
        save_agent(tmp_path / "x", DeployedPolicy(SMALL), METAWORLD39,
                   [SkillSpec("push-v3", "push", np.ones(10, np.float32))])
    assert not (tmp_path / "x").exists()


# --- corrupt agents -------------------------------------------------------------------------


def _edit_manifest(path: Path, edit, resum: bool = True) -> None:
    m = json.loads((path / MANIFEST_FILE).read_text())
    edit(m)
    (path / MANIFEST_FILE).write_text(json.dumps(m))
    if resum:
        write_checksums(path)


def _edit_weights(path: Path, edit) -> None:
    from safetensors.torch import load_file, save_file
    t = load_file(str(path / WEIGHTS_FILE))
    edit(t)
    save_file(t, str(path / WEIGHTS_FILE))
    write_checksums(path)


def _flip_byte(path: Path) -> None:
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-5] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))


def _pickle_weights(path: Path) -> None:
    torch.save(DeployedPolicy(SMALL).state_dict(), path / WEIGHTS_FILE)
    write_checksums(path)


def _layout_field(m):
    m["observation_layout"]["fields"][-1]["size"] = 2
    m["observation_layout"]["size"] = 38


def _widen_second_actor_layer(m):
    m["network"]["config"]["actor_hidden"][1] += 8


def _drop_encoder_layer(m):
    m["network"]["config"]["encoder_hidden"] = m["network"]["config"]["encoder_hidden"][:1]


def _set(keys, value):
    def edit(m):
        d = m
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


CORRUPT_CASES = {
    "no directory": (lambda p: shutil.rmtree(p), r"^missing file: agent directory"),
    "no manifest": (lambda p: (p / MANIFEST_FILE).unlink(), r"^missing file: manifest\.json"),
    "no weights": (lambda p: (p / WEIGHTS_FILE).unlink(), r"^missing file: weights\.safetensors"),
    "no checksums": (lambda p: (p / CHECKSUMS_FILE).unlink(), r"^missing file: SHA256SUMS"),
    "weights byte flipped": (_flip_byte, r"^checksum mismatch: weights\.safetensors"),
    "manifest edited, sums not": (lambda p: _edit_manifest(p, _set(["control_period_s"], 0.02), resum=False),
                                  r"^checksum mismatch: manifest\.json"),
    "garbled checksum file": (lambda p: (p / CHECKSUMS_FILE).write_text("nonsense\n"),
                              r"^checksum mismatch: SHA256SUMS line 1"),
    "unknown format version": (lambda p: _edit_manifest(p, _set(["format_version"], FORMAT_VERSION + 98)),
                               r"^unknown format version 99 "),
    "not a legion agent": (lambda p: _edit_manifest(p, _set(["format"], "other")), r"^unknown format: 'other'"),
    "manifest not json": (lambda p: ((p / MANIFEST_FILE).write_text("{oops"), write_checksums(p)),
                          r"^invalid manifest: manifest\.json is not JSON"),
    "unknown layout": (lambda p: _edit_manifest(p, _set(["observation_layout", "name"], "metaworld40")),
                       r"^layout mismatch: unknown observation layout 'metaworld40'"),
    "layout fields differ": (lambda p: _edit_manifest(p, _layout_field),
                             r"^layout mismatch: layout 'metaworld39' does not match"),
    "layout vs network obs_dim": (lambda p: _edit_manifest(p, _set(["observation_layout"],
                                                                   {"name": "compact12", **_compact()})),
                                  r"^shape mismatch: network obs_dim 39 != layout 'compact12' size 12"),
    "action spec": (lambda p: _edit_manifest(p, _set(["action_spec", "position_scale"], 0.02)),
                    r"^shape mismatch: action spec"),
    "declared widths differ": (lambda p: _edit_manifest(p, _widen_second_actor_layer),
                               r"^weights do not match the declared architecture: actor\.trunk\.3\.weight has shape"),
    "declared depth differs": (lambda p: _edit_manifest(p, _drop_encoder_layer),
                               r"^weights do not match the declared architecture: unexpected"),
    "tensor missing": (lambda p: _edit_weights(p, lambda t: t.pop("policy.actor.head.bias")),
                       r"^weights do not match the declared architecture: missing \['actor\.head\.bias'\]"),
    "stray tensor": (lambda p: _edit_weights(p, lambda t: t.__setitem__("extra", torch.zeros(3))),
                     r"^weights do not match the declared architecture: unexpected tensors \['extra'\]"),
    "float64 tensor": (lambda p: _edit_weights(p, lambda t: t.__setitem__(
        "policy.actor.head.bias", t["policy.actor.head.bias"].double())), r"actor\.head\.bias is torch\.float64"),
    "nan weights": (lambda p: _edit_weights(p, lambda t: t["policy.actor.head.bias"].fill_(float("nan"))),
                    r"actor\.head\.bias has NaN"),
    "pickle instead of safetensors": (_pickle_weights, r"^weights do not load: weights\.safetensors is not a valid"),
    "embedding missing": (lambda p: _edit_weights(p, lambda t: t.pop("skill_embedding.push-v3")),
                          r"embedding 'skill_embedding\.push-v3' of skill 'push-v3' is not in"),
    "embedding wrong size": (lambda p: _edit_weights(p, lambda t: t.__setitem__("skill_embedding.push-v3",
                                                                                   torch.ones(10) / 10 ** 0.5)),
                             r"^shape mismatch: embedding of skill 'push-v3' has shape \(10,\)"),
    "unknown predicate": (lambda p: _edit_manifest(p, _set(["skills", 0, "success_predicate"], {"task": "fly-v3"})),
                          r"unknown success predicate 'fly-v3'"),
}


def _compact():
    from legion_policy.observation_layout import COMPACT12
    return {k: v for k, v in COMPACT12.to_dict().items() if k != "name"}


@pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
def test_corrupt_agent_is_rejected_with_the_right_reason(case, agent_copy, capsys):
    corrupt, pattern = CORRUPT_CASES[case]
    corrupt(agent_copy)
    with pytest.raises(AgentFormatError) as info:
        load_agent(agent_copy)
    reason = str(info.value)
    assert "\n" not in reason
    assert __import__("re").search(pattern, reason), reason
    assert validate_agent(agent_copy) == reason
    capsys.readouterr()
    assert agent_cli.main(["validate", str(agent_copy)]) == agent_cli.EXIT_INVALID
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(reason)


def test_development_export_with_real_embeddings(tmp_path, capsys):
    from legion_policy.language import embed
    out = tmp_path / "random"
    assert agent_cli.main(["init-random", str(out), "--skills", "reach-v3,push-v3", "--seed", "3"]) == 0
    agent = load_agent(out)
    assert agent.network_config == NetworkConfig(obs_dim=39, embedding_dim=384)   # the deployed widths
    assert np.allclose(agent.skill("push-v3").embedding, embed("push the puck to the goal")[0], atol=1e-6)
    assert agent.provenance["training_config"]["trained"] is False
    # same seed -> same weights; different seed -> different weights
    again = init_random_agent(tmp_path / "again", ["reach-v3", "push-v3"], seed=3)
    other = init_random_agent(tmp_path / "other", ["reach-v3", "push-v3"], seed=4)
    w = lambda a: load_agent(a).policy.state_dict()["actor.head.weight"]  # noqa: E731
    assert torch.equal(w(out), w(again)) and not torch.equal(w(out), w(other))
    assert agent_cli.main(["init-random", str(out)]) == agent_cli.EXIT_USAGE     # exists
    assert "exists" in capsys.readouterr().err
