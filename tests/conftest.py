import os, sys
from pathlib import Path
if os.environ.get('PYTEST_XDIST_WORKER'):   # two workers on two cores: one thread each, in the worker and the notebooks and scripts it starts
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch; torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))
from rotation import commit_key, props_seed

def pytest_report_header(config):
    return [f"asr_lit: rotating picks from {commit_key()[:12]}; hypothesis seed {props_seed()} (rerun: ASR_LIT_PROPS_SEED={props_seed()})"]

# The slowest tests (seconds in the last clean-clone CI, two workers), started first: with two workers a long test that
# starts last makes the run as long as the rest plus itself. Any test not named keeps its place after these.
SLOW_FIRST = ('test_notebook_runs[20a_paper_setting.ipynb]', 'test_notebook_runs[16_residual.ipynb]',
              'test_checkpoint_reproduces_card[tv_resnet50-imagenette128-s0]', 'test_checkpoint_reproduces_card[cifar_resnet50-jpeg-s0]',
              'test_bench_smoke', 'test_checkpoint_reproduces_card[cifar_densenet121-jpeg-s0]', 'test_prune_and_repair_every_method[tv_vgg16_bn]',
              'test_notebook_runs[15_ablations.ipynb]', 'test_prune_and_repair_every_method[tv_resnet50]', 'test_notebook_runs[06_train.ipynb]',
              'test_notebook_runs[04_engine.ipynb]', 'test_notebook_runs[18_reconstruction.ipynb]', 'test_device_run_reproduces_the_cpu_path')

def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda it: rank.get(it.name, len(rank)))   # stable: the others keep their order
