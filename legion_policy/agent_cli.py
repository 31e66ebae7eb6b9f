"""``legion-agent``: inspect, validate and create (randomly initialised) frozen agents.

    legion-agent inspect PATH        human-readable summary (skills, layout, evaluation, sizes)
    legion-agent validate PATH       exit 0 if the agent validates, else 1 and a one-line reason
    legion-agent init-random OUT --skills reach-v3,push-v3 --layout metaworld39 --seed 0

Exit status: 0 ok, 1 invalid agent, 2 bad command line.
"""
from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
DEFAULT_RANDOM_SKILLS = "reach-v3,push-v3,button-press-topdown-v3"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legion-agent", description="Inspect, validate and create LEGION frozen agents.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("inspect", help="print a summary of an agent (validates it first)")
    s.add_argument("path")
    s = sub.add_parser("validate", help="exit 0 if the agent validates, else 1 with a one-line reason")
    s.add_argument("path")
    s = sub.add_parser("init-random", help="export a randomly initialised agent with the deployed architecture")
    s.add_argument("out")
    s.add_argument("--skills", default=DEFAULT_RANDOM_SKILLS, help="comma-separated skill (task) names")
    s.add_argument("--layout", default="metaworld39", help="observation layout name")
    s.add_argument("--seed", type=int, default=0, help="torch seed of the initialisation")
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def main(args=None) -> int:
    ns = _parser().parse_args(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legion_policy.agent_format import AgentFormatError, describe_agent, init_random_agent, load_agent

    if ns.command in ("inspect", "validate"):
        try:
            agent = load_agent(ns.path)
        except AgentFormatError as exc:
            print(f"INVALID {ns.path}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        if ns.command == "validate":
            print(f"OK {ns.path}: format v{agent.format_version}, layout {agent.layout.name}, "
                  f"skills {', '.join(agent.skill_names)}")
        else:
            print(describe_agent(agent))
        return EXIT_OK

    skills = [s.strip() for s in ns.skills.split(",") if s.strip()]
    try:
        path = init_random_agent(ns.out, skills, layout=ns.layout, seed=ns.seed, overwrite=ns.overwrite)
    except (KeyError, ValueError, FileExistsError) as exc:
        print(f"legion-agent init-random: {str(exc).strip(chr(39))}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote randomly initialised agent {path} (skills {', '.join(skills)}, layout {ns.layout}, seed {ns.seed})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
