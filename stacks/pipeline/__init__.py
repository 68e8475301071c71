"""The tune-then-train-then-deploy state machine (docs/design.md §1, §6): its definition, its IAM and its construct."""
