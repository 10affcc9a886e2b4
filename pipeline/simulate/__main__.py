"""`python -m pipeline.simulate --out events.jsonl ...`"""

import sys

from pipeline.simulate.cli import main_simulate

sys.exit(main_simulate(sys.argv[1:]))
