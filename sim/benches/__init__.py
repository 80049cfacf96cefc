"""cocotb test modules: ``multiplier`` (a multiplier top) and ``array`` (a MAC array; a MAC unit is the 1x1 array).

Each reads its request (:class:`sim.exchange.BenchRequest`), the manifest,
builds its stimulus and mpsim's expected results (:mod:`sim.vectors`), drives
the design, checks every result in order and writes a
:class:`sim.exchange.BenchResult`. Run them through :mod:`sim.runner`.
"""
