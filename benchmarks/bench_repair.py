"""What a repair costs, measured against one forward pass.

For a pruned model (90% global magnitude) and a calibration set, each figure runs in a fresh subprocess:

- forward: one forward pass of the pruned model over the calibration set (no gradients; NCHW, the whole batch at
  once: the yardstick of the goal asr <= 1.0 forward);
- asr: `repair(..., 'asr')` end to end with the defaults (dense statistics not cached: a full repair): on the CPU,
  staged in cache-sized chunks, channels_last fp32;
- asr_1pass: the same repair on the defaults before issue 23: one pass, NCHW (`schedule='one pass', channels_last=False`);
- asr_bf16: the default repair with `precision='bf16'` (not exact: an option for speed);
- chunked: the same repair streamed in chunks of `--chunk` images (`max_batch`; the staged schedule);
- naive: the naive layer-by-layer repair of `benchmarks/_reference.py` (one full forward pass per site);
- replay (with `--replay`): the chunked repair with the replay schedule.
- lsq, lsq_dense (with `--lsq`): least-squares reconstruction of every pruned layer (`asr_lit.reconstruct`),
  target 'local' and 'dense' (the dense model's pass runs in lockstep); goal <= 5 forward passes.

Time is wall-clock inside the subprocess, after loading and a warm-up forward of 16 images. Memory is the peak
resident set size above what the process held after the warm-up (CPU; the peak is reset through
/proc/self/clear_refs before the figure), or `torch.cuda.max_memory_allocated` above the allocation after the
warm-up (CUDA). Each figure is repeated (`--repeats`, the naive one `--naive-repeats` times, default once: it
is long) in interleaved rounds, so that each ratio compares runs made close together; ratios are the median of
the per-round ratios, times the median of the runs.

CPU: `python benchmarks/bench_repair.py --out benchmarks/results-cpu.txt` (CIFAR ResNet-56, 1,024 images).
CUDA (when present): every model of `asr_lit.models.available_models()`, `--out benchmarks/results-cuda.txt`.
Smoke test: `--smoke` (ResNet-20, 32 images, one round).
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = ('forward', 'asr', 'asr_1pass', 'asr_bf16', 'chunked', 'naive', 'replay', 'lsq', 'lsq_dense')


# --- the worker: one figure, in its own process ----------------------------------------------------------------

def _rss_mb(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'): return int(line.split()[1]) / 1024
    return float('nan')


def _reset_peak_rss():
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False


def worker(a):
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    sys.path.insert(0, str(HERE))
    import asr_lit.engine as E
    from asr_lit.checkpoints import load_model
    from asr_lit.prune import prune_model
    dev = torch.device(a.device)
    dense = load_model(a.model).to(dev).eval()
    pruned = prune_model(dense, a.sparsity)
    calib = torch.load(a.calib).to(dev)
    from asr_lit.methods import get_method
    rule = get_method('asr').rule
    with torch.no_grad(): pruned(calib[:16])
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    sync()
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
    else: reset = _reset_peak_rss(); base = _rss_mb()
    t0 = time.perf_counter()
    sched = ''
    if a.figure == 'forward':
        with torch.no_grad(): pruned(calib)
    elif a.figure == 'asr': sched = E.repair(pruned, dense, calib, 'asr')[1].schedule
    elif a.figure == 'asr_1pass': sched = E.repair(pruned, dense, calib, 'asr', schedule='one pass', channels_last=False)[1].schedule
    elif a.figure == 'asr_bf16': sched = E.repair(pruned, dense, calib, 'asr', precision='bf16')[1].schedule
    elif a.figure == 'chunked': sched = E.repair(pruned, dense, calib, 'asr', max_batch=a.chunk)[1].schedule
    elif a.figure == 'replay': sched = E.repair(pruned, dense, calib, 'asr', max_batch=a.chunk, schedule='replay')[1].schedule
    elif a.figure in ('lsq', 'lsq_dense'):
        from asr_lit.reconstruct import lsq_reconstruct
        lsq_reconstruct(pruned, dense, calib, target='dense' if a.figure == 'lsq_dense' else 'local')
        sched = 'one pass, a Gram per pruned layer' + (', dense pass in lockstep' if a.figure == 'lsq_dense' else '')
    elif a.figure == 'naive':
        from _reference import naive_repair
        naive_repair(pruned, dense, calib, rule, site='block', recal='before', bn='train')
        sched = 'one full pass per site'
    sync()
    secs = time.perf_counter() - t0
    if dev.type == 'cuda': peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20; total = torch.cuda.max_memory_allocated(dev) / 2**20
    else: total = _rss_mb('VmHWM'); peak = total - base if reset else float('nan')
    print('RESULT ' + json.dumps(dict(figure=a.figure, seconds=secs, peak_mb=peak, total_mb=total, schedule=sched)))


# --- the driver ------------------------------------------------------------------------------------------------

def machine(device):
    import torch
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), cpu)
    except OSError: pass
    lines = [f"CPU: {cpu}, {os.cpu_count()} logical cores; torch {torch.__version__}, "
             f"{torch.get_num_threads()} intra-op threads by default; Python {platform.python_version()}"]
    if device == 'cuda': lines.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return lines


def load_str():
    l1, l5, l15 = os.getloadavg()
    return f"{l1:.2f} {l5:.2f} {l15:.2f}"


def calib_for(model, n, path):
    import torch
    from asr_lit.data import cifar10, calib_sample
    from asr_lit.checkpoints import weights_dir
    card = weights_dir() / f'{model}.json'
    data = json.loads(card.read_text()).get('data', '') if card.is_file() else ''
    if 'imagenette' in str(data).lower():
        from asr_lit.data import imagenette
        x = calib_sample(imagenette('train'), n, seed=0)
    else: x = calib_sample(cifar10('train'), n, seed=0)
    torch.save(x.contiguous(), path)
    return tuple(x.shape)


def run_figure(a, model, figure, calib_path, device):
    cmd = [sys.executable, __file__, '--worker', figure, '--model', model, '--calib', calib_path, '--device', device,
           '--chunk', str(a.chunk), '--sparsity', str(a.sparsity)] + (['--threads', str(a.threads)] if a.threads else [])
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    line = next((l for l in p.stdout.splitlines() if l.startswith('RESULT ')), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"{figure} on {model} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(line[7:])


def bench_model(a, model, device, out):
    with tempfile.TemporaryDirectory() as tmp:
        cpath = str(Path(tmp) / 'calib.pt')
        shape = calib_for(model, a.n, cpath)
        figs = (['forward', 'asr', 'asr_1pass', 'asr_bf16', 'chunked'] + ([] if a.no_naive else ['naive']) + (['replay'] if a.replay else [])
                + (['lsq', 'lsq_dense'] if a.lsq else []))
        res = {f: [] for f in figs}
        out(f"\n## {model}, {int(a.sparsity*100)}% sparsity, calibration {shape[0]} x {tuple(shape[1:])} ({device})")
        for r in range(a.repeats):
            for f in figs:
                if f == 'naive' and r >= a.naive_repeats: continue
                res[f].append(run_figure(a, model, f, cpath, device))
                x = res[f][-1]
                out(f"  round {r+1}: {f:8s} {x['seconds']:8.2f} s  peak +{x['peak_mb']:8.1f} MB   (load {load_str()})")
    fwd = [x['seconds'] for x in res['forward']]
    def ratio(f, ref):
        rs = [x['seconds'] / ref[i] for i, x in enumerate(res[f])]
        return statistics.median(rs)
    asr = [x['seconds'] for x in res['asr']]
    mem = 'peak RSS above baseline' if device == 'cpu' else 'peak CUDA allocation above baseline'
    out(f"  {'figure':10s} {'runs':>4s} {'median s':>9s} {'x forward':>10s} {'x asr':>7s} {mem + ' (MB, median)':>40s}")
    for f in figs:
        s = [x['seconds'] for x in res[f]]
        out(f"  {f:10s} {len(s):4d} {statistics.median(s):9.2f} {ratio(f, fwd):10.2f} {ratio(f, asr):7.2f} "
            f"{statistics.median(x['peak_mb'] for x in res[f]):40.1f}")
    for f in figs:
        if res[f][0]['schedule']: out(f"  {f}: {res[f][0]['schedule']}")
    g_asr, g_chunk = ratio('asr', fwd), ratio('chunked', asr)
    g_1 = ratio('asr_1pass', fwd)
    goals = [f"asr repair / forward = {g_asr:.2f} (goal <= 1.0, issue 23: {'met' if g_asr <= 1.0 else 'NOT met'})",
             f"asr_1pass (the old default) / forward = {g_1:.2f} (old goal <= 2.5: {'met' if g_1 <= 2.5 else 'NOT met'})",
             f"asr / asr_1pass = {ratio('asr', [x['seconds'] for x in res['asr_1pass']]):.2f}"]
    if 'naive' in figs:
        g_naive = ratio('naive', asr); goals.append(f"naive / asr = {g_naive:.1f} (goal >= 10: {'met' if g_naive >= 10 else 'NOT met'})")
    goals.append(f"chunked / asr = {g_chunk:.2f} (goal <= 2: {'met' if g_chunk <= 2 else 'NOT met'})")
    for f in ('lsq', 'lsq_dense'):
        if f in figs: g = ratio(f, fwd); goals.append(f"{f} / forward = {g:.2f} (goal <= 5: {'met' if g <= 5 else 'NOT met'})")
    out("  goals: " + "; ".join(goals))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--smoke', action='store_true', help='tiny settings: resnet20, 32 images, one round')
    ap.add_argument('--n', type=int, default=1024, help='calibration images')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--naive-repeats', type=int, default=1)
    ap.add_argument('--chunk', type=int, default=128, help='max_batch of the chunked figure')
    ap.add_argument('--sparsity', type=float, default=0.9)
    ap.add_argument('--threads', type=int, default=0, help='torch intra-op threads (0: torch default)')
    ap.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    ap.add_argument('--models', nargs='*', help='default: resnet56 on CPU, every available model on CUDA')
    ap.add_argument('--replay', action='store_true', help='also time the replay schedule (O(depth) passes)')
    ap.add_argument('--lsq', action='store_true', help='also time least-squares reconstruction (targets local and dense)')
    ap.add_argument('--no-naive', action='store_true', help='skip the naive layer-by-layer reference (minutes)')
    ap.add_argument('--note', default='', help='a line for the report (e.g. that the machine was busy)')
    ap.add_argument('--out', help='also write the report to this file')
    ap.add_argument('--append', action='store_true', help='append to --out instead of replacing it')
    ap.add_argument('--worker', choices=FIGURES, help=argparse.SUPPRESS)
    ap.add_argument('--model', help=argparse.SUPPRESS)
    ap.add_argument('--calib', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker: a.figure = a.worker; return worker(a)
    import torch
    from asr_lit.checkpoints import available_models
    device = 'cuda' if a.device == 'cuda' or (a.device == 'auto' and torch.cuda.is_available()) else 'cpu'
    if a.smoke: a.n, a.repeats, a.naive_repeats, a.chunk, models = 32, 1, 1, 8, ['resnet20']
    else: models = a.models or (available_models() if device == 'cuda' else ['resnet56'])
    lines = []
    def out(s, quiet=False):
        print(s, flush=True)
        if not quiet: lines.append(s)
    out(f"# bench_repair: repair cost against one forward pass ({time.strftime('%Y-%m-%d %H:%M %Z')})")
    for l in machine(device): out(l)
    if a.threads: out(f"intra-op threads set to {a.threads}")
    if a.note: out(f"note: {a.note}")
    out(f"load average at start (1/5/15 min): {load_str()}   (the machine is shared: see the per-round loads below)")
    for m in models: bench_model(a, m, device, out)
    out(f"\nload average at end: {load_str()}")
    if a.out:
        with open(a.out, 'a' if a.append else 'w') as f: f.write(('\n' if a.append else '') + '\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
