"""real2sim emits the layout of the agent it serves (read from the agent's manifest)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from legion_policy.agent_format import AgentFormatError, init_random_agent, read_agent_layout
from legion_policy.observation_layout import COMPACT12, METAWORLD39

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("layout", [COMPACT12, METAWORLD39])
def test_the_layout_comes_from_the_manifest(tmp_path, layout):
    init_random_agent(tmp_path / "agent", ["reach-v3"], layout=layout.name, seed=0)
    assert read_agent_layout(tmp_path / "agent") == layout


def test_a_tampered_manifest_is_refused(tmp_path):
    init_random_agent(tmp_path / "agent", ["reach-v3"], layout="compact12", seed=0)
    manifest = tmp_path / "agent" / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace("compact12", "metaworld39"))
    with pytest.raises(AgentFormatError, match="checksum mismatch"):
        read_agent_layout(tmp_path / "agent")


@pytest.mark.ros
def test_the_real2sim_process_refuses_a_corrupt_agent_with_one_line(tmp_path):
    init_random_agent(tmp_path / "agent", ["reach-v3"], layout="compact12", seed=0)
    (tmp_path / "agent" / "weights.safetensors").chmod(0o644)
    with open(tmp_path / "agent" / "weights.safetensors", "ab") as f:
        f.write(b"\0")
    exe = Path(sys.executable).parent / "legion_real2sim"
    proc = subprocess.run([str(exe), "--ros-args", "--params-file", str(ROOT / "config" / "topics.yaml"),
                           "--params-file", str(ROOT / "config" / "real2sim.yaml"),
                           "--params-file", str(ROOT / "config" / "calibration.yaml"),
                           "-p", f"agent_path:={tmp_path / 'agent'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "real2sim: agent" in proc.stderr and "checksum mismatch: weights.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr
