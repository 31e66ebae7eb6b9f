"""Where the package's data lives: share/legion_bridge after colcon, the repository otherwise.

The lookup itself is :mod:`legion_policy.paths` (the policy nodes need it, and legion_policy never
imports legion_bridge); this module re-exports it for the bridge, the launchers and the tools.
"""
from __future__ import annotations

from legion_policy.paths import PACKAGE, agents_path, config_path, default_agent_path, share_dir, urdf_path

__all__ = ["PACKAGE", "agents_path", "config_path", "default_agent_path", "share_dir", "urdf_path"]
