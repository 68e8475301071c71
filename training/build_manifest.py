"""SageMaker script-mode entry point of the BuildFullManifest job (setting ``dataset: full``, docs/design.md §12).

Lists ``metadata/`` of the public ABID bucket, reads every document with many concurrent requests, keeps the
images with 1..5 objects, splits them (the subset's split where the subset has them), copies the photos into the
data bucket's ``full/<split>/<count>/<id>.jpg`` and writes ``full/manifest.json`` last.
"""

import sys

from bincount.data.full_manifest import main
from bincount.logs import setup_logging

if __name__ == "__main__":
    setup_logging(stream=sys.stdout)  # SageMaker ships stdout to CloudWatch
    sys.exit(main())
