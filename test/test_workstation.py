"""What a ROS 2 user runs, run for real: colcon build, rosdep, the pip step, ros2 pkg/launch/run.

The upstream launch, launch_ros, ros2cli, colcon and rosdep come from ../shared/tools
(`make test` installs them into .venv with ``install-ros2-tools.sh``). Where they are not
installed every test here is skipped with the reason (a user's clone without ../shared/tools).

A colcon workspace holding this package is built once per session; every command then runs
from its install tree (``source install/setup.bash``), exactly as on a workstation: the nodes'
code and share/legion_bridge (launch, config, urdf, the shipped agent) come from there.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from legion_bridge import graph as graph_mod

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("LEGION_ROS2_TOOLS") or ROOT.parent / "shared" / "tools")
VENV_BIN = Path(sys.executable).parent
NODE_EXECUTABLES = sorted({n.executable for n in graph_mod.NODES})
CLI_EXECUTABLES = ["legion-agent", "legion-demo", "legion-launch", "legion-robot", "legion-train"]
#: Each ROS 2 distro on the Ubuntu release it targets (REP 2000).
DISTRO_PLATFORMS = [("humble", "jammy"), ("jazzy", "noble"), ("kilted", "noble")]


def _tools_missing() -> str:
    if not (TOOLS / "install-ros2-tools.sh").is_file():
        return f"ROS 2 workstation tools not available ({TOOLS}/install-ros2-tools.sh not found)"
    for exe in ("ros2", "colcon", "rosdep"):
        if not (VENV_BIN / exe).is_file():
            return f"`{exe}` is not installed in {VENV_BIN.parent} (run `make ros2-tools`)"
    return ""


pytestmark = [pytest.mark.workstation, pytest.mark.ros,
              pytest.mark.skipif(bool(_tools_missing()), reason=_tools_missing() or "tools present")]


# --- the workspace --------------------------------------------------------------------------------


def _copy_package(dest: Path) -> None:
    """The package as a clone holds it (tracked and untracked-but-not-ignored files)."""
    dest.mkdir(parents=True)
    if (ROOT / ".git").exists():
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            src = ROOT / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".venv", "runs", "build", "install", "log", "__pycache__", ".pytest_cache"))


def _env() -> dict:
    """A shell with the venv activated (what README's workstation section assumes)."""
    env = os.environ.copy()
    env.pop("LEGION_SHARE_DIR", None)
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sourced(ws: Path, command: str) -> list[str]:
    """``command`` in a bash that sourced the workspace's install/setup.bash."""
    return ["bash", "-c", f"source {ws}/install/setup.bash && exec {command}"]


def run(ws: Path, command: str, timeout: float = 120.0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(sourced(ws, command), cwd=cwd or ws, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def colcon_build(ws: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["colcon", "build", "--packages-select", "legion_bridge", *extra], cwd=ws, env=_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("legion_ws")
    _copy_package(ws / "src" / "legion_bridge")
    built = colcon_build(ws)
    assert built.returncode == 0, built.stdout + built.stderr
    return ws


def share(ws: Path) -> Path:
    return ws / "install" / "legion_bridge" / "share" / "legion_bridge"


class Launch:
    """``ros2 launch`` (or any sourced command) as a process whose output goes to a file."""

    def __init__(self, ws: Path, command: str, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(sourced(ws, command), cwd=ws, env=_env(), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output)
            if m or self.proc.poll() is not None:
                return m or re.search(pattern, self.output)
            time.sleep(0.2)
        return None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def pids(self) -> dict[str, int]:
        """Node executable -> pid, from launch's 'process started with pid' lines."""
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"\[INFO\] \[(legion_\w+)-\d+\]: process started with pid \[(\d+)\]", self.output)}

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in self.pids().values():  # nothing of the graph may outlive its launch
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


# --- colcon and the install tree ------------------------------------------------------------------


def _check_install_tree(ws: Path) -> None:
    sh = share(ws)
    for rel in ("package.xml", "launch/real_robot.launch.py", "launch/sim_robot.launch.py", "config/topics.yaml",
                "config/calibration.yaml", "config/modes/real.yaml", "config/sequences/workbench.yaml",
                "config/training/smoke.yaml", "config/training/cpu.yaml", "config/training/paper.yaml",
                "urdf/iiwa7.urdf", "urdf/iiwa14.urdf", "agents/default/manifest.json",
                "agents/default/weights.safetensors", "agents/default/SHA256SUMS"):
        assert (sh / rel).is_file(), f"share/legion_bridge/{rel} missing from the install tree"
    lib = ws / "install" / "legion_bridge" / "lib" / "legion_bridge"
    for exe in NODE_EXECUTABLES + CLI_EXECUTABLES:
        assert os.access(lib / exe, os.X_OK), f"lib/legion_bridge/{exe} missing or not executable"
    listed = run(ws, "ros2 pkg executables legion_bridge")
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[1] for line in listed.stdout.splitlines()} >= set(NODE_EXECUTABLES + CLI_EXECUTABLES)
    prefix = run(ws, "ros2 pkg prefix legion_bridge")
    assert Path(prefix.stdout.strip()) == ws / "install" / "legion_bridge"


def test_colcon_build_installs_launch_config_urdf_agent_and_every_node(workspace):
    _check_install_tree(workspace)
    urdfs = sorted(p.name for p in (workspace / "src/legion_bridge/urdf").glob("*.urdf"))
    assert urdfs == sorted(p.name for p in (share(workspace) / "urdf").glob("*.urdf"))


def test_colcon_symlink_install_links_the_share_files_to_the_sources(tmp_path):
    ws = tmp_path / "ws"
    _copy_package(ws / "src" / "legion_bridge")
    built = colcon_build(ws, "--symlink-install")
    assert built.returncode == 0, built.stdout + built.stderr
    _check_install_tree(ws)
    launch_file = share(ws) / "launch" / "sim_robot.launch.py"
    assert launch_file.is_symlink()
    assert launch_file.resolve() == (ws / "src/legion_bridge/launch/sim_robot.launch.py").resolve()


def test_a_named_training_config_resolves_from_the_install_tree_alone(workspace, tmp_path):
    """`legion-train --config cpu` on a workstation: the install tree's legion_training finds config/training/cpu.yaml
    in share/legion_bridge (ament index), with no source tree importable and LEGION_SHARE_DIR unset (it used to
    look beside the Python package, where no install puts the configs)."""
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and not Path(p).resolve().is_relative_to(ROOT))
    code = ("import legion_training.config as c, legion_policy.paths as p; "
            "print(c.__file__); print(c.resolve_config_path('cpu')); print(c.load_config('cpu').run.seed)")
    done = subprocess.run(sourced(workspace, f"python3 -c \"{code}\""), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    module, path, _seed = done.stdout.split()
    install = workspace / "install" / "legion_bridge"
    assert Path(module).is_relative_to(install), f"legion_training imported from {module}, not the install tree"
    assert Path(path) == share(workspace) / "config" / "training" / "cpu.yaml"


def test_the_workstation_pip_step_is_satisfied_by_the_pinned_environment(workspace):
    """README's pip step, offline: every requirement of requirements/workstation.txt is there at its pin."""
    src = workspace / "src" / "legion_bridge"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "-c",
                           str(src / "requirements/constraints.txt"), "-r", str(src / "requirements/workstation.txt")],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully installed" not in done.stdout


# --- rosdep ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rosdep_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("rosdep")
    out = subprocess.run([str(TOOLS / "install-ros2-tools.sh"), "--rosdep-env", str(home)], capture_output=True,
                         text=True, check=True).stdout
    env = _env()
    for item in out.replace("export ", "").split():
        key, value = item.split("=", 1)
        env[key] = value
    updated = subprocess.run(["rosdep", "update"], env=env, capture_output=True, text=True, timeout=300)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    return env


@pytest.mark.parametrize("distro,os_name", DISTRO_PLATFORMS)
def test_rosdep_resolves_every_key_of_package_xml(rosdep_env, distro, os_name):
    done = subprocess.run(["rosdep", "install", "--from-paths", str(ROOT), "--ignore-src", "--simulate", "-y",
                           "--rosdistro", distro, "--os", f"ubuntu:{os_name}"],
                          env=rosdep_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stdout + done.stderr
    assert f"ros-{distro}-launch-ros" in done.stdout and f"ros-{distro}-rclpy" in done.stdout


def test_rosdep_resolves_the_system_python_keys_on_jammy_and_noble(rosdep_env):
    keys = subprocess.run(["rosdep", "keys", "--from-paths", str(ROOT)], env=rosdep_env, capture_output=True,
                          text=True, check=True).stdout.split()
    python_keys = sorted(k for k in keys if k.startswith("python3-"))
    assert python_keys and not [k for k in python_keys if k.endswith("-pip") and k != "python3-pip"]
    for os_name in ("jammy", "noble"):
        done = subprocess.run(["rosdep", "resolve", *python_keys, "--rosdistro", "jazzy", "--os", f"ubuntu:{os_name}"],
                              env=rosdep_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


# --- ros2 launch -----------------------------------------------------------------------------------


def _arguments(text: str) -> dict[str, tuple[str, str]]:
    """`--show-args` output -> name: (description, default)."""
    out = {}
    for m in re.finditer(r"^    '(\w+)':\n((?:        .*\n)+)", text, re.M):
        body = [line.strip() for line in m.group(2).splitlines()]
        default = re.match(r"\(default: '(.*)'\)", body[-1])
        out[m.group(1)] = (" ".join(body[:-1]), default.group(1) if default else None)
    return out


@pytest.mark.parametrize("mode", graph_mod.MODES)
def test_show_args_lists_every_argument_with_description_and_default(workspace, mode):
    done = run(workspace, f"ros2 launch legion_bridge {mode}_robot.launch.py --show-args")
    assert done.returncode == 0, done.stderr
    args = _arguments(done.stdout)
    assert set(args) == {a.name for a in graph_mod.LAUNCH_ARGS}
    for a in graph_mod.LAUNCH_ARGS:
        description, default = args[a.name]
        assert description == " ".join(a.description.split())
        expected = a.default(mode) or (str(share(workspace) / "config" / a.parameter) if a.kind == "params_file" else "")
        if a.name == "agent":
            expected = str(share(workspace) / "agents" / "default")
        assert default == expected, a.name


def test_sim_launch_without_arguments_runs_the_default_sequence_to_success(workspace, tmp_path):
    launch = Launch(workspace, "ros2 launch legion_bridge sim_robot.launch.py", tmp_path / "launch.log")
    try:
        rc = launch.wait(timeout=300)
    finally:
        launch.close()
    out = launch.output
    assert rc == 0, out[-4000:]
    assert "sequence 'workbench-tidy': SUCCEEDED" in out
    assert "sequencer finished (exit code 0)" in out
    assert f"agent {share(workspace) / 'agents' / 'default'}" in out   # the installed agent, not the sources'
    assert "Traceback" not in out


def test_sim_launch_arguments_reach_the_graph(workspace, tmp_path):
    """robot_model, command_interface, scene, sequence, seed, use_sim_time and report_dir in one launch."""
    report = tmp_path / "report"
    launch = Launch(workspace, "ros2 launch legion_bridge sim_robot.launch.py robot_model:=iiwa14 "
                               "command_interface:=position scene:=tabletop sequence:=tabletop_reach.yaml seed:=2 "
                               f"use_sim_time:=true report_dir:={report}", tmp_path / "launch.log")
    try:
        rc = launch.wait(timeout=240)
    finally:
        launch.close()
    out = launch.output
    assert rc == 0, out[-4000:]
    assert re.search(r"\[sim2real\]: sim2real: iiwa14, position commands", out), out[-3000:]
    assert re.search(r"\[real2sim\]: real2sim: iiwa14", out)
    assert re.search(r"\[sim_arm\]: sim_arm: scene tabletop, seed 2, robot iiwa14", out), out[-3000:]
    result = json.loads((report / "report.json").read_text())
    assert result["status"] == "succeeded" and [s["skill"] for s in result["steps"]] == ["reach-v3"]


def test_sim_launch_with_a_task_runs_that_task_instead_of_the_default_sequence(workspace, tmp_path):
    report = tmp_path / "report"
    launch = Launch(workspace, f"ros2 launch legion_bridge sim_robot.launch.py task:=reach-v3 scene:=reach-v3 "
                               f"report_dir:={report}", tmp_path / "launch.log")
    try:
        rc = launch.wait(timeout=240)
    finally:
        launch.close()
    assert rc == 0, launch.output[-4000:]
    result = json.loads((report / "report.json").read_text())
    assert result["status"] == "succeeded" and [s["skill"] for s in result["steps"]] == ["reach-v3"]


def test_sim_launch_with_enable_false_holds_until_an_operator_enables(workspace, tmp_path):
    import rclpy.node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    from legion_policy.ros_io import COMMAND_QOS
    from rosutil import ros_context, spin_until

    launch = Launch(workspace, "ros2 launch legion_bridge sim_robot.launch.py enable:=false "
                               "sequence:=tabletop_reach.yaml", tmp_path / "launch.log")
    try:
        assert launch.wait_for(r"\[sequencer\]: policy is publishing actions", 120), launch.output[-3000:]
        with ros_context() as (ctx, executor):
            node = rclpy.node.Node("operator", context=ctx)
            executor.add_node(node)
            seen: list[list[float]] = []
            node.create_subscription(JointState, "/joint_states", lambda m: seen.append(list(m.position)), 10)
            assert spin_until(executor, lambda: len(seen) > 50, 20)
            first = seen[-1]
            spin_until(executor, lambda: False, 3.0)  # disabled: the policy acts, the arm must not move
            assert max(abs(a - b) for a, b in zip(first, seen[-1])) < 1e-3
            # what `ros2 topic pub --once /legion/enable std_msgs/msg/Bool "data: true"` publishes (volatile QoS)
            pub = node.create_publisher(Bool, "/legion/enable", COMMAND_QOS)
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10)
            pub.publish(Bool(data=True))
            spin_until(executor, lambda: launch.proc.poll() is not None, 120)
            assert max(abs(a - b) for a, b in zip(first, seen[-1])) > 1e-2  # enabled: it moved
        rc = launch.wait(timeout=30)
    finally:
        launch.close()
    assert rc == 0, launch.output[-4000:]
    assert "sequence 'tabletop-reach': SUCCEEDED" in launch.output


def _diagnostics(executor, node, name: str, predicate, timeout: float):
    from diagnostic_msgs.msg import DiagnosticArray

    from rosutil import spin_until

    found = []
    sub = node.create_subscription(DiagnosticArray, "/diagnostics",
                                   lambda m: found.extend(s for s in m.status if s.name == name and predicate(s)), 10)
    spin_until(executor, lambda: bool(found), timeout)
    node.destroy_subscription(sub)
    return found


def test_real_launch_without_arguments_comes_up_idle_disabled_and_stops_on_sigint(workspace, tmp_path):
    import rclpy.node

    from rosutil import ros_context

    launch = Launch(workspace, "ros2 launch legion_bridge real_robot.launch.py", tmp_path / "launch.log")
    try:
        assert launch.wait_for(r"\[policy\]: agent .*active: idle", 120), launch.output[-3000:]
        with ros_context() as (ctx, executor):
            node = rclpy.node.Node("operator", context=ctx)
            executor.add_node(node)
            waiting = _diagnostics(executor, node, "real2sim",
                                   lambda s: "waiting for /joint_states" in s.message, 20)
            assert waiting, launch.output[-3000:]
            sim2real = _diagnostics(executor, node, "sim2real", lambda s: True, 20)
            assert sim2real and {kv.key: kv.value for kv in sim2real[-1].values}.get("enabled") == "False"
        assert launch.proc.poll() is None
        started = set(launch.pids())
        assert started == {n.executable for n in graph_mod.graph("real")
                           if not n.runs_if}, started  # no sequencer, no recorder
        assert "process has died" not in launch.output and "exited with code" not in launch.output
        os.killpg(launch.proc.pid, signal.SIGINT)
        rc = launch.wait(timeout=30)
    finally:
        launch.close()
    out = launch.output
    assert rc == 0, out[-3000:]
    assert out.count("process has finished cleanly") == len(started), out[-3000:]
    assert "Traceback" not in out


def test_a_required_node_that_dies_ends_launch_non_zero_naming_it(workspace, tmp_path):
    launch = Launch(workspace, "ros2 launch legion_bridge real_robot.launch.py", tmp_path / "launch.log")
    try:
        assert launch.wait_for(r"\[policy\]: agent .*active: idle", 120), launch.output[-3000:]
        os.kill(launch.pids()["legion_policy_node"], signal.SIGKILL)
        rc = launch.wait(timeout=30)
    finally:
        launch.close()
    out = launch.output
    assert rc != 0
    assert "required node policy exited with code -9" in out, out[-3000:]
    assert "finished (exit code 0)" not in out


def test_an_operator_drives_the_real_graph_one_instruction_then_one_sequence(workspace, tmp_path):
    """The real launch without a sequence, sim_arm standing in for the driver: a task published as
    `ros2 topic pub` does (no binding) runs the skill with its default binding; then a sequencer
    started with `ros2 run` against the running graph runs its sequence and exits 0."""
    import json as _json

    import rclpy.node
    from std_msgs.msg import Bool, String

    from legion_policy.ros_io import COMMAND_QOS
    from rosutil import ros_context, spin_until

    cfg = share(workspace) / "config"
    driver = Launch(workspace, "ros2 run legion_bridge legion_sim_arm --ros-args -r __node:=sim_arm "
                               f"--params-file {cfg}/topics.yaml --params-file {cfg}/sim_arm.yaml "
                               f"--params-file {cfg}/calibration.yaml -p scene:=drawer-close-v3",
                    tmp_path / "sim_arm.log")
    launch = Launch(workspace, "ros2 launch legion_bridge real_robot.launch.py use_sim_time:=true",
                    tmp_path / "launch.log")
    sequence = tmp_path / "hover.yaml"
    sequence.write_text("name: hover\nsteps:\n  - skill: move-to\n    binding: {goal: [0.0, 0.6, 0.25]}\n")
    try:
        assert launch.wait_for(r"\[policy\]: agent .*active: idle", 120), launch.output[-3000:]
        with ros_context() as (ctx, executor):
            node = rclpy.node.Node("operator", context=ctx)
            executor.add_node(node)
            success: list[dict] = []
            node.create_subscription(String, "/sim/success", lambda m: success.append(_json.loads(m.data)), 10)
            task_pub = node.create_publisher(String, "/legion/task", COMMAND_QOS)
            enable_pub = node.create_publisher(Bool, "/legion/enable", COMMAND_QOS)
            assert spin_until(executor, lambda: task_pub.get_subscription_count() > 0
                              and enable_pub.get_subscription_count() > 0, 20)
            task_pub.publish(String(data="close the drawer"))
            assert launch.wait_for(r"no binding for drawer-close-v3: published its default binding", 20), \
                launch.output[-3000:]
            enable_pub.publish(Bool(data=True))
            assert spin_until(executor, lambda: bool(success) and success[-1]["tasks"]["drawer-close-v3"]["success"],
                              90), (success[-1:] or "no /sim/success", launch.output[-3000:])
        seq = run(workspace, f"ros2 run legion_bridge legion_sequencer --ros-args -p sequence_file:={sequence} "
                             "-p use_sim_time:=true", timeout=180)
        assert seq.returncode == 0, seq.stdout[-3000:] + seq.stderr[-3000:]
        assert "sequence 'hover': SUCCEEDED" in seq.stdout
        assert launch.proc.poll() is None  # the graph stays up after the operator's sequence
    finally:
        launch.close()
        driver.close()


@pytest.mark.skipif(importlib.util.find_spec("rosidl_runtime_py") is None,
                    reason="rosidl_runtime_py (needed by `ros2 topic pub/echo`) is not in ../shared/tools nor on the "
                           "package registry; the same QoS is exercised by the operator tests above")
def test_ros2_topic_pub_reaches_the_policy(workspace, tmp_path):
    launch = Launch(workspace, "ros2 launch legion_bridge real_robot.launch.py", tmp_path / "launch.log")
    try:
        assert launch.wait_for(r"\[policy\]: agent .*active: idle", 120)
        done = run(workspace, "ros2 topic pub --once /legion/task std_msgs/msg/String \"data: 'close the drawer'\"",
                   timeout=60)
        assert done.returncode == 0, done.stderr
        assert launch.wait_for(r"task 'close the drawer' -> skill drawer-close-v3", 20)
    finally:
        launch.close()


# --- ros2 run with bad input -------------------------------------------------------------------------


#: The installed calibration file (what the launch files pass to real2sim and sim2real).
CALIBRATION = "$(ros2 pkg prefix legion_bridge)/share/legion_bridge/config/calibration.yaml"
BAD_INPUT = [
    ("legion_sim_arm", "-p robot_model:=iiwa99", "iiwa99"),
    ("legion_sim_arm", "-p scene:=no-such-task-v3", "no-such-task-v3"),
    ("legion_real2sim", "--params-file {calibration} -p agent_path:=/nonexistent/agent", "/nonexistent/agent"),
    ("legion_real2sim", "", "required parameter 'sim_from_base_xyz' is not set: pass the calibration file"),
    ("legion_sim2real", "--params-file {calibration} -p command_interface:=velocity", "velocity"),
    ("legion_sim2real", "", "required parameter 'sim_from_base_xyz' is not set: pass the calibration file"),
    ("legion_policy_node", "-p agent_path:=/nonexistent/agent", "/nonexistent/agent"),
    ("legion_sequencer", "-p agent_path:=/nonexistent/agent", "/nonexistent/agent"),
    ("legion_sequencer", "", "nothing to run"),
    ("legion_sequencer", "-p sequence_file:={bad_sequence}", "bad.yaml"),
    ("legion_monitor", "-p period_s:=fast", "period_s"),
    ("legion_description", "-p robot_model:=iiwa99", "iiwa99"),
    ("legion_recorder", "-p bag_path:={tmp}", "exists already"),
]


@pytest.mark.parametrize("executable,args,named", BAD_INPUT,
                         ids=[f"{e}:{a.split(':=')[0].split()[-1] if a else 'none'}" for e, a, _ in BAD_INPUT])
def test_ros2_run_with_bad_input_exits_non_zero_with_one_line(workspace, tmp_path, executable, args, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - skill: fly-to-the-moon-v3\n")
    done = run(workspace, f"ros2 run legion_bridge {executable} --ros-args "
                          f"{args.format(bad_sequence=bad, tmp=tmp_path, calibration=CALIBRATION)}",
               timeout=120)
    assert done.returncode != 0
    lines = [ln for ln in (done.stdout + done.stderr).splitlines()
             if ln.strip() and not ln.startswith("[ros2run]") and "[WARN]" not in ln and "[INFO]" not in ln]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert len(lines) == 1 and named in lines[0], lines
