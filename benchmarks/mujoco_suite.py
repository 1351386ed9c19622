"""ddpg.py on Gymnasium's MuJoCo tasks, by the TD3 paper's protocol, optionally beside SB3.

(Not named mujoco.py: a script of that name would shadow the mujoco package for every
process started from this folder.)

    python benchmarks/mujoco_suite.py                                   # every task, 3 seeds, its budget
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 --total-steps 1000000   # extend: resumes the runs
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 HalfCheetah-v5 --compare-sb3 --sb3-steps 100000
    python benchmarks/mujoco_suite.py --tasks HalfCheetah-v5 --seeds 1 --total-steps 20000 --jobs 1 --compare-sb3
                                                                  # speed, side by side, whole machine each
    python benchmarks/mujoco_suite.py --tasks Hopper-v5 --ddpg-flags=--td3 --out benchmarks/results/mujoco-td3
                                                                  # TD3: flags for ddpg.py (note the =)

Protocol (Fujimoto et al. 2018, section 6.1): ddpg.py with its MuJoCo preset, evaluation
every 5,000 steps, 10 episodes without noise. For each task: the max over evaluations of
the seed-mean curve and the mean of the last 10 evaluations, each with its spread over
seeds; steps/s while learning, updates/s, wall-clock and peak memory.

Seeds run as parallel processes (--jobs, one torch thread each when more than one). A run
folder that exists is resumed (`ddpg.py --resume`) up to the budget asked for, or left as
it is if it already got there: a long benchmark is built up over several sittings. SB3
runs (rl-zoo's MuJoCo settings) cannot resume: one that did not finish starts over. The
tables cover every run in OUT/runs, so a benchmark built up a task or a seed at a time reads
as one. Writes OUT/results.md, OUT/results.json and OUT/curves.html; each run's
metrics.jsonl stays in OUT/runs/.
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

TASKS = {  # task: budget in environment steps (issue 10's minimum)
    "InvertedPendulum-v5": 100_000, "InvertedDoublePendulum-v5": 100_000, "Reacher-v5": 100_000,
    "Hopper-v5": 300_000, "HalfCheetah-v5": 300_000, "Walker2d-v5": 300_000, "Ant-v5": 300_000,
}
EVAL_EVERY, EVAL_EPISODES = 5_000, 10
# One run on the GPU path against one on a CPU core, HalfCheetah-v5 at 64-64 (steps/s while learning, one
# H200 and its Xeon cores, benchmarks/results/gpu-2026-12-01): 1,350 against 438. Runs sharing one GPU take
# turns on it (three ran at a third of one's speed each), so the GPU is worth it while jobs < this ratio.
GPU_OVER_CPU_CORE = 3.1
SB3_ZOO = dict(gamma=0.99, buffer_size=1_000_000, learning_starts=10_000, noise_std=0.1, learning_rate=1e-3,
               net_arch=[400, 300], batch_size=256, train_freq=1, gradient_steps=1)  # rl-zoo's DDPG, MuJoCo


def evaluated_until(run_dir: Path) -> int:
    """The step of a run folder's last evaluation (0 if none): a run is done when it reached the budget.
    metrics.jsonl is what results/ keeps of a run, so this works without its checkpoints too."""
    if not (run_dir / "metrics.jsonl").exists():
        return 0
    return max((r["step"] for r in ddpg.read_metrics(run_dir)[0] if "eval_return" in r), default=0)


def process_history(run_dir: Path) -> list:
    """What run_process measured of each process that worked on this run (one per sitting)."""
    path = run_dir / "process.json"
    return json.loads(path.read_text()) if path.exists() else []


def suite_device(jobs: int, cuda: bool) -> tuple:
    """(the --device for the suite's runs, or None to leave ddpg.py's own choice, and why)."""
    if not cuda:
        return None, "device: the CPU (no CUDA GPU visible)"
    if jobs < GPU_OVER_CPU_CORE:
        return "cuda", (f"device: cuda, {jobs} run(s) sharing the GPU (one alone measured {GPU_OVER_CPU_CORE}x a "
                        "CPU core; runs take turns on it)")
    return "cpu", (f"device: cpu, one core a run: {jobs} runs sharing one GPU would each get less than a core's "
                   f"speed (one alone measured {GPU_OVER_CPU_CORE}x a core; runs take turns on it)")


def ddpg_command(task: str, seed: int, run_dir: Path, budget: int, threads: int, flags: str, device: str = None):
    """The command that brings run_dir to `budget` steps, or None if it is there already."""
    if evaluated_until(run_dir) >= budget:
        return None
    on = ["--device", device] if device else []
    if (run_dir / "model.pt").exists():  # extend it: the same run, continued exactly
        return [sys.executable, "ddpg.py", "--resume", str(run_dir), "--total-steps", str(budget),
                "--threads", str(threads)] + on
    if run_dir.exists():  # a run that stopped before its first checkpoint: start it again
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)  # its stdout.log goes inside; ddpg.py takes an empty folder
    return ([sys.executable, "ddpg.py", "--env", task, "--seed", str(seed), "--total-steps", str(budget),
             "--eval-every", str(EVAL_EVERY), "--eval-episodes", str(EVAL_EPISODES), "--threads", str(threads),
             "--out", str(run_dir)] + on + shlex.split(flags))


def summarise(runs: list, until: int = None) -> dict:
    """The protocol's figures over the seeds of one task, from evaluations up to `until` steps."""
    curves = [[(s, r) for s, _, r in run["eval_curve"] if until is None or s <= until] for run in runs]
    n = min(len(c) for c in curves)  # the steps every seed has reached
    returns = np.array([[r for _, r in c[:n]] for c in curves])  # (seeds, evaluations)
    steps = [s for s, _ in curves[0][:n]]
    best = int(returns.mean(0).argmax()) if n else None
    last10 = returns[:, -10:].mean(1) if n else np.array([np.nan])

    def mean(key):
        values = [run[key] for run in runs if run.get(key) is not None]
        return float(np.mean(values)) if values else None

    return {"seeds": len(runs), "steps": steps[-1] if n else 0,
            "max_mean_curve": float(returns.mean(0)[best]) if n else None,
            "max_mean_curve_std": float(returns[:, best].std()) if n else None,
            "max_mean_curve_step": steps[best] if n else None,
            "last10_mean": float(last10.mean()), "last10_std": float(last10.std()),
            "steps_per_second_learning": mean("steps_per_second_learning"),
            "updates_per_second": mean("updates_per_second"), "hours": mean("train_seconds") / 3600,
            "peak_rss_mib": max((run["peak_rss_mib"] for run in runs if run["peak_rss_mib"]), default=None)}


COLUMNS = [("steps", "steps", "{:,}"), ("seeds", "seeds", "{}"),
           ("max_mean_curve", "max of mean curve", "{:,.1f}"), ("max_mean_curve_std", "± std", "{:,.1f}"),
           ("max_mean_curve_step", "at step", "{:,}"),
           ("last10_mean", "mean of last 10 evals", "{:,.1f}"), ("last10_std", "± std", "{:,.1f}"),
           ("steps_per_second_learning", "steps/s learning", "{:,.0f}"),
           ("updates_per_second", "updates/s", "{:,.0f}"), ("hours", "hours per seed", "{:.2f}"),
           ("peak_rss_mib", "peak MiB", "{:,.0f}")]


def table(rows: dict) -> list:
    lines = ["| task | " + " | ".join(label for _, label, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for task, row in rows.items():
        lines.append(f"| {task} | " + " | ".join(fmt(row[k], p) for k, _, p in COLUMNS) + " |")
    return lines


def ratio_table(ours: dict, sb3: dict) -> list:
    keys = [("max_mean_curve", "max of mean curve", "{:,.1f}"), ("last10_mean", "mean of last 10 evals", "{:,.1f}"),
            ("steps_per_second_learning", "steps/s learning", "{:,.0f}"), ("updates_per_second", "updates/s", "{:,.0f}"),
            ("peak_rss_mib", "peak MiB", "{:,.0f}")]
    lines = ["| task | steps | " + " | ".join(f"{label}: ddpg.py | SB3 | ratio" for _, label, _ in keys) + " |",
             "|---" * (2 + 3 * len(keys)) + "|"]
    for task in sb3:
        a, b = ours[task], sb3[task]
        cells = []
        for k, _, p in keys:
            ratio = f"{a[k] / b[k]:.2f}" if a[k] is not None and b[k] and a[k] > 0 and b[k] > 0 else "-"  # returns < 0: none
            cells += [fmt(a[k], p), fmt(b[k], p), ratio]
        lines.append(f"| {task} | {b['steps']:,} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="default: all of " + ", ".join(TASKS))
    p.add_argument("--seeds", type=int, default=3, help="run seeds 0 .. N-1")
    p.add_argument("--total-steps", type=int, help="budget for every task (default: the task's own, see TASKS)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default: 2, one per core here)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads per run (default: 1 with several jobs, else the preset's)")
    p.add_argument("--ddpg-flags", default="", help="extra flags for new ddpg.py runs")
    p.add_argument("--compare-sb3", action="store_true", help="also run SB3's DDPG with rl-zoo's MuJoCo settings")
    p.add_argument("--sb3-steps", type=int, help="SB3's budget (default: the same as ddpg.py's)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mujoco", help="where results go")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        p.error("--seeds and --jobs must be at least 1")
    if args.compare_sb3:
        harness.need_sb3(p)
    unknown = [t for t in args.tasks if t not in TASKS and not args.total_steps]
    if unknown:
        p.error(f"no budget known for {', '.join(unknown)}: pass --total-steps")
    threads = args.threads or (1 if args.jobs > 1 else ddpg.config_for(args.tasks[0]).threads)
    sb3_threads = args.threads or (1 if args.jobs > 1 else 0)  # 0: torch's default, as SB3 users run it

    device, why = suite_device(args.jobs, ddpg.torch.cuda.is_available())
    budget = {t: args.total_steps or TASKS[t] for t in args.tasks}
    sb3_budget = {t: args.sb3_steps or budget[t] for t in args.tasks}
    jobs, where = [], []  # task by task; ddpg.py and SB3 interleaved seed by seed, so both meet the same machine
    for task in args.tasks:
        for seed in range(args.seeds):
            for side in ["ddpg.py"] + (["SB3"] if args.compare_sb3 else []):
                run_dir = args.out / "runs" / ("ours" if side == "ddpg.py" else "sb3") / task / f"seed{seed}"
                where.append((side, task, seed, run_dir))
                if side == "ddpg.py":
                    cmd = ddpg_command(task, seed, run_dir, budget[task], threads, args.ddpg_flags, device)
                elif evaluated_until(run_dir) >= sb3_budget[task]:
                    cmd = None
                else:  # SB3 cannot resume: its runs start over
                    run_dir.mkdir(parents=True, exist_ok=True)
                    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
                    cmd = harness.sb3_command(task, seed, run_dir, sb3_budget[task], EVAL_EVERY, EVAL_EPISODES,
                                              SB3_ZOO, sb3_threads)
                if cmd:
                    jobs.append((cmd, run_dir / "stdout.log", len(where) - 1))

    def done(i, process):
        side, task, seed, run_dir = where[jobs[i][2]]
        (run_dir / "process.json").write_text(json.dumps(process_history(run_dir) + [process]) + "\n")
        print(f"{side:8s} {task} seed {seed}: done, {process['process_seconds'] / 60:.1f} min, "
              f"peak {process['peak_rss_mib']:,.0f} MiB", flush=True)

    print(f"{len(jobs)} runs to do, {args.jobs} at a time; {why}", flush=True)
    harness.run_all([(cmd, log) for cmd, log, _ in jobs], args.jobs, done)

    # The tables cover every run in OUT/runs, not only this invocation's: a benchmark built up
    # over several sittings (a task at a time, SB3 a seed at a time) reads as one.
    results = {"ddpg.py": {}, "SB3": {}}
    for side, folder in (("ddpg.py", "ours"), ("SB3", "sb3")):
        for run_dir in sorted((args.out / "runs" / folder).glob("*/seed*")):
            if evaluated_until(run_dir) == 0:
                continue
            run = harness.read_run(run_dir)
            evals = [r for r in run.pop("records") if "q_start" in r][-10:]  # ddpg.py's overestimation check
            for key in ("q_start", "mc_return"):
                run[key] = float(np.mean([r[key] for r in evals])) if evals else None
            run["peak_rss_mib"] = max((h["peak_rss_mib"] for h in process_history(run_dir)), default=None)
            results[side].setdefault(run_dir.parent.name, []).append(run)
    ours = {t: summarise(runs) for t, runs in results["ddpg.py"].items()}
    command = shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [f"Every run in `{args.out.name}/runs`; last command: `python benchmarks/mujoco_suite.py {command}`  ",
             f"Machine: {harness.machine_description()}", "", "**ddpg.py** (MuJoCo preset; evaluation every "
             f"{EVAL_EVERY:,} steps, {EVAL_EPISODES} episodes without noise; ± is the std over seeds)", ""]
    lines += table(ours)
    lines += ["", "**ddpg.py's overestimation check** (report panel 3, mean of each seed's last 10 evaluations): "
              "the critic's Q(s0, mu(s0)) at the evaluation start states against the discounted return the "
              "policy collected from them", "", "| task | critic's Q(s0, mu(s0)) | collected | Q / collected |",
              "|---|---|---|---|"]
    for task, runs in results["ddpg.py"].items():
        q, collected = (float(np.mean([run[key] for run in runs])) for key in ("q_start", "mc_return"))
        lines.append(f"| {task} | {q:,.1f} | {collected:,.1f} | "
                     + (f"{q / collected:.2f} |" if collected > 0 else "- |"))
    if results["SB3"]:
        sb3 = {t: summarise(runs) for t, runs in results["SB3"].items()}
        ours_then = {t: summarise(results["ddpg.py"][t], until=sb3[t]["steps"]) for t in sb3}
        lines += ["", "**SB3** (rl-zoo's DDPG settings for MuJoCo)", ""] + table(sb3)
        lines += ["", "**ddpg.py / SB3 at the same step** (ddpg.py's evaluations up to SB3's budget)", ""]
        lines += ratio_table(ours_then, sb3)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"command": lines[0], "summary": ours, "runs": results},
                                                      indent=1) + "\n")
    panels = [(f"{task}: evaluation return (mean of {len(results['ddpg.py'][task])} seeds, band: min-max)",
               "environment steps", f"mean return over {EVAL_EPISODES} episodes",
               {side: [([s for s, _, _ in r["eval_curve"]], [v for _, _, v in r["eval_curve"]])
                       for r in results[side][task]] for side in results if task in results[side]}, {})
              for task in results["ddpg.py"]]
    harness.curves_page(panels, args.out / "curves.html")
    print(f"wrote {args.out / 'results.md'}, {args.out / 'results.json'}, {args.out / 'curves.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
