"""Time ddpg.py's default run on Pendulum-v1 over seeds, optionally beside Stable-Baselines3.

    python benchmarks/pendulum.py --seeds 10                 # ddpg.py alone
    python benchmarks/pendulum.py --seeds 10 --compare-sb3   # and SB3's DDPG, same seeds, interleaved
    python benchmarks/pendulum.py --seeds 10 --ddpg-flags "--gamma 0.99" --out /tmp/g99   # a variant

Each run is its own process: `python ddpg.py --seed K --out ...` with default flags, and
for SB3 harness.py's worker with rl-zoo's Pendulum-v1 hyper-parameters. Both
write metrics.jsonl in ddpg.py's format; every figure below is read from those files,
except peak resident memory, which comes from the operating system (wait4's ru_maxrss).

"Solved" has two definitions, both reported:
  - ma:   the mean of the last 10 training episode returns first reaches -200;
  - eval: the first deterministic evaluation (10 episodes) with a mean of at least -200.
Seconds count from the start of training (after imports and setup), as logged.

Writes OUT/results.md, OUT/results.json and OUT/wallclock.html (evaluation return against
wall-clock seconds, mean across seeds with a min-max band).
"""

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

import harness
from harness import ROOT, ddpg, fmt

SOLVED = -200.0
SB3_ZOO = dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, noise_std=0.1, learning_rate=1e-3,
               net_arch=[400, 300], batch_size=256, train_freq=1, gradient_steps=1)  # rl-zoo, Pendulum-v1
TOTAL_STEPS = 20_000


def analyse(run_dir: Path) -> dict:
    """harness.read_run's figures, plus when the run first counted as solved."""
    run = harness.read_run(run_dir)
    records = run.pop("records")
    episodes = [r for r in records if "episode_return" in r]
    evals = [r for r in records if "eval_return" in r]
    solved_ma = next((episodes[i - 1] for i in range(10, len(episodes) + 1)
                      if np.mean([e["episode_return"] for e in episodes[i - 10:i]]) >= SOLVED), None)
    solved_eval = next((e for e in evals if e["eval_return"] >= SOLVED), None)
    return {**run, "seconds_to_solve_ma": solved_ma and solved_ma["time"],
            "steps_to_solve_ma": solved_ma and solved_ma["step"],
            "seconds_to_solve_eval": solved_eval and solved_eval["time"],
            "steps_to_solve_eval": solved_eval and solved_eval["step"]}


FIGURES = [  # key, label, format
    ("seconds_to_solve_ma", "seconds to solve (moving average of 10 episodes >= -200)", "{:.1f}"),
    ("steps_to_solve_ma", "steps to solve (moving average)", "{:,.0f}"),
    ("seconds_to_solve_eval", "seconds to solve (first evaluation >= -200)", "{:.1f}"),
    ("steps_to_solve_eval", "steps to solve (first evaluation)", "{:,.0f}"),
    ("final_eval_return", "final evaluation return", "{:.1f}"),
    ("steps_per_second", "steps/s overall", "{:,.0f}"),
    ("steps_per_second_learning", "steps/s while learning", "{:,.0f}"),
    ("updates_per_second", "updates/s", "{:,.0f}"),
    ("peak_rss_mib", "peak resident memory (MiB)", "{:,.0f}"),
]


def markdown(results: dict, cmd: str, machine: str) -> str:
    lines = [f"Command: `{cmd}`  ", f"Machine: {machine}", ""]
    if len(results) == 2:
        lines += harness.comparison_table(results, FIGURES) + [""]
    for name, seeds in results.items():
        lines += harness.per_seed_table(name, seeds, FIGURES)
        solved = sum(1 for s in seeds if (s["final_eval_return"] or -1e9) >= SOLVED)
        lines += [f"Final evaluation >= -200 on {solved} of {len(seeds)} seeds.", ""]
    return "\n".join(lines)


def wallclock_page(results: dict, path: Path) -> None:
    n = len(next(iter(results.values())))
    sides = {name: [([t for _, t, _ in s["eval_curve"]], [r for _, _, r in s["eval_curve"]]) for s in seeds]
             for name, seeds in results.items()}
    solved_line = {"shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": SOLVED, "y1": SOLVED,
                               "line": {"dash": "dot", "color": "#888"}}]}
    harness.curves_page([(f"Pendulum-v1: evaluation return against wall-clock seconds (mean of {n} seeds, "
                          "band: min-max)", "seconds since training started", "mean evaluation return (10 episodes)",
                          sides, solved_line)], path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="run seeds 0 .. N-1")
    p.add_argument("--compare-sb3", action="store_true", help="also run Stable-Baselines3's DDPG (rl-zoo settings)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="where results go")
    p.add_argument("--total-steps", type=int, default=None,
                   help=f"shorter runs for a smoke test (default: each side's own budget, {TOTAL_STEPS:,})")
    p.add_argument("--ddpg-flags", default="", help="extra flags for ddpg.py, to time a variant of the defaults")
    args = p.parse_args(argv)
    out = Path(args.out)
    steps = args.total_steps or TOTAL_STEPS
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.compare_sb3:
        harness.need_sb3(p)
    sides = {"ddpg.py": []} | ({"SB3": []} if args.compare_sb3 else {})
    for seed in range(args.seeds):  # interleaved, one at a time, so drift in the machine's speed hits both alike
        for name in sides:
            run_dir = out / "runs" / ("ours" if name == "ddpg.py" else "sb3") / f"seed{seed}"
            if run_dir.exists():  # ddpg.py refuses to overwrite a run, so an earlier one goes first
                shutil.rmtree(run_dir)
            if name == "ddpg.py":
                cmd = [sys.executable, "ddpg.py", "--env", "Pendulum-v1", "--seed", str(seed), "--out", str(run_dir)]
                cmd += ["--total-steps", str(args.total_steps)] if args.total_steps else []
                cmd += shlex.split(args.ddpg_flags)
            else:
                cmd = harness.sb3_command("Pendulum-v1", seed, run_dir, steps, ddpg.Config.eval_every,
                                          ddpg.Config.eval_episodes, SB3_ZOO)
            run_dir.mkdir(parents=True)  # its stdout.log goes inside; ddpg.py takes an empty folder
            process = harness.run_process(cmd, run_dir / "stdout.log")
            result = {**analyse(run_dir), **process}
            sides[name].append(result)
            print(f"{name:8s} seed {seed}: solved (moving average) at "
                  f"{fmt(result['seconds_to_solve_ma'], '{:.1f} s')}, final eval "
                  f"{fmt(result['final_eval_return'], '{:.1f}')}, {result['steps_per_second']:,.0f} steps/s, "
                  f"peak {result['peak_rss_mib']:,.0f} MiB", flush=True)
    cmd = "python benchmarks/pendulum.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = harness.machine_description()
    text = markdown(sides, cmd, machine)
    print("\n" + text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"command": cmd, "machine": machine, "results": sides},
                                                 indent=1) + "\n")
    wallclock_page(sides, out / "wallclock.html")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'wallclock.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
