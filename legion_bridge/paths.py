"""Where the package's data lives: share/legion_bridge after colcon, the repository otherwise."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

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
    return share_dir().joinpath("config", *parts)


def urdf_path(*parts: str) -> Path:
    return share_dir().joinpath("urdf", *parts)


def agents_path(*parts: str) -> Path:
    return share_dir().joinpath("agents", *parts)


def default_agent_path() -> Path:
    """The shipped default frozen agent."""
    return agents_path("default")
