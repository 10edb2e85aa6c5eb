"""Run reports: PNG plots of training curves and a small self-contained HTML summary."""
