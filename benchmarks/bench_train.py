"""Training throughput: asr_lit's trainer against a bare SGD step loop on the same model, batch and precision.

    python benchmarks/bench_train.py [--models resnet20 cifar_resnet18] [--steps 8] [--bs 128] [--side 32] [--out FILE]
    python benchmarks/bench_train.py --models tv_resnet18 tv_resnet50 --side 128   # Imagenette's setting: random resized crops

The bare loop is the floor of what any trainer can do: one fixed channels_last batch, forward, loss, backward,
SGD step, nothing else. The trainer's figure comes from `train_model` itself (crop/flip augmentation, or at a side
above 32 random resized crops of images 1.25x larger, as `train_checkpoint(data='imagenette')` trains; batch
gathering, one-cycle schedule, loss bookkeeping), timed over its second epoch so that oneDNN's first-call
setup is left out of both. Ratios compare figures measured in the same run, one after the other.
"""
import argparse, platform, time
from pathlib import Path
import torch, torch.nn.functional as F
from asr_lit.models import create_model
from asr_lit.data import ImageSet
from asr_lit.train import train_model, native_bf16

def bare_step_rate(arch, bs, steps, bf16, warmup=2, side=32):
    "Images per second of a bare SGD step loop (fixed batch, channels_last, optional bf16 autocast)."
    torch.manual_seed(0)
    m = create_model(arch).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.rand(bs, 3, side, side).contiguous(memory_format=torch.channels_last); y = torch.randint(0, 10, (bs,))
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16): out = m(x)
        loss = F.cross_entropy(out.float(), y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(warmup): step()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    return bs*steps / (time.perf_counter() - t0)

def trainer_rate(arch, bs, steps, bf16, side=32):
    "Images per second of `train_model` over its second epoch of `steps` batches of random uint8 images."
    g = torch.Generator().manual_seed(0)
    n = bs*steps
    stored = side if side <= 32 else round(1.25 * side)   # the larger images random resized crops are cut from
    data = ImageSet(torch.randint(0, 256, (n, 3, stored, stored), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g),
                    [str(i) for i in range(10)], 'random uint8 images', 'train')
    torch.manual_seed(0)
    aug = dict(aug='rrc_flip', sizes=[side, side]) if side > 32 else {}
    log = train_model(create_model(arch), data, epochs=2, bs=bs, device='cpu', precision='bf16' if bf16 else 'fp32', progress=False, **aug)
    return n / (log.seconds.iloc[1] - log.seconds.iloc[0])

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=['resnet20', 'cifar_resnet18'])
    p.add_argument('--steps', type=int, default=8); p.add_argument('--bs', type=int, default=128)
    p.add_argument('--side', type=int, default=32, help='image side (above 32: random resized crops, as for Imagenette)')
    p.add_argument('--out', default=None, help='append the printed figures to this file')
    a = p.parse_args(argv)
    lines = [f"# bench_train {time.strftime('%Y-%m-%d %H:%M')} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
             f"{platform.machine()} | native bf16: {native_bf16('cpu')} | batch {a.bs}, {a.steps} timed steps, {a.side} px, channels_last",
             f"{'model':<16}{'precision':<10}{'bare img/s':>11}{'trainer img/s':>15}{'trainer/bare':>14}"]
    print(lines[0]); print(lines[1])
    rates = {}
    for arch in a.models:
        for prec in ('fp32', 'bf16'):
            bare = bare_step_rate(arch, a.bs, a.steps, prec == 'bf16', side=a.side)
            tr = trainer_rate(arch, a.bs, a.steps, prec == 'bf16', side=a.side)
            rates[arch, prec] = bare, tr
            lines.append(f"{arch:<16}{prec:<10}{bare:>11.0f}{tr:>15.0f}{tr/bare:>14.2f}"); print(lines[-1], flush=True)
    for arch in a.models:
        (bf, tf), (bb, tb) = rates[arch, 'fp32'], rates[arch, 'bf16']
        lines.append(f"{arch}: bf16/fp32 bare {bb/bf:.2f}x, trainer {tb/tf:.2f}x; trainer at {tb/bb:.2f} of the bare bf16 step (goal >= 0.85)")
        print(lines[-1])
    if a.out: 
        with open(a.out, 'a') as f: f.write('\n'.join(lines) + '\n\n')
    return rates

if __name__ == '__main__': main()
