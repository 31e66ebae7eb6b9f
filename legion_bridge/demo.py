"""``legion-demo``: the main job. The frozen agent chains skills on the simulated iiwa through
exactly the graph that drives the real arm (sim_arm, real2sim, policy, sim2real, sequencer).

It starts the sim graph with ``legion-launch``'s process supervisor, lets the sequencer run
the sequence, then reads the sequencer's run report and prints the final table. The exit
status is 0 only if the report says the whole sequence succeeded: nothing here claims a
success that the sequencer did not measure.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence


from legion_bridge.launcher import GraphProcesses, node_commands
from legion_bridge.graph import DEFAULT_SIM_SCENE, DEFAULT_SIM_SEQUENCE, resolve_sequence_path
from legion_bridge.paths import default_agent_path

REPORT_NAME = "report.json"
VIDEO_NAME = "demo.gif"  # imageio writes GIF without ffmpeg
VIDEO_SIZE = (320, 240)  # px; software rendering is slow on CPU-only machines
VIDEO_MAX_FRAMES = 150  # evenly spaced over the run
BAG_NAME = "bag"  # --record: the rosbag2 bag (MCAP) in the run folder
STATES_NAME = "states.npz"  # sim_arm logs states while running; rendered to VIDEO_NAME afterwards


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legion-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default=str(default_agent_path()), help="frozen agent directory (default: shipped)")
    p.add_argument("--sequence", default=str(resolve_sequence_path(DEFAULT_SIM_SEQUENCE)),
                   help="sequence YAML (default: what the simulated graph runs without arguments, "
                        f"config/{DEFAULT_SIM_SEQUENCE})")
    p.add_argument("--scene", default="", help="simulated scene (default: the sequence's 'scene', else "
                                                f"{DEFAULT_SIM_SCENE})")
    p.add_argument("--robot-model", default="iiwa7", choices=("iiwa7", "iiwa14"), help="simulated arm")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the simulated task instances (default: the sim arm's, 0)")
    p.add_argument("--out", default="", help="run folder (default: runs/demo-<time>)")
    p.add_argument("--no-video", action="store_true", help="do not record a video")
    p.add_argument("--record", action="store_true",
                   help=f"record the graph's topics into <run folder>/{BAG_NAME} (rosbag2, MCAP storage)")
    p.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit for the whole run [s]")
    return p


def format_table(report: dict) -> str:
    """The final table: one row per step (steps never started show ``not run`` and no time)."""
    rows = [("step", "skill", "success", "time [s]", "steps")]
    for i, st in enumerate(report.get("steps", []), 1):
        t = st.get("time_s")
        if st.get("success"):
            outcome = "yes"
        elif st.get("status") == "not_run":
            outcome = "not run"
        else:
            outcome = f"NO ({st['status']})" if st.get("status") else "NO"
        rows.append((str(i), str(st.get("skill", st.get("name", "?"))), outcome,
                     "-" if t is None else f"{float(t):.1f}", str(st.get("steps", "?"))))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for label, path in (("agent", args.agent), ("sequence", args.sequence)):
        if not Path(path).exists():
            print(f"legion-demo: {label} not found: {path}", file=sys.stderr)
            return 2
    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    values = {"agent": str(Path(args.agent).resolve()), "sequence": str(Path(args.sequence).resolve()),
              "robot_model": args.robot_model, "report_dir": str(out)}
    if args.scene:
        values["scene"] = args.scene  # else the sequence file's scene (legion_bridge.graph.argument_values)
    if args.seed is not None:
        values["seed"] = str(args.seed)
    if args.record:
        values.update(record="true", bag=str(out / BAG_NAME))
    if not args.no_video:
        os.environ.setdefault("MUJOCO_GL", "egl")
        values["video"] = str(out / STATES_NAME)
    try:
        commands = node_commands("sim", values)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"legion-demo: {exc}", file=sys.stderr)
        return 2
    print(f"legion-demo: run folder {out}", flush=True)
    procs = GraphProcesses(commands)
    signal.signal(signal.SIGINT, lambda *_: procs.stop())
    signal.signal(signal.SIGTERM, lambda *_: procs.stop())
    procs.start()
    rc = procs.supervise(timeout_s=args.timeout)
    if rc is None:
        procs.log("legion-demo", f"ERROR: no result after {args.timeout:.0f} s: stopping the graph")
        rc = 1
    procs.stop()
    report_path = out / REPORT_NAME
    if not report_path.is_file():
        print(f"legion-demo: FAILED: the sequencer wrote no report ({report_path}); graph exit status {rc}")
        return rc or 1
    report = json.loads(report_path.read_text())
    states = out / STATES_NAME
    if states.is_file():
        from legion_bridge.sim.video import render_state_log

        print(f"legion-demo: rendering the video from {states} ...", flush=True)
        frames = render_state_log(states, out / VIDEO_NAME, size=VIDEO_SIZE, max_frames=VIDEO_MAX_FRAMES)
        print(f"legion-demo: {frames} frames -> {out / VIDEO_NAME}", flush=True)
    print("\n" + format_table(report))
    ok = bool(report.get("success")) and rc == 0
    video = out / VIDEO_NAME
    print(f"\nsequence {'SUCCEEDED' if ok else 'FAILED'}; report: {report_path}"
          + (f"; video: {video}" if video.is_file() else "")
          + (f"; bag: {out / BAG_NAME}" if (out / BAG_NAME / "metadata.yaml").is_file() else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
