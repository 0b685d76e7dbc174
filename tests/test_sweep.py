"The sweep: resuming an interrupted CSV, the unrepaired model evaluated once, and the sweep CLIs' bad arguments."
import subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
import torch

from asr_lit.sweep import AS_STORED, SWEEP_KEYS, pending_runs, read_sweep, run_sweep, sweep_grid, sweep_table

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent
torch.set_num_threads(1)


def run(script, *args, cwd=None):
    return subprocess.run([str(BIN/script), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_grid_shape():
    g = sweep_grid(('resnet20', 'resnet32'), (0.5, 0.9), ('global', 'nm', 'channel'), ('none', 'asr'), (0, 1, 2))
    count = lambda k: len(g[g.kind == k])
    assert count('global') == count('channel') == 2*2*2*3 and count('nm') == 2*1*2*3   # 2:4 has one sparsity
    assert (g[g.kind == 'nm'].sparsity == 0.5).all()
    assert not g.duplicated(SWEEP_KEYS).any()


def test_pending_runs_skips_done_rows(tmp_path):
    g = sweep_grid(('resnet20',), (0.7, 0.9), ('global',), ('bn_only', 'asr'), (0, 1))
    csv = tmp_path/'r.csv'
    g.iloc[[0, 3, 5]].assign(acc=0.5).to_csv(csv, index=False)           # three runs already done
    todo = pending_runs(g, csv)
    assert len(todo) == len(g) - 3
    assert set(todo.index) == set(range(len(g))) - {0, 3, 5}
    pd.DataFrame({'a': [1]}).to_csv(tmp_path/'other.csv', index=False)
    with pytest.raises(ValueError, match='not a sweep results file'): pending_runs(g, tmp_path/'other.csv')


def test_interrupted_sweep_resumes(tmp_path):
    "A real tiny sweep run in two parts gives one row per setting, and the second part runs only what was missing."
    g = sweep_grid(('resnet20',), (0.8,), ('global',), ('none', 'bn_only'), (0, 1), n_calib=32, n_test=100)
    csv = tmp_path/'sweep.csv'
    first = run_sweep(g.iloc[:3], csv, device='cpu', progress=False)          # "interrupted" after three runs
    assert len(first) == 3
    done = run_sweep(g, csv, device='cpu', progress=False)
    assert len(done) == len(g) and not done.duplicated(SWEEP_KEYS).any()
    pd.testing.assert_frame_equal(done.iloc[:3], first)                      # earlier rows untouched
    assert len(run_sweep(g, csv, device='cpu', progress=False)) == len(g)      # nothing left: nothing appended
    budget = tmp_path/'budget.csv'   # a time budget of zero: one run per call, and reruns go on where the last stopped
    assert [len(run_sweep(g, budget, device='cpu', progress=False, budget_min=0)) for _ in range(2)] == [1, 2]
    pd.testing.assert_frame_equal(run_sweep(g, budget, device='cpu', progress=False).drop(columns='repair_s'), done.drop(columns='repair_s'))
    none = done[done.method == 'none']
    assert none.acc.nunique() == 1 and (none.repair_s == 0).all()            # no calibration: one evaluation
    assert done.acc.between(0, 1).all() and (done.dense_acc > 0.5).all()
    from asr_lit.checkpoints import weights_sha256
    assert (done.weights_sha256 == weights_sha256('resnet20')).all()
    t = sweep_table(done, 0.8)
    assert list(t.index) == ['resnet20'] and set(t.columns) == {'none', 'bn_only'}


def test_append_extends_an_older_header(tmp_path):
    "A CSV begun before a column existed (weights_sha256) gets it, empty in its old rows; nothing is dropped or shifted."
    from asr_lit.sweep import _append
    csv = tmp_path/'old.csv'
    pd.DataFrame([dict(arch='resnet20', acc=0.5)]).to_csv(csv, index=False)
    _append(csv, [dict(acc=0.7, arch='resnet56', weights_sha256='ab')])
    _append(csv, [dict(arch='resnet32', acc=0.6, weights_sha256='cd')])
    df = pd.read_csv(csv)
    assert list(df.columns) == ['arch', 'acc', 'weights_sha256'] and list(df.arch) == ['resnet20', 'resnet56', 'resnet32']
    assert list(df.acc) == [0.5, 0.7, 0.6] and df.weights_sha256.isna().tolist() == [True, False, False]
    assert not (tmp_path/'old.tmp').exists()


@pytest.mark.parametrize('args,msg', [
    (['--sparsities', '0.5,1.2'], '[0, 1)'),
    (['--archs', 'resnet20,resnet1000'], 'no weights for'),
    (['--archs', 'resnet20', '--dataset', 'imagenette'], 'trained on cifar10, not imagenette'),
    (['--kinds', 'diagonal'], 'unknown sparsity kind'),
    (['--methods', 'none,magic'], 'unknown repair method'),
    (['--workers', '-1'], '--workers must be >= 0'),
    (['--augment', 'rotate'], 'augment must be one of'),
    (['--workers', '2', '--scheduler', 'tcp://127.0.0.1:8786'], 'not both'),
    (['--dataset', 'mnist', '--archs', 'resnet20', '--sparsities', '0.5', '--methods', 'none', '--seeds', '0'], 'unknown dataset'),
])
def test_sweep_bad_arguments(tmp_path, args, msg):
    r = run('asr_sweep', '--csv', str(tmp_path/'x.csv'), *args)
    assert r.returncode == 2, r
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sweep_refuses_foreign_csv(tmp_path):
    pd.DataFrame({'a': [1]}).to_csv(tmp_path/'other.csv', index=False)
    r = run('asr_sweep', '--csv', str(tmp_path/'other.csv'), '--archs', 'resnet20', '--methods', 'none')
    assert r.returncode == 2 and 'not a sweep results file' in r.stderr, r


def test_plot_missing_csv_and_output(tmp_path):
    r = run('asr_plot', '--csv', str(tmp_path/'missing.csv'))
    assert r.returncode == 2 and 'run asr_sweep first' in r.stderr, r
    rows = [dict(dataset='cifar10', arch='resnet20', kind='global', sparsity=s, method=m, seed=sd, n_calib=32, n_test=100,
                 dense_acc=0.9, acc=a, repair_s=0.1, device='cpu', data_source='test')
            for s, a0 in ((0.7, 0.8), (0.9, 0.4)) for m, da in (('bn_only', 0.0), ('asr', 0.05)) for sd, a in ((0, a0+da), (1, a0+da+0.01))]
    pd.DataFrame(rows).to_csv(tmp_path/'r.csv', index=False)
    r = run('asr_plot', '--csv', str(tmp_path/'r.csv'), '--out', str(tmp_path/'fig'))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'fig_global.png').stat().st_size > 10_000
    table = (tmp_path/'fig_table90.md').read_text()
    assert '45.5 ± 0.7' in table and '40.5 ± 0.7' in table and 'paper' in table
    r = run('asr_plot', '--csv', str(tmp_path/'r.csv'), '--out', str(tmp_path/'fig'), '--augment', 'crop_flip')   # a setting the file lacks
    assert r.returncode == 2 and "no rows with calibration 'crop_flip'" in r.stderr and '--augment' in r.stderr, r.stderr

def test_facts_use_only_models_with_the_whole_grid():
    "A model swept at a few settings only (DenseNet-121 at 70/90%) must not enter the reproduction's facts, nor break them."
    from asr_lit.sweep import sweep_facts
    res = read_sweep(ROOT/'nbs'/'sweep_results.csv')
    from asr_lit.checkpoints import PRETRAINED_CIFAR
    pre = res[res.arch.isin(PRETRAINED_CIFAR) & (res.calib_augment == AS_STORED)]
    few = pre[pre.arch == 'resnet20'].assign(arch='other')
    few = few[(few.kind == 'global') & few.sparsity.isin((0.7, 0.9))]
    f, g = sweep_facts(pre), sweep_facts(pd.concat([pre, few]))
    assert 'other' not in g['archs'] and g['n_runs'] == f['n_runs'] and list(g['best90']) == list(f['best90'])
    with pytest.raises(ValueError, match='whole grid'): sweep_facts(few)


def test_calibration_settings_are_runs_of_their_own(tmp_path):
    """Calibrating on augmented images (`calib_augment='crop_flip'`) is a run of its own: it is not skipped as done when
    the as-stored run is in the CSV, it reaches `compare_methods`, and a table refuses rows of both settings mixed."""
    from asr_lit.checkpoints import load_model
    from asr_lit.data import cifar10, stratified_subset
    from asr_lit.evaluate import compare_methods
    kw = dict(archs=('resnet20',), sparsities=(0.8,), kinds=('global',), methods=('none', 'bn_only'), seeds=(0,), n_calib=32, n_test=100)
    g, ga = sweep_grid(**kw), sweep_grid(**kw, calib_augment='crop_flip')
    assert set(g.calib_augment) == {AS_STORED} and set(ga.calib_augment) == {'crop_flip'}
    csv = tmp_path/'s.csv'
    run_sweep(g, csv, device='cpu', progress=False)
    assert len(pending_runs(ga, csv)) == len(ga)
    done = run_sweep(ga, csv, device='cpu', progress=False)
    assert len(done) == 2*len(g) and not done.duplicated(SWEEP_KEYS).any()
    assert done[done.method == 'none'].acc.nunique() == 1                      # no calibration, nothing to augment
    direct = compare_methods(load_model('resnet20'), cifar10('train'), stratified_subset(cifar10('test'), 100, seed=0), (0.8,), ('bn_only',),
                             (0,), 32, device='cpu', progress=False, calib_augment='crop_flip')
    assert done.set_index(['method', 'calib_augment']).acc[('bn_only', 'crop_flip')] == direct.acc.iloc[0]
    with pytest.raises(ValueError, match='mix calibration settings'): sweep_table(done, 0.8)
    assert list(sweep_table(done[done.calib_augment == 'crop_flip'], 0.8).index) == ['resnet20']
    with pytest.raises(ValueError, match='calib_augment must be one of'): sweep_grid(**kw, calib_augment='rotate')


def test_a_csv_from_before_the_calibration_column_resumes(tmp_path):
    "Rows written before `calib_augment` existed were calibrated on the images as stored: they count as done for that setting only."
    kw = dict(archs=('resnet20',), sparsities=(0.7, 0.9), kinds=('global',), methods=('bn_only',), seeds=(0,))
    g = sweep_grid(**kw)
    csv = tmp_path/'old.csv'
    g.drop(columns='calib_augment').assign(acc=0.5).to_csv(csv, index=False)
    assert pending_runs(g, csv).empty and pending_runs(g.drop(columns='calib_augment'), csv).empty
    assert len(pending_runs(sweep_grid(**kw, calib_augment='crop_flip'), csv)) == len(g)
    assert list(read_sweep(csv).calib_augment) == [AS_STORED]*len(g)
