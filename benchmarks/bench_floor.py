"""The cost floor of evaluation and BatchNorm recalibration on this machine, with torch's own `update_bn` as the yardstick.

    python benchmarks/bench_floor.py [--models resnet56 resnet20] [--n 1024] [--n-test 2000] [--out FILE]

For each model (pruned at 90%, global magnitude), in one process, figures measured one after the other:

- evaluation throughput (img/s) over `--n-test` test images: NCHW fp32, channels_last fp32, channels_last bf16
  autocast; the top-1 of each and how many predictions differ from NCHW fp32;
- BatchNorm recalibration on `--n` calibration images: `asr_lit`'s exact `recalibrate_bn` (one pass, and streamed in
  chunks of `--chunk`), against `torch.optim.swa_utils.update_bn` over batches of `--chunk` (its running variance is
  a momentum-free average of per-batch variances, not the pooled variance): seconds, and the largest relative
  difference of the running variances from the exact one-pass result;
- the statistics a bf16 pass would give: the largest relative error of per-channel variances at the block outputs.
Each timing is the median of `--repeats` runs after a warm-up.
"""
import argparse, copy, statistics, time
import torch, torch.nn as nn
from torch.optim.swa_utils import update_bn
from asr_lit.checkpoints import load_model
from asr_lit.prune import prune_model
from asr_lit.data import cifar10, calib_sample, stratified_subset
from asr_lit.passes import recalibrate_bn

def timed(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), r

def preds(model, x, cl, bf16, bs=500):
    m = copy.deepcopy(model).eval()
    if cl: m = m.to(memory_format=torch.channels_last)
    out = []
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(x), bs):
            xb = x[i:i+bs]
            out.append(m(xb.contiguous(memory_format=torch.channels_last) if cl else xb).argmax(1))
    return torch.cat(out)

def bn_vars(model): return {n: m.running_var.clone() for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}

def max_rel(a, b): return max(float(((a[k] - b[k]).abs() / b[k].abs().clamp_min(1e-12)).max()) for k in b)

def bench(name, a, out):
    dense = load_model(name).eval()
    pruned = prune_model(dense, 0.9)
    calib = calib_sample(cifar10('train'), a.n, seed=0)
    test = stratified_subset(cifar10('test'), a.n_test, 0); x, y = test.floats(), test.y
    out(f"\n## {name}, 90% global magnitude; evaluation on {len(x)} stratified JPEG CIFAR-10 test images, recalibration on {len(calib)} training images")
    ref = None
    for label, cl, bf16 in (('NCHW fp32', False, False), ('channels_last fp32', True, False), ('channels_last bf16', True, True)):
        t, p = timed(lambda: preds(dense, x, cl, bf16), a.repeats)
        if ref is None: ref, t_ref = p, t
        out(f"  eval {label:<20} {len(x)/t:8.0f} img/s  ({t_ref/t:4.2f}x NCHW fp32)  top-1 {100*(p == y).float().mean():.2f}%  "
            f"{int((p != ref).sum())} predictions differ from NCHW fp32")
    exact = copy.deepcopy(pruned); recalibrate_bn(exact, calib); want = bn_vars(exact)
    figs = {}
    figs['recalibrate_bn, one pass'] = lambda: recalibrate_bn(copy.deepcopy(pruned), calib)
    figs[f'recalibrate_bn, chunks of {a.chunk}'] = lambda: recalibrate_bn(copy.deepcopy(pruned), calib, max_batch=a.chunk)
    def swa():
        m = copy.deepcopy(pruned)
        update_bn([(xb,) for xb in calib.split(a.chunk)], m); return m
    figs[f'torch update_bn, batches of {a.chunk}'] = swa
    res = {}
    for label, f in figs.items():
        t, m = timed(f, a.repeats); res[label] = t
        out(f"  recal {label:<32} {t:6.2f} s  max rel. running-var difference from exact {max_rel(bn_vars(m), want):.2e}")
    t_upd = res[f'torch update_bn, batches of {a.chunk}']; best = min(v for k, v in res.items() if k.startswith('recalibrate'))
    out(f"  goal: asr_lit's exact recalibration <= update_bn's time: {best/t_upd:.2f}x ({'met' if best <= t_upd else 'NOT met'})")
    return res

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=['resnet56', 'resnet20'])
    p.add_argument('--n', type=int, default=1024); p.add_argument('--n-test', type=int, default=2000)
    p.add_argument('--chunk', type=int, default=256); p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', default=None, help='append the report to this file')
    a = p.parse_args(argv)
    lines = []
    def out(s): print(s, flush=True); lines.append(s)
    out(f"# bench_floor {time.strftime('%Y-%m-%d %H:%M')} | torch {torch.__version__} | {torch.get_num_threads()} threads")
    for m in a.models: bench(m, a, out)
    if a.out:
        with open(a.out, 'a') as f: f.write('\n' + '\n'.join(lines) + '\n')

if __name__ == '__main__': main()
