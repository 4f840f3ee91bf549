"""One small script per runtime for `bench/peers_bench.py`.

Every script runs the reference pipeline as `python SCRIPT COUNT TOTALS.json` and writes
the 1,000 per-user totals as JSON (`{"user": total}`); the parent times the whole process.
Headrace has no script: its graph is written by `headrace_graph.py` and run with
`engine run`, the way a user runs it.
"""
