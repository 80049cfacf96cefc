"""Tests of the continual package (Avalanche glue, policies, cost, sweeps)."""
