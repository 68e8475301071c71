"""SageMaker script-mode entry point of one hyperparameter-tuning trial (docs/design.md §3).

Trains on SM_CHANNEL_TRAIN and reports ``valid:loss`` / ``valid:accuracy`` on SM_CHANNEL_VALID each epoch; the
tuning job minimises ``valid:loss``. Same options as train_model.py; it never touches the test channel.
"""

import sys

from bincount.logs import setup_logging
from bincount.training.train import main, parse_args

if __name__ == "__main__":
    setup_logging(stream=sys.stdout)  # SageMaker ships stdout to CloudWatch, where the metric regexes read it
    sys.exit(main(parse_args(), final=False))
