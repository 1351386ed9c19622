"""DDPG against TD3, and each of TD3's switches alone, from the MuJoCo suite's runs on disk.

    python benchmarks/td3_bridge.py          # tables into benchmarks/results/td3-bridge/results.md
    python benchmarks/td3_bridge.py --results DIR   # the runs under DIR/mujoco, DIR/mujoco-td3, ...
    python benchmarks/td3_bridge.py --until 100000  # every table read up to step 100,000 at most

The runs come from `mujoco_suite.py`, one results folder per setting:

    python benchmarks/mujoco_suite.py --tasks Hopper-v5 Walker2d-v5 HalfCheetah-v5 Ant-v5          # DDPG
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 ... --ddpg-flags=--td3 --out benchmarks/results/mujoco-td3
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 --total-steps 100000 \\
        --ddpg-flags=--twin-critics --out benchmarks/results/mujoco-twin-critics     # and --target-noise 0.2,
                                                                                    # --policy-delay 2 alike

Each comparison reads every setting's evaluations up to the step all of them reached. Per
task and setting: the max of the seed-mean curve and the mean of each seed's last 10
evaluations (the suite's figures), the critic's Q(s0, mu(s0)) over the discounted return the
policy then collected (last 10 evaluations), the swing: the mean absolute change of the
evaluation return from one evaluation to the next, and the peak saturation: the highest share of
the actor's actions within 1% of a bound in a run's log (runs logged before it was measured: -);
the last two averaged over seeds.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from harness import ROOT, fmt, read_run
from mujoco_suite import evaluated_until, process_history, summarise

SETTINGS = {"DDPG": "mujoco", "TD3": "mujoco-td3", "twin critics alone": "mujoco-twin-critics",
            "target smoothing alone": "mujoco-target-noise", "policy delay alone": "mujoco-policy-delay",
            "DDPG without contact forces": "mujoco-ant-no-contact-forces",  # these two: Ant-v5 only
            "TD3 without contact forces": "mujoco-ant-td3-no-contact-forces"}
# Fujimoto et al. (2018), Table 1: max average return over 10 trials of 1,000,000 steps
PAPER = {"HalfCheetah-v5": (9636.95, 8577.29), "Hopper-v5": (3564.07, 1860.02), "Walker2d-v5": (4682.82, 3098.11),
         "Ant-v5": (4372.44, 888.77)}  # (TD3, "Our DDPG")


def runs_of(folder: Path, task: str) -> list:
    runs = []
    for d in sorted((folder / "runs" / "ours" / task).glob("seed*")):
        if evaluated_until(d) > 0:
            runs.append({**read_run(d), "seed": d.name,
                         "peak_rss_mib": max((h["peak_rss_mib"] for h in process_history(d)), default=None)})
    return runs


def figures(runs: list, until: int) -> dict:
    row = summarise(runs, until)
    q, collected, swings, saturation = [], [], [], []
    for run in runs:
        saturation.append(max((r["action_at_bound"] for r in run["records"]
                               if "action_at_bound" in r and r["step"] <= until), default=np.nan))
        evals = [r for r in run["records"] if "q_start" in r and r["step"] <= until][-10:]
        q.append(np.mean([r["q_start"] for r in evals]))
        collected.append(np.mean([r["mc_return"] for r in evals]))
        curve = [v for s, _, v in run["eval_curve"] if s <= until]
        swings.append(np.mean(np.abs(np.diff(curve))))
    q, collected = float(np.mean(q)), float(np.mean(collected))
    return {**row, "q_start": q, "collected": collected, "q_over_collected": q / collected if collected > 0 else None,
            "swing": float(np.mean(swings)), "peak_saturation": float(np.mean(saturation))}


def table(task: str, settings: dict, title: str, at_most: int = None) -> list:
    """One task's rows, every setting read up to the step all of them reached (or at_most, if less)."""
    until = min(max(s for s, _, _ in run["eval_curve"]) for runs in settings.values() for run in runs)
    until = min(until, at_most or until)
    lines = [f"**{task}, {title}**, read up to step {until:,}", "",
             "| setting | seeds | max of mean curve (± std) | mean of last 10 evals (± std) | critic's Q(s0, mu(s0)) "
             "| collected | Q / collected | swing between evaluations | peak saturation |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = {}
    for name, runs in settings.items():
        f = rows[name] = figures(runs, until)
        lines.append(f"| {name} | {f['seeds']} | {fmt(f['max_mean_curve'], '{:,.0f}')} (± "
                     f"{fmt(f['max_mean_curve_std'], '{:,.0f}')}) | {fmt(f['last10_mean'], '{:,.0f}')} (± "
                     f"{fmt(f['last10_std'], '{:,.0f}')}) | {f['q_start']:,.1f} | {f['collected']:,.1f} | "
                     f"{'-' if f['q_over_collected'] is None else format(f['q_over_collected'], '.2f')} | "
                     f"{fmt(f['swing'], '{:,.0f}')} | "
                     f"{'-' if np.isnan(f['peak_saturation']) else format(f['peak_saturation'], '.0%')} |")
    if task in PAPER:
        lines += ["", f"TD3 paper, Table 1, at 1,000,000 steps: TD3 {PAPER[task][0]:,.0f}, its DDPG "
                      f"{PAPER[task][1]:,.0f} (max of the 10-seed mean curve)."]
    return lines + [""], {"until": until, "settings": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results",
                   help="the folder holding the suite's results folders; the tables go to its td3-bridge/")
    p.add_argument("--until", type=int, metavar="STEP",
                   help="read no run past this step (tables then go to td3-bridge/until-STEP.md and .json)")
    args = p.parse_args(argv)
    found = {}
    for name, folder in SETTINGS.items():
        for task_dir in sorted((args.results / folder / "runs" / "ours").glob("*")):
            runs = runs_of(args.results / folder, task_dir.name)
            if runs:
                found.setdefault(task_dir.name, {})[name] = runs
    lines = ["DDPG against TD3 and each TD3 switch alone: `python benchmarks/td3_bridge.py` over the runs of "
             "`mujoco_suite.py` (MuJoCo preset otherwise; ± is the std over seeds)", ""]
    out = {}
    for task, settings in found.items():
        if "DDPG" in settings and len(settings) > 1:
            pair = {k: settings[k] for k in ("DDPG", "TD3") if k in settings}
            if len(pair) == 2:
                text, out[task] = table(task, pair, "DDPG and TD3", args.until)
                lines += text
            if len(settings) > len(pair):  # the switches alone (or other settings), at their own budget
                text, out[task + " (switches)"] = table(task, settings, "DDPG, TD3 and the other settings", args.until)
                lines += text
    text = "\n".join(lines) + "\n"
    print(text)
    folder = args.results / "td3-bridge"
    folder.mkdir(exist_ok=True)
    name = f"until-{args.until}" if args.until else "results"
    (folder / f"{name}.md").write_text(text)
    (folder / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
