"""The pieces of ``benchmarks/run.py``: backends, command counting, libraries, tasks.

Not part of ``uow``: this package is only imported by the benchmark script (which
puts ``benchmarks/`` on ``sys.path``) and by its test.
"""
