"""legion-train sweep / report: the grid, the Continual World metrics, real runs without Ray, and a real
smoke sweep on a local Ray whose one worker is SIGKILLed mid-run and resumed by the second invocation."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from legion_training.cli import main
from legion_training.sweep import (KILL_HOOK_ENV, SweepError, build_grid, parse_algorithms, parse_seeds,
                                   resolve_order, run_state, save_sweep, sweep_parser, train_one)
from legion_training.sweep_report import (PAPER_RESULTS, collect_runs, cw_forgetting, forward_transfer,
                                          phase_auc, reference_aucs, summarize, write_report)

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["reach-v3", "push-v3", "drawer-close-v3"]


# ------------------------------------------------------------------ the grid


def test_orders_resolve_over_the_config_tasks():
    assert resolve_order("curriculum", TASKS).tasks == tuple(TASKS)
    assert resolve_order("reverse", TASKS).tasks == tuple(reversed(TASKS))
    r3, r3b = resolve_order("random:3", TASKS), resolve_order("random:3", TASKS)
    assert r3.label == "random3" and r3 == r3b and sorted(r3.tasks) == sorted(TASKS)
    assert resolve_order("random", TASKS).label == "random0"
    assert len({resolve_order(f"random:{s}", TASKS).tasks for s in range(10)}) > 1   # the seed matters
    ex = resolve_order("push-v3,reach-v3", TASKS, known=TASKS)
    assert ex.tasks == ("push-v3", "reach-v3") and ex.label == "list-push+reach"
    for bad in ("sideways", "random:x", "reach-v3,reach-v3", ""):
        with pytest.raises(SweepError, match="--order"):
            resolve_order(bad, TASKS, known=TASKS)
    with pytest.raises(SweepError, match="unknown Metaworld v3 task 'nope-v3'"):
        resolve_order("reach-v3,nope-v3", TASKS, known=TASKS)


def test_seeds_and_algorithms_parse_or_refuse():
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("a", "2-1", "1,1", "-1"):
        with pytest.raises(SweepError, match="--seeds"):
            parse_seeds(bad)
    assert parse_algorithms("legion,legion_gaussian,sac_lang,sac,mtsac") == [
        "legion", "legion_gaussian", "sac_lang", "sac", "mtsac"]
    with pytest.raises(SweepError, match="unknown algorithm 'ppo'"):
        parse_algorithms("legion,ppo")


def test_grid_is_seeds_x_orders_x_algorithms_plus_references():
    sw = build_grid("smoke", ["run.steps_per_task=100"], [0, 1], ["curriculum", "reverse"],
                    ["legion", "sac", "mtsac"], reference=True)
    ids = [r.run_id for r in sw.runs]
    assert len(ids) == len(set(ids)) == 2 * 2 * 2 + 2 + 2 * 2   # lifelong, mtsac once per seed, references
    assert "legion/reverse/s1" in ids and "mtsac/multitask/s0" in ids and "reference/push/s1" in ids
    rev = next(r for r in sw.runs if r.run_id == "sac/reverse/s0")
    assert rev.tasks == ("push-v3", "reach-v3") and rev.overrides[0] == "run.steps_per_task=100"
    assert "run.regime=multitask" in next(r for r in sw.runs if r.algorithm == "mtsac").overrides
    ref = next(r for r in sw.runs if r.run_id == "reference/reach/s1")
    assert ref.reference and ref.algorithm == "sac" and ref.tasks == ("reach-v3",) and ref.seed == 1


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("legion-train: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_before_ray_starts(capsys, tmp_path):
    out = str(tmp_path / "sw")
    assert "unknown algorithm 'ppo'" in _err(capsys, ["sweep", "--algorithms", "ppo", "--out", out])
    assert "--order 'sideways'" in _err(capsys, ["sweep", "--order", "sideways", "--out", out])
    assert "--address 'not an address'" in _err(capsys, ["sweep", "--address", "not an address", "--out", out])
    assert "--address 'h:99999'" in _err(capsys, ["sweep", "--address", "h:99999", "--out", out])
    with socket.socket() as sock:   # a port nobody listens on: refused at once, not after ray.init's retries
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    t0 = time.time()
    assert "nothing listens there" in _err(capsys, ["sweep", "--address", f"127.0.0.1:{free}", "--out", out])
    assert time.time() - t0 < 30
    assert "unknown key sac.nope" in _err(capsys, ["sweep", "--set", "sac.nope=1", "--out", out])
    assert "no sweep.json" in _err(capsys, ["sweep", "--resume", str(tmp_path)])
    assert "no runs/ folder" in _err(capsys, ["report", str(tmp_path)])
    assert not (tmp_path / "sw").exists()
    # the same --out with another grid is refused (a sweep folder holds one grid)
    save_sweep(build_grid("smoke", [], [0], ["curriculum"], ["legion"]), tmp_path / "sw")
    assert "holds another sweep" in _err(capsys, ["sweep", "--seeds", "0,1", "--out", out])
    assert "cannot be combined" in _err(capsys, ["sweep", "--resume", out, "--seeds", "1"])


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["sweep", "--help"])
    assert ex.value.code == 0
    text = capsys.readouterr().out
    for action in sweep_parser()._actions:
        for opt in action.option_strings:
            assert opt in text
        assert action.help, action.option_strings
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "legion-train sweep" in top and "legion-train report SWEEP" in top


# ------------------------------------------------------------------ metrics (Continual World)


def test_continual_world_forgetting_and_auc():
    M = np.array([[0.9, 0.4, 0.3], [0.0, 1.0, 0.5], [0.1, 0.2, 0.7]])
    assert cw_forgetting(M) == pytest.approx(((0.9 - 0.3) + (1.0 - 0.5)) / 2)
    assert math.isnan(cw_forgetting(M[:, :1]))
    hist = [{"step": 50, "phase": 0, "task": "a", "success": 0.0}, {"step": 100, "phase": 0, "task": "a", "success": 1.0},
            {"step": 100, "phase": 0, "task": "b", "success": 0.5},
            {"step": 150, "phase": 1, "task": "b", "success": 1.0}, {"step": 180, "phase": 1, "task": "b", "success": 0.0}]
    assert phase_auc(hist, "a", 0) == pytest.approx(0.5)             # (0 * 50 + 1 * 50) / 100
    assert phase_auc(hist, "b", 1) == pytest.approx(50 / 80)         # phase 1 starts at 100: (1 * 50 + 0 * 30) / 80
    assert math.isnan(phase_auc(hist, "a", 1))


def test_paper_numbers_are_the_reference_file_s():
    text = (ROOT.parent / "shared" / "reference" / "paper-results.md")
    if not text.is_file():
        pytest.skip("no ../shared/reference here")
    body = text.read_text()
    for row in PAPER_RESULTS:
        assert str(row["final_success"]) in body, row
        assert row["std"] is None or str(row["std"]) in body


# ------------------------------------------------------------------ real runs, no Ray


@pytest.mark.slow
def test_report_from_real_run_folders_without_ray(tmp_path):
    sw = build_grid("smoke", ["run.steps_per_task=100", "run.checkpoint_every=50", "eval.every=50"], [0],
                    ["curriculum"], ["legion"], reference=True)
    assert [r.run_id for r in sw.runs] == ["legion/curriculum/s0", "reference/reach/s0", "reference/push/s0"]
    save_sweep(sw, tmp_path)
    for spec in sw.runs:
        s = train_one(spec, str(tmp_path / "runs" / spec.run_id), sw.config)
        assert s["steps"] == 100 * len(spec.tasks) and not s["resumed"]
        assert run_state(tmp_path / "runs" / spec.run_id) == "finished"
    # a finished run asked again trains nothing more
    again = train_one(sw.runs[1], str(tmp_path / "runs" / sw.runs[1].run_id), sw.config)
    assert again["resumed"] and again["start_step"] == again["steps"] == 100
    runs = collect_runs(tmp_path)
    ref = reference_aucs(runs)
    assert set(ref) == {"reach-v3", "push-v3"} and all(0 <= a <= 1 for a in ref.values())
    (row,) = summarize(runs)
    lifelong = next(r for r in runs if not r.reference)
    M = lifelong.matrix
    assert row["final_success_mean"] == pytest.approx(M[:, -1].mean()) and row["seeds_finished"] == 1
    assert row["forgetting_mean"] == pytest.approx(M[0, 0] - M[0, 1])
    ft = forward_transfer(lifelong, ref)
    expect = [(phase_auc(lifelong.history, t, i) - ref[t]) / (1 - ref[t]) for i, t in enumerate(lifelong.tasks)
              if ref[t] < 1]
    assert (math.isnan(ft) and not expect) or ft == pytest.approx(np.mean(expect))
    assert row["paper_final_success"] == 0.821
    paths = write_report(tmp_path)
    assert {p.name for p in paths} == {"report.md", "report.csv", "runs.csv", "curve_curriculum.png"}
    assert (tmp_path / "curve_curriculum.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "report.md").read_text()
    assert "| curriculum | legion | reach-v3 > push-v3 | 100 | 1/1 |" in md and "0.821 +- 0.053" in md


# ------------------------------------------------------------------ a real sweep on local Ray


def _ray_temp_dir(tmp_path: Path) -> str:
    """Ray's session sockets must fit a 107-byte Unix socket path: the test's tmp_path if it is short enough."""
    cand = tmp_path / "ray"
    if len(str(cand)) <= 40:
        return str(cand)
    return tempfile.mkdtemp(prefix="ray", dir="/tmp")


def _sweep(tmp_path: Path, sweep_dir: Path, temp_dir: str, kill: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop(KILL_HOOK_ENV, None)
    if kill:
        env[KILL_HOOK_ENV] = kill
    args = [sys.executable, "-m", "legion_training.cli", "sweep", "--config", "smoke", "--seeds", "0,1",
            "--order", "curriculum", "--order", "reverse", "--set", "run.steps_per_task=100",
            "--set", "run.checkpoint_every=50", "--set", "eval.every=100", "--num-cpus", "2", "--max-retries", "0",
            "--ray-temp-dir", temp_dir, "--out", str(sweep_dir), "--no-progress"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_sweep_on_ray_survives_a_killed_worker_and_repeats_nothing(tmp_path):
    sweep_dir, temp_dir = tmp_path / "sweep", _ray_temp_dir(tmp_path)
    victim = "legion/reverse/s1"
    t0 = time.time()
    first = _sweep(tmp_path, sweep_dir, temp_dir, kill=f"{victim}:100")
    t_first = time.time() - t0
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"[{victim}] FAILED" in first.stdout and "sweep: 3 runs trained, 0 already finished, 1 failed" in first.stdout
    vdir = sweep_dir / "runs" / victim
    # the worker really died by SIGKILL right after its step-100 checkpoint (the end of its first phase)
    assert "SIGKILL at step 100" in (vdir / "train.log").read_text()
    (start,) = [json.loads(x) for x in _lines(vdir / "attempts.jsonl")]
    assert start["event"] == "start" and start["start_step"] == 0
    with pytest.raises(ProcessLookupError):
        os.kill(start["pid"], 0)
    assert run_state(vdir) == "partial" and _lines(vdir / "phases.log") == ["phase 0 push-v3 finished at step 100"]
    history_before = _lines(vdir / "eval_history.csv")
    others = [r for r in ("legion/curriculum/s0", "legion/curriculum/s1", "legion/reverse/s0")]
    before = {}
    for rid in others:
        d = sweep_dir / "runs" / rid
        assert run_state(d) == "finished"
        before[rid] = ((d / "checkpoint.pt").stat().st_mtime_ns, _lines(d / "attempts.jsonl"), _lines(d / "phases.log"))
    assert "| reverse | legion | push-v3 > reach-v3 | 100 | 1/2 |" in (sweep_dir / "report.md").read_text()

    t1 = time.time()
    second = _sweep(tmp_path, sweep_dir, temp_dir, kill=None)
    t_second = time.time() - t1
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for rid in others:
        assert f"[{rid}] already finished: not repeated" in second.stdout
        d = sweep_dir / "runs" / rid
        assert ((d / "checkpoint.pt").stat().st_mtime_ns, _lines(d / "attempts.jsonl"), _lines(d / "phases.log")) \
            == before[rid]
    assert f"[{victim}] finished 200 steps" in second.stdout and "(resumed at step 100)" in second.stdout
    attempts = [json.loads(x) for x in _lines(vdir / "attempts.jsonl")]
    assert [(a["event"], a["start_step"], a["resumed"]) for a in attempts] == [
        ("start", 0, False), ("start", 100, True), ("end", 100, True)]
    # phase 0 was not trained again: one line per phase, the second attempt only did phase 1
    assert _lines(vdir / "phases.log") == ["phase 0 push-v3 finished at step 100",
                                           "phase 1 reach-v3 finished at step 200"]
    history = _lines(vdir / "eval_history.csv")
    assert history[: len(history_before)] == history_before and len(history) > len(history_before)
    assert run_state(vdir) == "finished"

    csv_rows = (sweep_dir / "report.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and all(",2,2," in row for row in csv_rows[1:])   # seeds, seeds_finished
    md = (sweep_dir / "report.md").read_text()
    for order, tasks in (("curriculum", "reach-v3 > push-v3"), ("reverse", "push-v3 > reach-v3")):
        assert f"| {order} | legion | {tasks} | 100 | 2/2 |" in md
        assert (sweep_dir / f"curve_{order}.png").read_bytes()[:4] == b"\x89PNG"
    # legion-train report rebuilds the same report from the folders
    (sweep_dir / "report.md").unlink()
    assert main(["report", str(sweep_dir)]) == 0
    assert (sweep_dir / "report.md").read_text() == md
    print(f"sweep wall times: first {t_first:.0f} s (with the kill), second {t_second:.0f} s")
