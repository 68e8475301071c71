"""The tune-then-train-then-deploy state machine (DESIGN.md §1, §6): its definition, its IAM and its construct."""
