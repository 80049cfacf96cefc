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
from pathlib import Path
from typing import Any, ClassVar

import torch

from mpsim import backend_registry
from mpsim.backend_registry import BACKEND_GROUP, EMULATOR_NAME, backend_names
from mpsim.nn import functional
from mpsim.precision import GemmCall
from mpsim.randbits import CounterRNG

__all__ = ["BACKEND_GROUP", "EMULATOR", "EmulatorBackend", "GemmBackend", "backend_names", "load_backend"]


class GemmBackend(abc.ABC):
    """Computes ``a @ b`` for a quantized layer's GEMM of one kind; subclasses set :attr:`name`."""

    name: ClassVar[str]

    def __deepcopy__(self, memo: dict[int, Any]) -> GemmBackend:
        # One backend is one device shared by every layer that holds it: a copied model (LwF's previous model,
        # quantize_model's copy) computes on the same device, and its random stream must not fork.
        return self

    @abc.abstractmethod
    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        """Raise ``ValueError`` (one line naming the layer, the GEMM and what is missing) if one of ``calls``, the
        GEMMs of ``layer``, cannot be computed here; asked of every layer before any is computed."""

    @abc.abstractmethod
    def matmul(self, a: torch.Tensor, b: torch.Tensor, call: GemmCall, rng: CounterRNG) -> torch.Tensor:
        """``a @ b`` (2-D, batched, or a 2-D ``a`` against a batched ``b``) as float32, in the arithmetic of
        ``call.config``; ``rng`` is the layer's random source (a backend with its own may ignore it)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep to carry on bit for bit (a backend's own random stream); JSON-able."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:  # noqa: B027 (a backend without state needs no restore)
        """Back to :meth:`state`'s point (``state`` came from a backend of the same name and hardware)."""

    @property
    def cycles(self) -> int | None:
        """Clock cycles the backend's hardware has run so far (None: no hardware)."""
        return None

    def report(self) -> dict[str, Any] | None:
        """What the GEMMs so far cost on the backend's hardware (cycles, utilisation, energy); None without any."""
        return None


class EmulatorBackend(GemmBackend):
    """:func:`mpsim.qmatmul` with the layer's counter-based random bits; fp32 ``torch.matmul`` for a GEMM whose
    config says ``emulate=False``."""

    name = EMULATOR_NAME

    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        """Every layer precision mpsim accepts is emulated (or left to fp32 where its GEMM config says so)."""

    def matmul(self, a: torch.Tensor, b: torch.Tensor, call: GemmCall, rng: CounterRNG) -> torch.Tensor:
        return functional.gemm(a, b, call.config, rng)


#: The default backend of every quantized layer.
EMULATOR = EmulatorBackend()


def load_backend(name: str, hardware: str | Path | None = None) -> GemmBackend:
    """The backend called ``name``; ``hardware`` is the manifest of the design it runs (backends that need one).

    Raises ``ValueError`` naming an unknown backend (and the known ones), or a ``hardware`` given to the
    emulator, which has none.
    """
    if name == EMULATOR.name:
        if hardware is not None:
            raise ValueError(f"the emulator backend runs no hardware; drop --hardware {str(hardware)!r}")
        return EMULATOR
    factories = backend_registry.backend_entry_points()
    if name not in factories:
        raise ValueError(f"unknown GEMM backend {name!r}: expected one of {', '.join(backend_names())}")
    factory: Callable[[str | Path | None], GemmBackend] = factories[name].load()
    return factory(hardware)
