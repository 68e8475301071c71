"""The Batch state machine: counting a shift of photos in the cloud (docs/design.md §11)."""
