"""Where the installed ROS package's data lives: share/legion_bridge after colcon, the repository otherwise.

The ROS 2 package (package.xml) is named ``legion_bridge`` and installs launch/, urdf/, config/ and
agents/ into its share folder; all three Python packages ship inside it. The lookup lives here, at
the bottom of the import graph (legion_training -> legion_bridge -> legion_policy), so that the
policy and sequencer nodes find the shipped agent and sequences without importing legion_bridge;
``legion_bridge.paths`` re-exports it.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

#: The ROS 2 package (package.xml) whose share folder holds the data; also the Python distribution's name.
PACKAGE = "legion_bridge"
_REPO_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The folder holding launch/, urdf/, config/ and agents/.

    ``LEGION_SHARE_DIR`` overrides; an editable/source checkout uses the repository
    root; an installed package (colcon, wheel) uses ament's share/legion_bridge.
    """
    env = os.environ.get("LEGION_SHARE_DIR")
    if env:
        return Path(env)
    if (_REPO_ROOT / "package.xml").is_file() and (_REPO_ROOT / "config").is_dir():
        return _REPO_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # PackageNotFoundError, or ament_index missing
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share folder (config/, urdf/, agents/): not a source checkout "
            f"and ament index lookup failed ({exc}); set LEGION_SHARE_DIR") from None


def config_path(*parts: str) -> Path:
    """A path under the share folder's config/ (parameter files, sequences)."""
    return share_dir().joinpath("config", *parts)


def urdf_path(*parts: str) -> Path:
    """A path under the share folder's urdf/."""
    return share_dir().joinpath("urdf", *parts)


def agents_path(*parts: str) -> Path:
    """A path under the share folder's agents/."""
    return share_dir().joinpath("agents", *parts)


def default_agent_path() -> Path:
    """The shipped default frozen agent."""
    return agents_path("default")


def resolve_sequence_path(name: str) -> Path:
    """A sequence file as given, else under the package's config/ or config/sequences/.

    The name is returned unchanged when neither exists (or the share folder cannot be found):
    whoever opens it reports the missing file.
    """
    p = Path(name)
    if p.is_file() or p.is_absolute():
        return p
    try:
        for cand in (config_path(name), config_path("sequences", name)):
            if cand.is_file():
                return cand
    except FileNotFoundError:
        pass
    return p
