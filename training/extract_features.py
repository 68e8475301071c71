"""SageMaker script-mode entry point of the feature-extraction job (runs before tuning).

Runs the frozen ResNet-50 once over SM_CHANNEL_TRAIN and SM_CHANNEL_VALID (each photo as is and flipped) and writes
``train.features.pt`` / ``valid.features.pt`` to SM_MODEL_DIR. Tuning trials and the final job then train the head
on these (their ``features`` channel) instead of running the backbone every epoch. Same options as hpo.py.
"""

import sys

from bincount.logs import setup_logging
from bincount.training.extract import main

if __name__ == "__main__":
    setup_logging(stream=sys.stdout)  # SageMaker ships stdout to CloudWatch, where the metric regexes read it
    sys.exit(main())
