"""Sweep throughput on many workers: 2 worker processes x 1 torch thread against 1 worker x 2 threads, on this machine.

    python benchmarks/bench_dist.py [--archs resnet20] [--seeds 4] [--n-test 1000] [--out FILE]
    python benchmarks/bench_dist.py --smoke      # seconds: the tests' check that every figure prints

The same real sweep (pretrained CIFAR ResNet, JPEG CIFAR-10, global magnitude, BN-only and ASR and no repair, one unit
of work per calibration draw) runs three ways, each into a fresh CSV: in this process with every core
(`run_sweep`), on `local_pool(1, threads=cores)` and on `local_pool(cores, threads=1)`. Each figure is runs per
minute over the whole sweep, pool start-up and each worker's first data load included (what a person waits for);
the ratios compare figures of this one run. Every way must give the same rows (accuracies equal), or it says so.
"""
import argparse, os, platform, tempfile, time
from pathlib import Path
import pandas as pd
import torch
from asr_lit.sweep import SWEEP_KEYS, local_pool, run_sweep, sweep_grid


def timed(grid, executor=None, threads=None):
    "Runs per minute of `grid` swept into a fresh CSV; and its rows, sorted."
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d)/'r.csv'
        t0 = time.perf_counter()
        run_sweep(grid, csv, device='cpu', progress=False, executor=executor, threads=threads)
        dt = time.perf_counter() - t0
        return 60 * len(grid) / dt, dt, pd.read_csv(csv).sort_values(SWEEP_KEYS).reset_index(drop=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--archs', nargs='+', default=['resnet20'])
    p.add_argument('--seeds', type=int, default=4, help='calibration draws: one unit of work each')
    p.add_argument('--sparsities', type=float, nargs='+', default=[0.7, 0.9])
    p.add_argument('--n-test', type=int, default=1000)
    p.add_argument('--n-calib', type=int, default=256)
    p.add_argument('--smoke', action='store_true', help='tiny settings (ResNet-20, 2 draws, 1 sparsity, 100 test images)')
    p.add_argument('--out', default=None, help='also append the report to this file')
    a = p.parse_args()
    if a.smoke: a.seeds, a.sparsities, a.n_test, a.n_calib = 2, [0.9], 100, 32
    cores = os.cpu_count() or 1
    grid = sweep_grid(tuple(a.archs), tuple(a.sparsities), ('global',), ('none', 'bn_only', 'asr'), tuple(range(a.seeds)),
                      n_calib=a.n_calib, n_test=a.n_test)
    lines = [f"# bench_dist {time.strftime('%Y-%m-%d %H:%M')} | torch {torch.__version__} | {cores} cores | {platform.machine()} | "
             f"load average {os.getloadavg()[0]:.2f} | {len(grid)} runs in {a.seeds * len(a.archs)} units: {', '.join(a.archs)}, "
             f"sparsities {a.sparsities}, {a.n_calib} calibration images, {a.n_test} test images"]
    serial = timed(grid, threads=cores)
    with local_pool(1, threads=cores) as pool: one = timed(grid, pool)
    with local_pool(cores, threads=1) as pool: many = timed(grid, pool)
    lines.append(f"{'how':38s} {'runs/min':>9s} {'wall s':>8s}")
    for name, (rate, dt, _) in ((f'this process, {cores} threads', serial), (f'1 worker x {cores} threads', one),
                                (f'{cores} workers x 1 thread', many)):
        lines.append(f"{name:38s} {rate:9.1f} {dt:8.1f}")
    same = all(r[2][['acc', 'dense_acc']].equals(serial[2][['acc', 'dense_acc']]) for r in (one, many))
    lines.append(f"{cores} workers x 1 thread / 1 worker x {cores} threads: {many[0] / one[0]:.2f}x; "
                 f"1 worker / this process: {one[0] / serial[0]:.2f}x; rows equal across the three: {same}")
    text = '\n'.join(lines)
    print(text)
    if a.out: Path(a.out).open('a').write(text + '\n\n')
    if not same: raise SystemExit('the three ways gave different accuracies')


if __name__ == '__main__': main()
