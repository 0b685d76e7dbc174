"""Naive layer-by-layer repair: the reference the one-pass engine is checked and timed against.

For each site in forward order, a full forward pass of the whole calibration batch measures that site with
every upstream correction (and recalibration) applied; then its correction is set. Nothing is shared with the
engine's passes: statistics are computed here in float64 from the raw activations, BatchNorms are recalibrated
here, corrections are applied by forward hooks. Only `asr_lit.sites.find_sites` (which sites exist) and the
`ChannelStats` container (what a rule takes) come from the package.

BatchNorm semantics are the engine's: a recalibrated BatchNorm normalises with its running statistics, which are
the mean and the *unbiased* variance of its input over the whole calibration batch. Two ways to get there:

- `bn='train'`: every pass runs the BatchNorms in training mode with `momentum=None` after resetting them (so
  the running statistics become the batch statistics), and a forward hook recomputes each BatchNorm's output
  with those running statistics (training mode would divide by the biased variance);
- `bn='per_bn'`: one more full pass per BatchNorm, in forward order, measures its input, sets its statistics.
"""
from __future__ import annotations
import copy
import torch, torch.nn as nn
from asr_lit.stats import ChannelStats
from asr_lit.sites import find_sites, batchnorms

__all__ = ['naive_repair', 'stats64']


class _Stop(Exception): pass


def stats64(x:torch.Tensor, y:torch.Tensor|None=None) -> ChannelStats:
    "Per-channel mean, biased variance (and covariance with `y`) over all dims but 1, in float64."
    C = x.shape[1]
    xc = x.detach().transpose(0, 1).reshape(C, -1).double()
    m = xc.mean(1)
    d = xc - m[:, None]
    cov = None
    if y is not None:
        yc = y.detach().transpose(0, 1).reshape(C, -1).double()
        cov = (d * (yc - yc.mean(1, keepdim=True))).mean(1)
    return ChannelStats(m, (d * d).mean(1), xc.shape[1], cov)


def _eval_bn_output(bn, inp, out):
    return nn.functional.batch_norm(inp[0], bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0., bn.eps)


def _forward(model, x, bn_train:bool):
    "One full forward pass; with `bn_train`, every BatchNorm recalibrated on `x` in it (reset, momentum=None)."
    hooks = []
    if bn_train:
        for bn in batchnorms(model).values():
            bn.reset_running_stats(); bn.momentum = None; bn.train()
            hooks.append(bn.register_forward_hook(_eval_bn_output, prepend=True))   # before any other hook
    try:
        with torch.no_grad(): return model(x)
    finally:
        for h in hooks: h.remove()
        model.eval()


def _capture(model, x, module, pre, bn_train, stop_early):
    "The input (`pre`) or output of `module` in a forward pass of `model` on `x` (all of the pass, unless `stop_early`)."
    got = {}
    def keep(v):
        got['v'] = v.detach().clone()
        if stop_early: raise _Stop
    h = (module.register_forward_pre_hook(lambda m, i: keep(i[0])) if pre else
         module.register_forward_hook(lambda m, i, o: keep(o)))
    try: _forward(model, x, bn_train)
    except _Stop: model.eval()
    finally: h.remove()
    return got['v']


def _order(model, x, sites, bns):
    "Sites (and BatchNorms, if `bns`) in the order a forward pass reaches them."
    order, hooks = [], []
    if bns:
        for n, bn in batchnorms(model).items():
            hooks.append(bn.register_forward_pre_hook(lambda m, i, n=n: order.append(('bn', n))))
    for n in sites: hooks.append(model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: order.append(('site', n))))
    with torch.no_grad(): model.eval()(x)
    for h in hooks: h.remove()
    return list(dict.fromkeys(order))


def _set_bn(bn, x):
    s = stats64(x)
    bn.running_mean.copy_(s.mean); bn.running_var.copy_(s.var * s.n / (s.n - 1))


def _recal_per_bn(model, x, stop_early):
    "Recalibrate every BatchNorm, one full pass per BatchNorm in forward order."
    for kind, n in _order(model, x[:2], [], True):
        bn = model.get_submodule(n)
        _set_bn(bn, _capture(model, x, bn, True, False, stop_early))


def naive_repair(pruned:nn.Module, dense:nn.Module, calib:torch.Tensor, rule, site:str='block', recal:str='before',
                 dense_recal:bool=True, bn:str='train', stop_early:bool=False, **opts):
    """Repair `pruned` site by site, one full forward pass per site (and, with `bn='per_bn'`, per BatchNorm).
    `rule(dense_stats, pruned_stats, **opts) -> (scale, shift)`; `rule.needs_pairs` adds `pruned.cov`.
    `stop_early`: end each measuring pass at the module measured (the same result, less time).
    Returns `(model, gains, stats)`: the repaired model (corrections as forward hooks), the scale per site, and
    the pruned statistics per site."""
    assert bn in ('train', 'per_bn') and recal in ('before', 'after', 'none')
    pairs = bool(getattr(rule, 'needs_pairs', False))
    names = [s.name for s in find_sites(pruned, site)]
    # the dense reference
    d = copy.deepcopy(dense).eval()
    train_pass = dense_recal and bn == 'train'
    if dense_recal and bn == 'per_bn': _recal_per_bn(d, calib, stop_early)
    dense_out, dstats = {}, {}
    def keep(n, o):
        dstats[n] = stats64(o)
        if pairs: dense_out[n] = o.detach().clone()
    hooks = [d.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: keep(n, o)) for n in names]
    _forward(d, calib, train_pass)
    for h in hooks: h.remove()
    # the pruned model, site by site
    model = copy.deepcopy(pruned).eval()
    corr = {}
    def correct(m, i, o, n):
        if n not in corr: return o
        scale, shift = corr[n]
        shape = (1, -1) + (1,) * (o.dim() - 2)
        return o * scale.view(shape) + shift.view(shape)
    for n in names: model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: correct(m, i, o, n))
    train = recal == 'before' and bn == 'train'
    order = _order(model, calib[:2], names, recal == 'before' and bn == 'per_bn')
    gains, pstats = {}, {}
    for kind, n in order:
        mod = model.get_submodule(n)
        if kind == 'bn': _set_bn(mod, _capture(model, calib, mod, True, False, stop_early)); continue
        out = _capture(model, calib, mod, False, train, stop_early)    # `correct` does nothing yet at this site
        p = stats64(out, dense_out[n] if pairs else None)
        scale, shift = rule(dstats[n], p, **opts)
        scale = torch.as_tensor(scale, dtype=torch.float64)
        shift = torch.zeros_like(scale) if shift is None else torch.as_tensor(shift, dtype=torch.float64)
        corr[n] = (scale.float(), shift.float())
        gains[n], pstats[n] = scale, p
    if recal == 'after' or (recal == 'before' and bn == 'train'):
        if bn == 'train': _forward(model, calib, True)        # running statistics with every correction applied
        else: _recal_per_bn(model, calib, stop_early)
    return model.eval(), gains, pstats
