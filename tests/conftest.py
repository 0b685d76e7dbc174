import os, sys
from pathlib import Path
if os.environ.get('PYTEST_XDIST_WORKER'):   # two workers on two cores: one thread each, in the worker and the notebooks and scripts it starts
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch; torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))
from rotation import commit_key, props_seed

def pytest_report_header(config):
    return [f"asr_lit: rotating picks from {commit_key()[:12]}; hypothesis seed {props_seed()} (rerun: ASR_LIT_PROPS_SEED={props_seed()})"]
