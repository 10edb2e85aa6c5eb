"""Evaluation: the benchmark runner (Avg@k, per-category, HR-Bench cycles, tools, alignment, crop IoU), its
summary table and the static HTML trajectory viewer."""
