import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from rotation import commit_key, props_seed

def pytest_report_header(config):
    return [f"asr_lit: rotating picks from {commit_key()[:12]}; hypothesis seed {props_seed()} (rerun: ASR_LIT_PROPS_SEED={props_seed()})"]
