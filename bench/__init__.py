"""Benchmarks for langflow-cms: `python -m bench` (or `make bench`) writes docs/performance.md.

Every measurement runs our code and its alternative side by side in one process, interleaved round by
round, and reports medians and ratios rather than absolute times: the machine is shared (2 cores, other
test runs), so only numbers taken under the same noise can be compared.
"""
