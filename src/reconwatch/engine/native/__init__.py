"""Native detectors exposed as rules (type = "reconwatch"): Threshold Random Walk on outcomes, learned destination baselines."""
