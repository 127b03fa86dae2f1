"""Simulation core: grid, regions, network, GPU DVFS, jobs, faults, scheduler states.

Knows nothing about Gymnasium; ``envs/`` adapts it. Units are in the names
(``_s``, ``_w``, ``_kwh``, ``_g``, ``_gbps``, ``_mhz``).
"""
