"""Simulated Elastic Defend network events: a benign Linux fleet with planted scans."""

from reconwatch.simulate.generate import LOOKALIKE_KINDS, SCAN_KINDS, PlantedScan, Simulation
from reconwatch.simulate.write import write_events

__all__ = ["LOOKALIKE_KINDS", "SCAN_KINDS", "PlantedScan", "Simulation", "write_events"]
