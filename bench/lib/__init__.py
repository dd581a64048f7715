"""The bench harness: statistics, report, machine description, processes, engines, timing.

Workloads (bench/workloads/) use these; bench/run wires them together.
"""
