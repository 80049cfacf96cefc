"""Co-simulation of the generated Verilog against mpsim (cocotb on Verilator and Icarus)."""
