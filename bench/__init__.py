"""fnplat's benchmark suite: `python -m bench [--quick]` from the repository root.

Starts a fresh one-host platform, measures the baselines and every figure of issue 3 in one run,
and prints one Markdown table (see BENCHMARKS.md).
"""
