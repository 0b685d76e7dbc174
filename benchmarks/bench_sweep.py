"""What one repair costs inside a sweep, in forward passes (issue 21, part 2).

    python benchmarks/bench_sweep.py [--model resnet56] [--n 1024] [--sparsities 0.7 0.9] [--methods ...] [--out FILE]

A sweep measures the dense reference (the dense model's statistics and recalibrated BatchNorms) once per
calibration draw and reuses it for every sparsity and method (`compare_methods(reuse=...)`, the loop behind
`run_grid` and `run_sweep`). So a repair inside a sweep costs the pruned model's passes only. This prints, for
each method, the median `repair_s` of its rows against one forward pass of the pruned model over the same
calibration images, measured in the same process right before:

- `forward`: the fastest exact forward here, channels_last fp32 in chunks of `eval_batch` images, no gradients;
- `forward NCHW`: one NCHW fp32 pass over the whole batch (the yardstick of issue 23's goals), for reference.

Goal: <= 1.2 forwards per channel-wise repair (naive, mean_std, the asr family) inside a sweep.

Where the rest goes: one more repair (ASR, the highest sparsity) with the per-channel statistics timed (every
BatchNorm's input, for its recalibration, and every site's output: `StreamingStats.add`), printed in forwards.
"""
import argparse, os, platform, statistics, time
import torch
from asr_lit.checkpoints import load_model
from asr_lit.prune import prune_model
from asr_lit.data import cifar10, calib_sample, stratified_subset, synthetic
from asr_lit.evaluate import compare_methods, eval_batch

CHANNELWISE = ('naive', 'mean_std', 'asr', 'asr_rebuttal', 'asr_rebuttal_step', 'asr_ratio_median', 'asr_eb')

def forward_s(model, x, channels_last=True, repeats=3):
    "Median seconds of one no-grad forward of `model` over `x` (channels_last in cache-sized chunks, or NCHW at once)."
    def once():
        with torch.no_grad():
            if channels_last:
                m = model.to(memory_format=torch.channels_last)
                for c in x.contiguous(memory_format=torch.channels_last).split(eval_batch(m, x, 'cpu')): m(c)
            else: model.to(memory_format=torch.contiguous_format)(x.contiguous())
    once(); ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); once(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def _stats_seconds(dense, pruned, calib):
    "Seconds of one ASR repair of `pruned` (dense reference given) and of the `StreamingStats.add` calls in it."
    from asr_lit import stats
    from asr_lit.engine import repair, dense_reference
    ref, add, spent = dense_reference(dense, calib), stats.StreamingStats.add, dict(stats=0., calls=0)
    def timed(self, *args, **kw):
        t0 = time.perf_counter(); r = add(self, *args, **kw); spent['stats'] += time.perf_counter() - t0; spent['calls'] += 1
        return r
    repair(pruned, dense, calib, 'asr', reference=ref)   # warm-up
    stats.StreamingStats.add = timed
    try:
        t0 = time.perf_counter(); repair(pruned, dense, calib, 'asr', reference=ref); spent['repair'] = time.perf_counter() - t0
    finally: stats.StreamingStats.add = add
    return spent

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='resnet56'); p.add_argument('--n', type=int, default=1024)
    p.add_argument('--n-test', type=int, default=200, help='test images per row (the evaluation is not timed)')
    p.add_argument('--sparsities', type=float, nargs='+', default=[0.7, 0.9])
    p.add_argument('--methods', nargs='+', default=['bn_only', 'layerwise', 'naive', 'mean_std', 'asr', 'asr_eb'])
    p.add_argument('--smoke', action='store_true', help='tiny settings on synthetic images (the test suite runs this)')
    p.add_argument('--out', default=None, help='append the report to this file')
    a = p.parse_args(argv)
    if a.smoke:
        from asr_lit.models import create_model
        dense, train, test = create_model('resnet20').eval(), synthetic(64, seed=0), synthetic(32, seed=1)
        a.n, a.sparsities, a.methods = 32, [0.9], ['bn_only', 'asr']
    else:
        dense, train = load_model(a.model).eval(), cifar10('train')
        test = stratified_subset(cifar10('test'), a.n_test, seed=0)
    lines = [f"# bench_sweep {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | torch {torch.__version__} | "
             f"{torch.get_num_threads()} threads | {platform.machine()} | load {' '.join(f'{l:.2f}' for l in os.getloadavg())}",
             f"## {a.model if not a.smoke else 'resnet20 (random init, synthetic images)'}, {a.n} calibration images, "
             f"global magnitude {', '.join(f'{s:.0%}' for s in a.sparsities)}; one draw (seed 0), dense reference reused"]
    calib, reuse = calib_sample(train, a.n, seed=0), {}
    t0 = time.perf_counter()
    rows = compare_methods(dense, train, test, a.sparsities, ['none'], (0,), a.n, device='cpu', progress=False, reuse=reuse)
    first = time.perf_counter() - t0   # the dense accuracy, the dense reference of the draw and the unrepaired accuracy
    fw = {s: forward_s(reuse['pruned'][s] if s in reuse['pruned'] else prune_model(dense, s), calib) for s in a.sparsities}
    fw_nchw = {s: forward_s(prune_model(dense, s), calib, channels_last=False) for s in a.sparsities}
    rows = compare_methods(dense, train, test, a.sparsities, a.methods, (0,), a.n, device='cpu', progress=False, reuse=reuse)
    lines.append(f"  setup (dense accuracy, dense reference of the draw, unrepaired accuracy): {first:.2f} s, once per draw")
    lines.append(f"  {'sparsity':>8} {'method':<18} {'repair s':>9} {'x forward':>10} {'x forward NCHW':>15}")
    worst = 0.
    for _, r in rows.iterrows():
        f, g = r.repair_s / fw[r.sparsity], r.repair_s / fw_nchw[r.sparsity]
        if r.method in CHANNELWISE: worst = max(worst, f)
        lines.append(f"  {r.sparsity:>8.0%} {r.method:<18} {r.repair_s:>9.2f} {f:>10.2f} {g:>15.2f}")
    lines.append("  forward (channels_last, chunks): " + ', '.join(f"{s:.0%} {fw[s]:.2f} s" for s in a.sparsities)
                 + "; NCHW one pass: " + ', '.join(f"{s:.0%} {fw_nchw[s]:.2f} s" for s in a.sparsities))
    if any(m in CHANNELWISE for m in a.methods):
        lines.append(f"  goal: the slowest channel-wise repair / forward = {worst:.2f} (<= 1.2: {'met' if worst <= 1.2 else 'NOT met'})")
        s = max(a.sparsities); spent = _stats_seconds(dense, reuse['pruned'][s] if s in reuse.get('pruned', {}) else prune_model(dense, s), calib)
        lines.append(f"  where an ASR repair at {s:.0%} goes: {spent['repair']:.2f} s = {spent['repair'] / fw[s]:.2f} forwards, of which the "
                     f"per-channel statistics {spent['stats']:.2f} s = {spent['stats'] / fw[s]:.2f} forwards ({spent['calls']} calls)")
    print('\n'.join(lines))
    if a.out:
        with open(a.out, 'a') as f: f.write('\n' + '\n'.join(lines) + '\n')

if __name__ == '__main__': main()
