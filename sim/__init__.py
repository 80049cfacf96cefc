"""sim: co-simulation of the Verilog that hls_gen emits, against mpsim, bit for bit.

:mod:`sim.manifest` reads a manifest, :mod:`sim.vectors` builds stimulus and
mpsim's expected results, :mod:`sim.benches` holds the cocotb benches,
:mod:`sim.runner` builds (cached) and runs them on Verilator or Icarus and
returns a :class:`sim.report.Report`; ``mpsim cosim`` (:mod:`sim.cli`) is
the command line. Imports flow one way: mpsim <- hls_gen <- sim.
"""
