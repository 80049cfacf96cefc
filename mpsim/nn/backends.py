"""GEMM backends: what computes the three GEMMs of a quantized layer's training step.

``emulator`` (the default) is :func:`mpsim.qmatmul` with the layer's own
counter-based random bits, as the layers have always computed. Other
backends come from the packages that can run them, registered under the
entry-point group ``mpsim.backends`` (the generated array on its RTL is
:mod:`sim`'s), so mpsim never imports them: :func:`load_backend` finds a
backend by name, :func:`mpsim.nn.use_backend` hands one to every quantized
layer of a model after asking it whether it can compute each of their GEMMs.

A backend sees each GEMM as a :class:`~mpsim.precision.GemmCall`: its kind,
its arithmetic and its operands' quantization in the order multiplied (a
convolution multiplies weight-first): what picks a hardware mode. One
instance serves a whole model and may keep state between calls (an
array's random stream carries on from one GEMM to the next).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import torch

from mpsim.nn import functional
from mpsim.precision import GemmCall
from mpsim.randbits import CounterRNG

__all__ = ["BACKEND_GROUP", "EMULATOR", "EmulatorBackend", "GemmBackend", "backend_names", "load_backend"]

#: Entry-point group of backend factories: ``name = "package.module:factory"``, ``factory(hardware)``.
BACKEND_GROUP = "mpsim.backends"


class GemmBackend(abc.ABC):
    """Computes ``a @ b`` for a quantized layer's GEMM of one kind; subclasses set :attr:`name`."""

    name: ClassVar[str]

    @abc.abstractmethod
    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        """Raise ``ValueError`` (one line naming the layer, the GEMM and what is missing) if one of ``calls``, the
        GEMMs of ``layer``, cannot be computed here; asked of every layer before any is computed."""

    @abc.abstractmethod
    def matmul(self, a: torch.Tensor, b: torch.Tensor, call: GemmCall, rng: CounterRNG) -> torch.Tensor:
        """``a @ b`` (2-D, batched, or a 2-D ``a`` against a batched ``b``) as float32, in the arithmetic of
        ``call.config``; ``rng`` is the layer's random source (a backend with its own may ignore it)."""


class EmulatorBackend(GemmBackend):
    """:func:`mpsim.qmatmul` with the layer's counter-based random bits; fp32 ``torch.matmul`` for a GEMM whose
    config says ``emulate=False``."""

    name = "emulator"

    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        """Every layer precision mpsim accepts is emulated (or left to fp32 where its GEMM config says so)."""

    def matmul(self, a: torch.Tensor, b: torch.Tensor, call: GemmCall, rng: CounterRNG) -> torch.Tensor:
        return functional.gemm(a, b, call.config, rng)


#: The default backend of every quantized layer.
EMULATOR = EmulatorBackend()


def _factories() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=BACKEND_GROUP)}


def backend_names() -> list[str]:
    """``emulator`` and the names the installed packages register, sorted after it."""
    return [EMULATOR.name, *sorted(set(_factories()) - {EMULATOR.name})]


def load_backend(name: str, hardware: str | Path | None = None) -> GemmBackend:
    """The backend called ``name``; ``hardware`` is the manifest of the design it runs (backends that need one).

    Raises ``ValueError`` naming an unknown backend (and the known ones), or a ``hardware`` given to the
    emulator, which has none.
    """
    if name == EMULATOR.name:
        if hardware is not None:
            raise ValueError(f"the emulator backend runs no hardware; drop --hardware {str(hardware)!r}")
        return EMULATOR
    factories = _factories()
    if name not in factories:
        raise ValueError(f"unknown GEMM backend {name!r}: expected one of {', '.join(backend_names())}")
    factory: Callable[[str | Path | None], GemmBackend] = factories[name].load()
    return factory(hardware)
