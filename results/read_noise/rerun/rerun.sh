#!/bin/sh
# README tables that the default read-noise model (clocked) moves, re-run with the current code.
set -e
export OMP_NUM_THREADS=1
P=.venv/bin/pcm-sim
R=results/read_noise/rerun
$P evaluate runs/demo/model.pt --chips 5 --json $R/demo_pcm_nandakumar2019.json
$P evaluate runs/demo/model.pt --chips 5 --profile pcm_hermes2023 --json $R/demo_pcm_hermes2023.json
$P evaluate runs/studies/snu1/model.pt --profile pcm_nandakumar2019 --chips 5 --times 1min 1d --json $R/snu1_pcm_nandakumar2019.json
$P evaluate runs/studies/snu1/model.pt --profile pcm_hermes2023 --chips 5 --times 1min 1d --json $R/snu1_pcm_hermes2023.json
$P sweep scripts/examples/profile_sweep.yaml --db runs/read_noise/profile_sweep.sqlite --workers 1 --no-progress
$P plot runs/read_noise/profile_sweep.sqlite --out $R/profile_sweep
$P validate runs/studies/snu1/model.pt --profile pcm_hermes2023 --spec scripts/examples/validation_spec.yaml --out $R/validation --no-progress
$P evaluate runs/studies/snu1/model.pt --profile pcm_hermes2023 --chips 20 --seed 20 --limit 1000 --times 1h 1y --json $R/snu1_hermes_chips20-39_clocked.json
.venv/bin/python scripts/robustness_study.py --db runs/read_noise/robustness.sqlite --workers 1 > runs/read_noise/robustness.log 2>&1
cp runs/read_noise/robustness/* $R/robustness/
cp runs/read_noise/robustness.log $R/robustness/robustness_study.txt
