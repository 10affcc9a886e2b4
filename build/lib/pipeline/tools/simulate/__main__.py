"""`python -m pipeline.tools.simulate --out events.jsonl ...`"""

import sys

from pipeline.tools.simulate.cli import main_simulate

sys.exit(main_simulate(sys.argv[1:]))
