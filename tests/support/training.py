"""Hyperparameters of the tests' training runs: one quick epoch, random-init backbone, no workers."""

FAST_HYPERPARAMETERS = {"epochs": 1, "batch-size": 8, "pretrained": "false", "workers": 0, "seed": 7}
