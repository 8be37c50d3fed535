"""``python -m mpspawn``: the self-check and fork-hazard demo (see selfcheck)."""
import sys

from .selfcheck import main

if __name__ == '__main__':
    sys.exit(main())
