"""The cost floor of evaluation and BatchNorm recalibration on this machine, with torch's own `update_bn` as the yardstick.

    python benchmarks/bench_floor.py [--models resnet56 resnet20] [--n 1024] [--n-test 2000] [--out FILE]

For each model (pruned at 90%, global magnitude), in one process, figures measured one after the other:

- evaluation throughput (img/s) over `--n-test` test images, batches of 500: the model and images converted by
  hand (NCHW fp32, channels_last fp32, channels_last bf16 autocast), then `asr_lit.evaluate.predict` as it runs
  (its default, channels_last fp32 with the model's parameters left as they are; NCHW; bf16): the top-1 of each
  and how many predictions differ from NCHW fp32. Goal: the default >= 0.9 of the channels_last fp32 throughput;
- BatchNorm recalibration on `--n` calibration images: `asr_lit`'s exact `recalibrate_bn` (its default schedule,
  the old default of one NCHW pass, bf16), against `torch.optim.swa_utils.update_bn` over batches of `--chunk`
  (its running variance is a momentum-free average of per-batch variances, not the pooled variance): seconds, and
  the largest relative difference of the running variances from the exact one-pass NCHW result. Goal: the
  default <= update_bn's time;
- the chunk size: the staged recalibration with chunks of 32 ... 1,024 images, the measurement behind the CPU
  default (chunks sized for the cache);
- bf16 against fp32: the per-channel variances of the dense reference at every site (largest and median relative
  difference), and the top-1 of an ASR repair made and evaluated in bf16 or in fp32.
Each timing is the median of `--repeats` runs after a warm-up.
"""
import argparse, copy, statistics, time
import torch, torch.nn as nn
from torch.optim.swa_utils import update_bn
from asr_lit.checkpoints import load_model
from asr_lit.prune import prune_model
from asr_lit.data import cifar10, calib_sample, stratified_subset
from asr_lit.passes import recalibrate_bn, _plan
from asr_lit.evaluate import predict
from asr_lit.engine import repair, dense_reference

def timed(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), r

def preds(model, x, cl, bf16, bs=500):
    "The model and images converted by hand (the model's parameters too)."
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

def goal(label, value, target, op):
    ok = value <= target if op == '<=' else value >= target
    return f"  goal: {label} = {value:.2f} ({op} {target}: {'met' if ok else 'NOT met'})"

def bench(name, a, out):
    dense = load_model(name).eval()
    pruned = prune_model(dense, 0.9)
    calib = calib_sample(cifar10('train'), a.n, seed=0)
    test = stratified_subset(cifar10('test'), a.n_test, 0); x, y = test.floats(), test.y
    out(f"\n## {name}, 90% global magnitude; evaluation on {len(x)} stratified JPEG CIFAR-10 test images, recalibration on {len(calib)} training images")
    ref, t_ref, res = None, None, {}
    evals = {'NCHW fp32': lambda: preds(dense, x, False, False), 'channels_last fp32': lambda: preds(dense, x, True, False),
             'channels_last bf16': lambda: preds(dense, x, True, True),
             'predict() default': lambda: predict(dense, x, progress=False),
             'predict(batch_size=500) (old)': lambda: predict(dense, x, batch_size=500, progress=False),
             'predict(channels_last=False)': lambda: predict(dense, x, progress=False, channels_last=False),
             "predict(precision='bf16')": lambda: predict(dense, x, progress=False, precision='bf16')}
    for label, f in evals.items():
        t, p = timed(f, a.repeats); res[label] = t
        if ref is None: ref, t_ref = p, t
        out(f"  eval {label:<30} {len(x)/t:8.0f} img/s  ({t_ref/t:4.2f}x NCHW fp32)  top-1 {100*(p == y).float().mean():.2f}%  "
            f"{int((p != ref).sum())} predictions differ from NCHW fp32")
    out(goal("predict() default / channels_last fp32 throughput", res['channels_last fp32'] / res['predict() default'], 0.9, '>='))

    exact = recalibrate_bn(copy.deepcopy(pruned), calib, schedule='one pass', channels_last=False); want = bn_vars(exact)
    out(f"  recalibrate_bn default schedule: {_plan(pruned, calib, None, None, None, False, 'cpu', []).describe(len(calib))}")
    figs = {'recalibrate_bn() default': lambda: recalibrate_bn(copy.deepcopy(pruned), calib),
            'recalibrate_bn, one NCHW pass (old)': lambda: recalibrate_bn(copy.deepcopy(pruned), calib, schedule='one pass', channels_last=False),
            "recalibrate_bn(precision='bf16')": lambda: recalibrate_bn(copy.deepcopy(pruned), calib, precision='bf16')}
    def swa():
        m = copy.deepcopy(pruned)
        update_bn([(xb,) for xb in calib.split(a.chunk)], m); return m
    upd = f'torch update_bn, batches of {a.chunk}'
    figs[upd] = swa
    rec, diff = {}, {}
    for label, f in figs.items():
        rec[label], m = timed(f, a.repeats); diff[label] = max_rel(bn_vars(m), want)
    for label in figs:
        out(f"  recal {label:<36} {rec[label]:6.2f} s  ({rec[label] / rec[upd]:4.2f}x update_bn)  "
            f"max rel. running-var difference from exact {diff[label]:.2e}")
    out(goal("recalibrate_bn() default / update_bn time", rec['recalibrate_bn() default'] / rec[upd], 1.0, '<='))

    line = []
    for c in a.chunks:
        t, _ = timed(lambda: recalibrate_bn(copy.deepcopy(pruned), calib, max_batch=c), a.repeats)
        line.append(f"{c}: {t:.2f} s" + (" (one pass)" if c >= len(calib) else ""))
    out("  recalibration by chunk size (staged, channels_last fp32): " + ", ".join(line))

    r32 = dense_reference(dense, calib); r16 = dense_reference(dense, calib, precision='bf16')
    live = {k: s.var > 1e-10 * s.var.mean().clamp_min(1e-30) for k, s in r32.stats.items()}   # dead channels left out
    d = torch.cat([((r16.stats[k].var - s.var).abs() / s.var)[live[k]] for k, s in r32.stats.items()])
    dm = torch.cat([((r16.stats[k].mean - s.mean).abs() / s.var.sqrt())[live[k]] for k, s in r32.stats.items()])
    out(f"  bf16 statistics (dense reference, {len(r32.stats)} sites): relative variance difference from fp32 median {d.median():.1e}, "
        f"largest {d.max():.1e}; mean difference / std median {dm.median():.1e}, largest {dm.max():.1e}")
    m32 = repair(pruned, dense, calib, 'asr', reference=r32)[0]
    m16 = repair(pruned, dense, calib, 'asr', reference=r16, precision='bf16')[0]
    p = {'fp32 repair, fp32 eval': predict(m32, x, progress=False), 'bf16 repair, fp32 eval': predict(m16, x, progress=False),
         'fp32 repair, bf16 eval': predict(m32, x, progress=False, precision='bf16'),
         'bf16 repair, bf16 eval': predict(m16, x, progress=False, precision='bf16')}
    base = p['fp32 repair, fp32 eval']
    out("  bf16 accuracy (ASR, 90%): " + "; ".join(f"{k} top-1 {100*(v == y).float().mean():.2f}% ({int((v != base).sum())} differ)" for k, v in p.items()))
    return res, rec

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=['resnet56', 'resnet20'])
    p.add_argument('--n', type=int, default=1024); p.add_argument('--n-test', type=int, default=2000)
    p.add_argument('--chunk', type=int, default=256, help="update_bn's batch size")
    p.add_argument('--chunks', type=int, nargs='*', default=[32, 64, 128, 256, 512, 1024], help='chunk sizes to time')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--note', default='', help='a line to print under the header (e.g. the machine was busy)')
    p.add_argument('--out', default=None, help='append the report to this file')
    a = p.parse_args(argv)
    lines = []
    def out(s): print(s, flush=True); lines.append(s)
    import os
    out(f"# bench_floor {time.strftime('%Y-%m-%d %H:%M %Z')} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
        f"load average {' '.join(f'{l:.2f}' for l in os.getloadavg())}")
    if a.note: out(f"note: {a.note}")
    for m in a.models: bench(m, a, out)
    if a.out:
        with open(a.out, 'a') as f: f.write('\n' + '\n'.join(lines) + '\n')

if __name__ == '__main__': main()
