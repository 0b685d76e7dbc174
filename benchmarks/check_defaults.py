"""Do the fast default paths change any result? Old defaults against new, on the sweep's setting.

    python benchmarks/check_defaults.py [--archs resnet56 resnet20] [--sparsities 0.9 0.7] [--methods asr bn_only]

For each model, sparsity (global magnitude) and method, as `asr_lit.sweep.run_sweep` computes a row (calibration
draw seed 0 of 1,024 training images, a dense reference, `repair`, accuracy on the 2,000 stratified test images):

- old: the defaults before issue 23: one pass in NCHW for the dense reference and the repair, NCHW evaluation;
- new: today's defaults (on the CPU: staged in cache-sized chunks, channels_last; channels_last evaluation);
- and the two halves apart: new repair with NCHW evaluation, old repair with channels_last evaluation.

Printed per row: the largest absolute difference of the logits from old, how many of the 2,000 predictions
differ, and the accuracy of each.
"""
import argparse, time
import torch
from asr_lit.checkpoints import load_model
from asr_lit.prune import prune_model
from asr_lit.data import cifar10, calib_sample, stratified_subset
from asr_lit.engine import repair, dense_reference
from asr_lit.evaluate import predict

OLD = dict(schedule='one pass', channels_last=False)

def logits(model, x, channels_last, bs=500):
    "The logits `predict` takes its argmax of (same batches, same memory format)."
    out = []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = x[i:i+bs]
            out.append(model.eval()(xb.contiguous(memory_format=torch.channels_last) if channels_last else xb))
    return torch.cat(out)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--archs', nargs='+', default=['resnet56', 'resnet20'])
    p.add_argument('--sparsities', nargs='+', type=float, default=[0.9, 0.7])
    p.add_argument('--methods', nargs='+', default=['asr', 'bn_only'])
    p.add_argument('--n-calib', type=int, default=1024); p.add_argument('--n-test', type=int, default=2000)
    a = p.parse_args(argv)
    train, test = cifar10('train'), stratified_subset(cifar10('test'), a.n_test, 0)
    x, y = test.floats(), test.y
    calib = calib_sample(train, a.n_calib, seed=0)
    print(f"# check_defaults {time.strftime('%Y-%m-%d %H:%M')} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{len(calib)} calibration images, {len(x)} test images")
    print(f"{'arch':9s} {'sparsity':>8s} {'method':8s} {'repair / eval':24s} {'max|dlogit|':>11s} {'preds differ':>12s} {'acc old':>8s} {'acc new':>8s}")
    total = 0
    for arch in a.archs:
        dense = load_model(arch).eval()
        ref = {'old': dense_reference(dense, calib, **OLD), 'new': dense_reference(dense, calib)}
        for sp in a.sparsities:
            pruned = prune_model(dense, sp)
            for meth in a.methods:
                rep = {k: repair(pruned, dense, calib, meth, reference=ref[k], **(OLD if k == 'old' else {})) for k in ('old', 'new')}
                L0 = logits(rep['old'][0], x, False)
                acc0 = float((L0.argmax(1) == y).float().mean())
                for rk, cl in (('new', True), ('new', False), ('old', True)):
                    L = logits(rep[rk][0], x, cl)
                    if rk == 'new' and cl:       # the replica of predict's pass is the pass predict makes
                        assert torch.equal(L.argmax(1), predict(rep['new'][0], x, progress=False))
                    d = int((L.argmax(1) != L0.argmax(1)).sum())
                    total += d if (rk, cl) == ('new', True) else 0
                    label = f"{rk} / {'channels_last' if cl else 'NCHW'}"
                    print(f"{arch:9s} {sp:8.2f} {meth:8s} {label:24s} {float((L - L0).abs().max()):11.2e} {d:12d} "
                          f"{acc0:8.4f} {float((L.argmax(1) == y).float().mean()):8.4f}", flush=True)
                print(f"{'':28s} schedules: old {rep['old'][1].schedule[:60]!r}; new {rep['new'][1].schedule[:90]!r}")
    print(f"predictions that differ between the old and the new defaults, all rows: {total}")

if __name__ == '__main__': main()
