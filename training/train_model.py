"""SageMaker script-mode entry point of the final training job (docs/design.md §3).

Trains the head on SM_CHANNEL_TRAIN, selects the epoch on SM_CHANNEL_VALID, tests once on SM_CHANNEL_TEST and
writes the model artifact to SM_MODEL_DIR and evaluation.json + plots to SM_OUTPUT_DATA_DIR.
Run ``python train_model.py --help`` for the options.
"""

import sys

from bincount.logs import setup_logging
from bincount.training.train import main, parse_args

if __name__ == "__main__":
    setup_logging(stream=sys.stdout)  # SageMaker ships stdout to CloudWatch, where the metric regexes read it
    sys.exit(main(parse_args(), final=True))
