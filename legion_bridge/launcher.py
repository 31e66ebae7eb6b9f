"""``legion-launch sim|real``: start the LEGION graph without launch_ros.

Each node of :mod:`legion_bridge.graph` runs as its own process with standard
``--ros-args`` (the same parameter files, parameters and remappings as the
launch files). Output lines are prefixed with the node name. Ctrl-C / SIGTERM
shut the graph down cleanly; if a required node dies the graph stops and the
launcher exits non-zero naming it; a node marked ``ends_graph`` (the sequencer)
ends the graph with its own exit status.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from legion_bridge import graph as graph_mod

SHUTDOWN_GRACE_S = 5.0  # SIGINT -> SIGTERM
KILL_GRACE_S = 2.0      # SIGTERM -> SIGKILL


@dataclass(frozen=True)
class NodeCommand:
    name: str
    argv: tuple[str, ...]
    required: bool
    ends_graph: bool


def ros_param_value(value) -> str:
    """A parameter value as ``-p name:=value`` text that rclpy parses back to the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    try:
        same = yaml.safe_load(text) == text
    except yaml.YAMLError:
        same = False
    return text if same else json.dumps(text)


def find_executable(name: str) -> str:
    """The console script ``name``: next to this Python, on PATH, or in <prefix>/lib/legion_bridge."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    try:
        from ament_index_python.packages import get_package_prefix

        candidate = Path(get_package_prefix(graph_mod.PACKAGE)) / "lib" / graph_mod.PACKAGE / name
        if candidate.is_file():
            return str(candidate)
    except Exception:
        pass
    raise FileNotFoundError(f"executable {name!r} not found (is the package installed? `make setup` or colcon build)")


def node_commands(mode: str, values: dict | None = None, only: Sequence[str] | None = None,
                  resolve_executables: bool = True) -> list[NodeCommand]:
    """The processes ``legion-launch`` would start for ``mode`` and launch-argument ``values``."""
    launches = graph_mod.resolve(mode, values)
    names = [l.spec.name for l in launches]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"--only: no node {unknown} in the {mode} graph; nodes: {names}")
        launches = [l for l in launches if l.spec.name in only]
    out = []
    for l in launches:
        exe = find_executable(l.spec.executable) if resolve_executables else l.spec.executable
        argv = [exe, "--ros-args", "-r", f"__node:={l.spec.name}"]
        for f in l.param_files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"node {l.spec.name}: parameter file not found: {f}")
            argv += ["--params-file", str(f)]
        for key, value in l.parameters.items():
            argv += ["-p", f"{key}:={ros_param_value(value)}"]
        for src, dst in l.remappings:
            argv += ["-r", f"{src}:={dst}"]
        out.append(NodeCommand(l.spec.name, tuple(argv), l.spec.required, l.spec.ends_graph))
    return out


class GraphProcesses:
    """Runs node commands as processes, prefixes their output, supervises and stops them."""

    def __init__(self, commands: Sequence[NodeCommand], out=None, env: dict | None = None) -> None:
        self.commands = list(commands)
        self.out = out or sys.stdout
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def log(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"[{name}] {line.rstrip()}\n")
            self.out.flush()

    def start(self) -> None:
        width = max(len(c.name) for c in self.commands)
        for c in self.commands:
            proc = subprocess.Popen(list(c.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1, start_new_session=True, env=self.env)
            self.procs[c.name] = proc
            self.log("legion-launch", f"started {c.name} (pid {proc.pid})")
            t = threading.Thread(target=self._pump, args=(c.name.ljust(width), proc), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, label: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log(label.rstrip(), line)

    def supervise(self, poll_s: float = 0.1, timeout_s: float | None = None) -> int | None:
        """Block until the graph ends and return the launcher's exit status
        (None if ``timeout_s`` passed first; the graph is left running)."""
        by_name = {c.name: c for c in self.commands}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stopping:
            if deadline is not None and time.monotonic() > deadline:
                return None
            for name, proc in list(self.procs.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                cmd = by_name[name]
                del self.procs[name]
                if cmd.ends_graph:
                    if rc == 0:
                        self.log("legion-launch", f"{name} finished: shutting the graph down")
                        self.stop()
                        return 0
                    self.log("legion-launch", f"ERROR: {name} ended with exit code {rc}: shutting the graph down")
                    self.stop()
                    return rc if rc > 0 else 1
                if cmd.required:
                    self.log("legion-launch", f"ERROR: required node {name} died (exit code {rc}): shutting the graph down")
                    self.stop()
                    return rc if rc > 0 else 1
                self.log("legion-launch", f"node {name} exited (code {rc}); not required, graph keeps running")
            if not self.procs:
                return 0
            time.sleep(poll_s)
        return 0

    def stop(self) -> None:
        """SIGINT every node, then SIGTERM, then SIGKILL for those that do not exit."""
        self._stopping = True
        for sig, grace in ((signal.SIGINT, SHUTDOWN_GRACE_S), (signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 1.0)):
            alive = [(n, p) for n, p in self.procs.items() if p.poll() is None]
            if not alive:
                break
            for name, proc in alive:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(p.poll() is None for _, p in alive):
                time.sleep(0.05)
        for t in self._threads:
            t.join(timeout=1.0)


def parse_set(items: Sequence[str]) -> dict:
    values = {}
    for item in items:
        if ":=" not in item:
            raise ValueError(f"--set expects name:=value, got {item!r}")
        key, value = item.split(":=", 1)
        graph_mod.launch_arg(key)
        values[key] = value
    return values


def build_parser() -> argparse.ArgumentParser:
    args_help = "\n".join(f"  {a.name:18s} {a.description} (sim: {a.default('sim')!r}, real: {a.default('real')!r})"
                          for a in graph_mod.LAUNCH_ARGS)
    p = argparse.ArgumentParser(
        prog="legion-launch", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start the LEGION node graph (one process per node) on a machine without launch_ros.",
        epilog="launch arguments (--set name:=value):\n" + args_help)
    p.add_argument("mode", choices=graph_mod.MODES, help="sim: with the MuJoCo-simulated iiwa; real: against the drivers")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME:=VALUE",
                   help="set a launch argument (repeatable)")
    p.add_argument("--only", default="", help="comma-separated node names to start (default: the whole graph)")
    p.add_argument("--list", action="store_true", help="print the node commands and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        values = parse_set(args.sets)
        only = [n for n in args.only.split(",") if n] or None
        commands = node_commands(args.mode, values, only)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"legion-launch: {msg}", file=sys.stderr)
        return 2
    if graph_mod.is_set("rviz", values.get("rviz", "")):
        print(f"legion-launch: rviz:=true needs a ROS 2 install (robot_state_publisher, rviz2): use "
              f"`ros2 launch legion_bridge {args.mode}_robot.launch.py rviz:=true`; starting the graph without them",
              file=sys.stderr)
    if args.list:
        for c in commands:
            print(f"{c.name}: {' '.join(c.argv)}")
        return 0
    procs = GraphProcesses(commands)

    def on_signal(signum, _frame):
        procs.log("legion-launch", f"{signal.Signals(signum).name}: shutting the graph down")
        procs.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs.start()
    rc = procs.supervise()
    procs.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
