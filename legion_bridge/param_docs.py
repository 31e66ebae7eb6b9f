"""docs/architecture.md's node parameter tables, generated from the nodes' specs.

    python -m legion_bridge.param_docs                              # print the block
    python -m legion_bridge.param_docs --write docs/architecture.md # rewrite the marked block in place
    python -m legion_bridge.param_docs --check docs/architecture.md # exit 1 if it is stale

Only the text between :data:`BEGIN` and :data:`END` (HTML comments) is generated; the rest of
the file is left as it is. One table per node of :data:`legion_bridge.graph.NODES`, in graph order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from legion_bridge.graph import NODES
from legion_bridge.node_params import DESCRIPTION, MONITOR, REAL2SIM, RECORDER, SIM2REAL
from legion_bridge.sim_arm_params import SIM_ARM
from legion_policy.node_params import POLICY, SEQUENCER
from legion_policy.params import NodeParams

BEGIN = ("<!-- BEGIN node-parameters: generated from the nodes' specs by "
         "`python -m legion_bridge.param_docs --write docs/architecture.md`; do not edit by hand -->")
END = "<!-- END node-parameters -->"

#: What rclpy declares on every node itself (not in the specs).
RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")

#: Each node's spec and the module that defines it.
SPECS: dict[str, tuple[NodeParams, str]] = {
    "sim_arm": (SIM_ARM, "legion_bridge/sim_arm_params.py"),
    "real2sim": (REAL2SIM, "legion_bridge/node_params.py"),
    "policy": (POLICY, "legion_policy/node_params.py"),
    "sim2real": (SIM2REAL, "legion_bridge/node_params.py"),
    "sequencer": (SEQUENCER, "legion_policy/node_params.py"),
    "monitor": (MONITOR, "legion_bridge/node_params.py"),
    "description": (DESCRIPTION, "legion_bridge/node_params.py"),
    "recorder": (RECORDER, "legion_bridge/node_params.py"),
}


def render() -> str:
    """The generated block, markers included."""
    missing = [n.name for n in NODES if n.name not in SPECS]
    if missing:
        raise ValueError(f"graph nodes without a parameter spec: {missing}")
    parts = [BEGIN, "Every node also has rclpy's own " + " and ".join(f"`{p}`" for p in RCLPY_PARAMETERS)
             + " (`use_sim_time` is the launch argument of that name)."]
    for node in NODES:
        params, where = SPECS[node.name]
        parts.append(f"#### {node.name} (`{node.executable}`, spec `{where}`)")
        parts.append(params.markdown_table())
        if params.dynamic:
            parts.append(f"Declared at start besides these: {params.dynamic}.")
    parts.append(END)
    return "\n\n".join(parts) + "\n"


def _split(text: str, path: str) -> tuple[str, str]:
    """The text before BEGIN and after END (ValueError naming the file if the markers are not there once)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{path}: needs the marker lines {BEGIN!r} and {END!r}, once each, in that order")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head, tail.removeprefix("\n")


def updated(text: str, path: str = "the document") -> str:
    """``text`` with its generated block replaced by :func:`render`'s."""
    head, tail = _split(text, path)
    return head + render() + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m legion_bridge.param_docs", description=__doc__.split("\n")[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="rewrite FILE's generated block")
    group.add_argument("--check", metavar="FILE", help="exit 1 when FILE's generated block is stale")
    args = ap.parse_args(argv)
    target = args.write or args.check
    if target is None:
        sys.stdout.write(render())
        return 0
    try:
        text = Path(target).read_text()
        new = updated(text, target)
    except (OSError, ValueError) as exc:
        print(f"param_docs: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(f"param_docs: {target}: the node parameter tables differ from the specs; run "
                  f"python -m legion_bridge.param_docs --write {target}", file=sys.stderr)
            return 1
        return 0
    if new != text:
        Path(target).write_text(new)
    print(f"param_docs: {target}: {'updated' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
