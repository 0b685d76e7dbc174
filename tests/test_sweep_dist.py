"The sweep on many workers: two local workers (a process pool, a Dask cluster) give exactly the serial run's rows; killing a worker loses nothing."
import os, signal, threading, time
from pathlib import Path
import pandas as pd
import pytest
import torch

from asr_lit.sweep import SWEEP_KEYS, local_pool, dask_executor, run_sweep, sweep_grid, sweep_units

torch.set_num_threads(1)
RESULTS = ['dense_acc', 'acc']   # what a run measures; `repair_s` is a wall time and differs from run to run


def tiny_grid(seeds=(0, 1)):
    "ResNet-20 (pretrained, shared folder), real CIFAR-10 JPEG images: a few seconds per unit on one thread."
    return sweep_grid(('resnet20',), (0.8,), ('global',), ('none', 'bn_only', 'asr'), seeds, n_calib=32, n_test=100)


def rows(csv):
    "The CSV's runs in a fixed order, for comparison with another run's."
    return pd.read_csv(csv).sort_values(SWEEP_KEYS).reset_index(drop=True)[SWEEP_KEYS + RESULTS + ['data_source']]


@pytest.fixture(scope='module')
def serial(tmp_path_factory):
    csv = tmp_path_factory.mktemp('serial')/'s.csv'
    run_sweep(tiny_grid((0, 1, 2, 3)), csv, device='cpu', progress=False, threads=1)
    return rows(csv)


def test_process_pool_gives_the_serial_rows(serial, tmp_path):
    csv = tmp_path/'p.csv'
    with local_pool(2, threads=1) as pool: out = run_sweep(tiny_grid((0, 1, 2, 3)), csv, device='cpu', progress=False, executor=pool)
    assert len(out) == len(serial) and not out.duplicated(SWEEP_KEYS).any()
    pd.testing.assert_frame_equal(rows(csv), serial)


def test_process_pool_budget_stops_and_resumes(tmp_path):
    "A budget of zero: finished units are kept, units not started are dropped, and a rerun gives the serial rows."
    g = sweep_grid(('resnet20',), (0.8,), ('global',), ('bn_only',), tuple(range(8)), n_calib=32, n_test=100)   # 8 one-run units
    csv = tmp_path/'b.csv'
    with local_pool(2, threads=1) as pool: first = run_sweep(g, csv, device='cpu', progress=False, executor=pool, budget_min=0)
    assert 0 < len(first) < len(g) and not first.duplicated(SWEEP_KEYS).any()
    with local_pool(2, threads=1) as pool: run_sweep(g, csv, device='cpu', progress=False, executor=pool)
    run_sweep(g, tmp_path/'serial.csv', device='cpu', progress=False, threads=1)
    pd.testing.assert_frame_equal(rows(csv), rows(tmp_path/'serial.csv'))


def _rows_written(csv) -> int:
    "Rows in the driver's CSV so far; 0 while the file is absent or still empty (created, header not yet flushed)."
    try: return len(pd.read_csv(csv))
    except (FileNotFoundError, pd.errors.EmptyDataError): return 0

def test_rows_written_waits_out_an_empty_file(tmp_path):
    "The killer thread polls the CSV while the driver creates it: a file that exists but is still empty is 0 rows, not an error."
    csv = tmp_path/'w.csv'
    assert _rows_written(csv) == 0
    csv.write_text(''); assert _rows_written(csv) == 0
    csv.write_text('a,b\n'); assert _rows_written(csv) == 0
    csv.write_text('a,b\n1,2\n'); assert _rows_written(csv) == 1

def _kill_after_first_row(csv, pids):
    "Wait for the driver's first written unit, then SIGKILL one worker process."
    t0 = time.time()
    while not _rows_written(csv):
        if time.time() - t0 > 300: return
        time.sleep(0.05)
    os.kill(pids()[0], signal.SIGKILL)


def test_killed_pool_worker_loses_nothing(serial, tmp_path):
    "A worker killed mid-sweep: the driver says so, the CSV keeps every finished unit once, and a rerun does exactly the rest."
    csv, g = tmp_path/'k.csv', tiny_grid((0, 1, 2, 3))
    pool = local_pool(2, threads=1)
    killer = threading.Thread(target=_kill_after_first_row, args=(csv, lambda: list(pool._processes)))
    killer.start()
    with pytest.raises(RuntimeError, match='run the sweep again'): run_sweep(g, csv, device='cpu', progress=False, executor=pool)
    killer.join(); pool.shutdown()
    part = pd.read_csv(csv)
    assert 0 < len(part) < len(g) and not part.duplicated(SWEEP_KEYS).any()
    assert len(part) % 3 == 0                                   # whole units only: a unit is 3 runs here
    with local_pool(2, threads=1) as pool: run_sweep(g, csv, device='cpu', progress=False, executor=pool)
    pd.testing.assert_frame_equal(rows(csv), serial)


def test_dask_cluster_gives_the_serial_rows_and_survives_a_killed_worker(serial, tmp_path):
    "Two local Dask workers: the serial rows; one worker killed after the first unit: its task runs again, nothing lost or doubled."
    pytest.importorskip('distributed')
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        ex = client.get_executor(); ex.threads_per_worker = 1
        csv = tmp_path/'d.csv'
        killer = threading.Thread(target=_kill_after_first_row, args=(csv, lambda: list(client.run(os.getpid).values())))
        killer.start()
        run_sweep(tiny_grid((0, 1, 2, 3)), csv, device='cpu', progress=False, executor=ex)
        killer.join()
        pd.testing.assert_frame_equal(rows(csv), serial)


def test_dask_executor_without_distributed(monkeypatch):
    import builtins
    real = builtins.__import__
    def no_distributed(name, *a, **k):
        if name.startswith('distributed'): raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, '__import__', no_distributed)
    with pytest.raises(ImportError, match=r"asr_lit\[dist\]"): dask_executor('tcp://127.0.0.1:1')
