"""``python -m bincount``: the command line (the endpoint image's entry point runs ``python -m bincount serve``)."""

import sys

from bincount.cli import main

sys.exit(main())
