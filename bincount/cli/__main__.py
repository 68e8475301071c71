"""``python -m bincount.cli``: the command line, as ``python -m bincount`` and the ``bincount`` script."""

import sys

from bincount.cli.main import main

sys.exit(main())
