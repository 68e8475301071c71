"""SageMaker script-mode entry point of the feature-extraction job (runs before tuning).

Runs the frozen ResNet-50 once over SM_CHANNEL_TRAIN and SM_CHANNEL_VALID (each photo as is and flipped) and writes
``train.features.pt`` / ``valid.features.pt`` to SM_MODEL_DIR. Tuning trials and the final job then train the head
on these (their ``features`` channel) instead of running the backbone every epoch. Same options as hpo.py.
"""

import sys

from bincount.training.features import main

if __name__ == "__main__":
    sys.exit(main())
