"""Speed benchmarks, each run from the repository root as ``python -m bench.<name>`` (for example
``python -m bench.inference``); their results and exact commands are in docs/benchmarks.md."""
