"""Time ddpg.py's default run on Pendulum-v1 over seeds, optionally beside Stable-Baselines3.

    python benchmarks/pendulum.py --seeds 10                 # ddpg.py alone
    python benchmarks/pendulum.py --seeds 10 --compare-sb3   # and SB3's DDPG, same seeds, interleaved
    python benchmarks/pendulum.py --seeds 10 --ddpg-flags "--gamma 0.99" --out /tmp/g99   # a variant

Each run is its own process: `python ddpg.py --seed K --out ...` with default flags, and
for SB3 this script re-run as a worker with rl-zoo's Pendulum-v1 hyper-parameters. Both
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
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import ddpg  # noqa: E402  (for the report's curve helpers and the metrics reader)

SOLVED = -200.0
SB3_ZOO = dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, noise_std=0.1, learning_rate=1e-3,
               net_arch=[400, 300], train_freq=1, gradient_steps=1, total_steps=20_000)  # rl-zoo, Pendulum-v1


# --- the SB3 worker: SB3's DDPG, logging metrics.jsonl the way ddpg.py does ---


def sb3_worker(seed: int, out: Path, total_steps: int, eval_every: int, eval_episodes: int) -> None:
    import gymnasium as gym
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    out.mkdir(parents=True, exist_ok=True)
    metrics = open(out / "metrics.jsonl", "w", buffering=1)
    env, eval_env = gym.make("Pendulum-v1"), gym.make("Pendulum-v1")
    hp = SB3_ZOO
    learning_starts = min(hp["learning_starts"], total_steps // 2)  # only shorter for smoke runs
    model = DDPG("MlpPolicy", env, gamma=hp["gamma"], buffer_size=hp["buffer_size"],
                 learning_starts=learning_starts, learning_rate=hp["learning_rate"],
                 action_noise=NormalActionNoise(np.zeros(1), hp["noise_std"] * np.ones(1)),
                 train_freq=hp["train_freq"], gradient_steps=hp["gradient_steps"],
                 policy_kwargs=dict(net_arch=hp["net_arch"]), seed=seed, device="cpu")

    class Recorder(BaseCallback):
        def _on_training_start(self):
            self.start = time.perf_counter()

        def log(self, record):
            metrics.write(json.dumps({**record, "time": round(time.perf_counter() - self.start, 4)}) + "\n")

        def _on_step(self):
            step = self.num_timesteps
            for info in self.locals["infos"]:
                if "episode" in info:  # SB3's Monitor wrapper reports finished episodes here
                    self.log({"step": step, "episode_return": float(info["episode"]["r"]),
                              "episode_length": int(info["episode"]["l"])})
            if step % 1000 == 0 and self.model._n_updates:
                self.log({"step": step, "updates": int(self.model._n_updates)})
            if step % eval_every == 0 or step == total_steps:
                def act(obs):
                    return self.model.predict(obs, deterministic=True)[0]
                # ddpg.py's own episode loop, on the same start states as its evaluations
                returns = [ddpg.run_episode(eval_env, act, seed + ddpg.EVAL_SEED_OFFSET + k, hp["gamma"])[1]
                           for k in range(eval_episodes)]
                self.log({"step": step, "eval_return": float(np.mean(returns))})
            return True

    model.learn(total_timesteps=total_steps, callback=Recorder())
    metrics.close()


# --- running one process and reading what it logged ---


def run(cmd, log_path: Path) -> dict:
    """Run cmd to completion; its wall time and peak resident memory (from wait4)."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait(): it returns the child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
    if proc.returncode != 0:
        sys.exit(f"benchmark: {' '.join(map(str, cmd))} failed with status {proc.returncode}; see {log_path}")
    return {"process_seconds": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024}


def analyse(run_dir: Path) -> dict:
    records, problems = ddpg.read_metrics(run_dir)
    if problems:
        sys.exit("benchmark: " + "; ".join(problems))
    episodes = [r for r in records if "episode_return" in r]
    evals = [r for r in records if "eval_return" in r]
    updates = [r for r in records if r.get("updates")]
    solved_ma = next((episodes[i - 1] for i in range(10, len(episodes) + 1)
                      if np.mean([e["episode_return"] for e in episodes[i - 10:i]]) >= SOLVED), None)
    solved_eval = next((e for e in evals if e["eval_return"] >= SOLVED), None)
    last = max(records, key=lambda r: r["time"])
    first_u, last_u = (updates[0], updates[-1]) if len(updates) > 1 else (None, None)
    span = (last_u["time"] - first_u["time"]) if first_u else 0
    return {
        "seconds_to_solve_ma": solved_ma and solved_ma["time"], "steps_to_solve_ma": solved_ma and solved_ma["step"],
        "seconds_to_solve_eval": solved_eval and solved_eval["time"],
        "steps_to_solve_eval": solved_eval and solved_eval["step"],
        "final_eval_return": evals[-1]["eval_return"] if evals else None,
        "train_seconds": last["time"],
        "steps_per_second": last["step"] / last["time"],
        "steps_per_second_learning": (last_u["step"] - first_u["step"]) / span if span else None,
        "updates_per_second": (last_u["updates"] - first_u["updates"]) / span if span else None,
        "eval_curve": [(e["time"], e["eval_return"]) for e in evals],
    }


# --- the tables and the plot ---

FIGURES = [  # key, label, format, lower is better
    ("seconds_to_solve_ma", "seconds to solve (moving average of 10 episodes >= -200)", "{:.1f}", True),
    ("steps_to_solve_ma", "steps to solve (moving average)", "{:,.0f}", True),
    ("seconds_to_solve_eval", "seconds to solve (first evaluation >= -200)", "{:.1f}", True),
    ("steps_to_solve_eval", "steps to solve (first evaluation)", "{:,.0f}", True),
    ("final_eval_return", "final evaluation return", "{:.1f}", False),
    ("steps_per_second", "steps/s overall", "{:,.0f}", False),
    ("steps_per_second_learning", "steps/s while learning", "{:,.0f}", False),
    ("updates_per_second", "updates/s", "{:,.0f}", False),
    ("peak_rss_mib", "peak resident memory (MiB)", "{:,.0f}", True),
]


def median(values):
    """Median, counting a run that never solved as infinitely slow (None if most never did)."""
    m = statistics.median([float("inf") if v is None else v for v in values])
    return None if m == float("inf") else m


def fmt(value, pattern):
    return "not reached" if value is None else pattern.format(value)


def markdown(results: dict, cmd: str, machine: str) -> str:
    lines = [f"Command: `{cmd}`  ", f"Machine: {machine}", ""]
    names = list(results)
    if len(names) == 2:
        lines += ["| figure (median over seeds) | ddpg.py | SB3 | ddpg.py / SB3 |", "|---|---|---|---|"]
        for key, label, pattern, _ in FIGURES:
            a, b = (median([s[key] for s in results[n]]) for n in names)
            ratio = f"{a / b:.2f}" if a is not None and b else "-"
            lines.append(f"| {label} | {fmt(a, pattern)} | {fmt(b, pattern)} | {ratio} |")
        lines.append("")
    for name in names:
        lines += [f"**{name}, per seed**", "", "| seed | " + " | ".join(label for _, label, _, _ in FIGURES) + " |",
                  "|---" * (len(FIGURES) + 1) + "|"]
        for seed, s in enumerate(results[name]):
            lines.append(f"| {seed} | " + " | ".join(fmt(s[k], p) for k, _, p, _ in FIGURES) + " |")
        lines.append("| **median** | " + " | ".join(fmt(median([s[k] for s in results[name]]), p)
                                                    for k, _, p, _ in FIGURES) + " |")
        solved = sum(1 for s in results[name] if (s["final_eval_return"] or -1e9) >= SOLVED)
        lines += ["", f"Final evaluation >= -200 on {solved} of {len(results[name])} seeds.", ""]
    return "\n".join(lines)


def wallclock_page(results: dict, path: Path) -> None:
    pio = ddpg.load_plotly().io
    traces = []
    for i, (name, seeds) in enumerate(results.items()):
        curves = [(np.array([t for t, _ in s["eval_curve"]]), np.array([r for _, r in s["eval_curve"]]))
                  for s in seeds]
        traces += ddpg.line(name, curves, ddpg.COLORS[i], mode="lines+markers")
    n = len(next(iter(results.values())))
    fig = ddpg.figure(traces, f"Pendulum-v1: evaluation return against wall-clock seconds "
                              f"(mean of {n} seeds, band: min-max)", xtitle="seconds since training started",
                      ytitle="mean evaluation return (10 episodes)")
    fig["layout"]["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": SOLVED, "y1": SOLVED,
                                "line": {"dash": "dot", "color": "#888"}}]
    pio.write_html(fig, path, include_plotlyjs=True, validate=False)


def machine_description() -> str:
    import platform
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.release()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="run seeds 0 .. N-1")
    p.add_argument("--compare-sb3", action="store_true", help="also run Stable-Baselines3's DDPG (rl-zoo settings)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="where results go")
    p.add_argument("--total-steps", type=int, default=None,
                   help="shorter runs for a smoke test (default: each side's own budget, 20,000)")
    p.add_argument("--ddpg-flags", default="", help="extra flags for ddpg.py, to time a variant of the defaults")
    p.add_argument("--sb3-worker", type=int, metavar="SEED", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    steps = args.total_steps or SB3_ZOO["total_steps"]
    if args.sb3_worker is not None:
        sb3_worker(args.sb3_worker, out, steps, eval_every=ddpg.Config.eval_every,
                   eval_episodes=ddpg.Config.eval_episodes)
        return 0
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.compare_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            p.error("--compare-sb3 needs Stable-Baselines3: pip install -r benchmarks/requirements.txt")
    sides = {"ddpg.py": []} | ({"SB3": []} if args.compare_sb3 else {})
    for seed in range(args.seeds):  # interleaved, so drift in the machine's speed hits both sides alike
        for name in sides:
            run_dir = out / "runs" / ("ours" if name == "ddpg.py" else "sb3") / f"seed{seed}"
            if run_dir.exists():  # ddpg.py refuses to overwrite a run, so an earlier one goes first
                shutil.rmtree(run_dir)
            if name == "ddpg.py":
                cmd = [sys.executable, "ddpg.py", "--env", "Pendulum-v1", "--seed", str(seed), "--out", str(run_dir)]
                cmd += ["--total-steps", str(args.total_steps)] if args.total_steps else []
                cmd += shlex.split(args.ddpg_flags)
            else:
                cmd = [sys.executable, __file__, "--sb3-worker", str(seed), "--out", str(run_dir),
                       "--total-steps", str(steps)]
            run_dir.mkdir(parents=True)  # its stdout.log goes inside; ddpg.py takes an empty folder
            process = run(cmd, run_dir / "stdout.log")
            result = {**analyse(run_dir), **process}
            sides[name].append(result)
            print(f"{name:8s} seed {seed}: solved (moving average) at "
                  f"{fmt(result['seconds_to_solve_ma'], '{:.1f} s')}, final eval "
                  f"{fmt(result['final_eval_return'], '{:.1f}')}, {result['steps_per_second']:,.0f} steps/s, "
                  f"peak {result['peak_rss_mib']:,.0f} MiB", flush=True)
    cmd = "python benchmarks/pendulum.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(sides, cmd, machine_description())
    print("\n" + text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"command": cmd, "machine": machine_description(),
                                                  "results": sides}, indent=1) + "\n")
    wallclock_page(sides, out / "wallclock.html")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'wallclock.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
