"""The bincount CDK app: one stack composed of small constructs (storage, pipeline, serving, cleanup)."""
