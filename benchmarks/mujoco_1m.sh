#!/usr/bin/env bash
# The README's headline table: DDPG and TD3 at 1,000,000 steps, 3 seeds, on four MuJoCo tasks, at the
# MuJoCo preset's 400-300, the TD3 paper's width (issue 35; given explicitly here, so these commands run
# the same runs whatever the preset says). Two lanes, one per core, each running its suites one run at a
# time. Measured here: a 400-300 run on one core beside another takes 4 to 4.6 hours per 10^6 steps, so
# about 53 hours of both cores for all 24. The lanes run the settings with a goal first (TD3 on all four
# tasks, then DDPG on HalfCheetah and Hopper), and Walker2d and Ant DDPG, measured and explained, last.
# Safe to run again at any time: each suite call resumes its runs from model.pt where one exists (those first) and
# skips those already at its budget, then rewrites its tables from the metrics files.
# The README's table and docs/mujoco-1m.png: python benchmarks/mujoco_1m.py --png docs/mujoco-1m.png
# Beside it, made by earlier versions of this script: the 64-64 table (benchmarks/results/mujoco-1m*,
# the preset until v5; --hidden-sizes 64 64 in --ddpg-flags redoes it) and the 256-256 runs that chose
# between 256-256 and 400-300 (mujoco-1m-256*: Walker2d-v5 TD3 to 380,000 steps, Ant-v5 TD3 seed 0).
set -euo pipefail
cd "$(dirname "$0")/.."
suite() { python benchmarks/mujoco_suite.py --threads 1 --jobs 1 "$@"; }
R=benchmarks/results
W="--hidden-sizes 400 300"
NO_CF="--env-kwargs include_cfrc_ext_in_observation:False"  # Ant without the contact forces
(
  suite --total-steps 1000000 --tasks HalfCheetah-v5 Hopper-v5 --ddpg-flags="--td3 $W" --out $R/mujoco-1m-400-300-td3
  suite --total-steps 1000000 --tasks HalfCheetah-v5 Hopper-v5 --ddpg-flags="$W" --out $R/mujoco-1m-400-300
) & lane_a=$!
(
  suite --total-steps 1000000 --tasks Ant-v5 --ddpg-flags="--td3 $W $NO_CF" \
    --out $R/mujoco-1m-400-300-ant-td3-no-contact-forces
  suite --total-steps 1000000 --tasks Walker2d-v5 --ddpg-flags="--td3 $W" --out $R/mujoco-1m-400-300-td3
  suite --total-steps 1000000 --tasks Walker2d-v5 --ddpg-flags="$W" --out $R/mujoco-1m-400-300
  suite --total-steps 1000000 --tasks Ant-v5 --ddpg-flags="$W $NO_CF" --out $R/mujoco-1m-400-300-ant-no-contact-forces
) & lane_b=$!
ok=true
wait $lane_a || ok=false
wait $lane_b || ok=false
$ok  # a lane that failed stops the script here, once both have ended
# Both lanes wrote the tables of mujoco-1m-400-300 and -td3, each from the runs it saw: once more, from all of them.
for out in mujoco-1m-400-300 mujoco-1m-400-300-td3; do
  suite --total-steps 1000000 --tasks HalfCheetah-v5 Hopper-v5 Walker2d-v5 --out $R/$out --tables-only
done
