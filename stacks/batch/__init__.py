"""The Batch state machine: counting a shift of photos in the cloud (DESIGN.md §11)."""
