"""Low-precision optimizers (mpsim.optim): torch parity, representability, stochastic rounding, state."""

from __future__ import annotations

import copy
import io
import json
import math
import re

import pytest
import torch

import mpsim
from mpsim.optim import QSGD, OptimPrecision, QAdam, QAdamW

WEIGHT_FORMATS = ["bf16", "fp16", "e4m3", "e5m2", "q3.10"]
# Momentum tolerates narrow exponents; Adam's second moment (g**2) underflows to 0
# in fp16/e5m2 for small gradients, which divides by eps and diverges, so Adam's
# state formats keep float32's exponent range.
SGD_STATE_FORMATS = ["bf16", "fp16", "e5m2"]
ADAM_STATE_FORMATS = ["bf16", "e8m3"]
ROUNDINGS = ["nearest", "stochastic", "stochastic:8"]

# (our optimizer, torch's optimizer, keyword arguments both take)
PARITY_CASES = [
    (QSGD, torch.optim.SGD, dict(lr=0.1)),
    (QSGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (QSGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (QSGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.02, nesterov=True)),
    (QAdam, torch.optim.Adam, dict(lr=0.01)),
    (QAdam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    (QAdamW, torch.optim.AdamW, dict(lr=0.01)),
    (QAdamW, torch.optim.AdamW, dict(lr=0.02, betas=(0.85, 0.995), weight_decay=0.1)),
]


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 6, generator=g), torch.randn(16, 2, generator=g)


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    x, y = _batch(step)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def _state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    names = ("momentum_buffer", "exp_avg", "exp_avg_sq")
    return [s[n] for s in opt.state.values() for n in names if n in s]


def _representable(t: torch.Tensor, fmt: str) -> bool:
    return torch.equal(mpsim.quantize(t, fmt), t)


# --- default precision is torch, bit for bit ------------------------------------


@pytest.mark.parametrize("ours, theirs, kwargs", PARITY_CASES)
def test_default_precision_is_bit_identical_to_torch(ours, theirs, kwargs):
    a, b = _model(), _model()
    opt_a = ours(a.parameters(), **kwargs)
    opt_b = theirs(b.parameters(), foreach=False, **kwargs)
    for step in range(6):
        _train_step(a, opt_a, step)
        _train_step(b, opt_b, step)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb), f"step {step}"


@pytest.mark.parametrize("ours, theirs, kwargs", PARITY_CASES[1:2] + PARITY_CASES[4:5])
def test_fp32_weight_format_is_the_identity(ours, theirs, kwargs):
    """Rounding into fp32 itself changes nothing: still torch's result."""
    a, b = _model(), _model()
    opt_a = ours(a.parameters(), precision=OptimPrecision(weight="fp32", state="fp32", grad="fp32"), **kwargs)
    opt_b = theirs(b.parameters(), foreach=False, **kwargs)
    for step in range(4):
        _train_step(a, opt_a, step)
        _train_step(b, opt_b, step)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_grad_format_rounds_the_gradient_before_torch_sees_it():
    """Oracle: torch's SGD fed the gradient rounded to nearest by mpsim.quantize."""
    a, b = _model(), _model()
    opt_a = QSGD(a.parameters(), lr=0.1, momentum=0.9, precision=OptimPrecision(grad="e5m2"))
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, foreach=False)
    for step in range(4):
        _train_step(a, opt_a, step)
        x, y = _batch(step)
        opt_b.zero_grad()
        torch.nn.functional.mse_loss(b(x), y).backward()
        for p in b.parameters():
            p.grad = mpsim.quantize(p.grad, "e5m2")
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_sgd_momentum_reads_the_rounded_state():
    """Hand-written reference: buf = q_s(mu*buf + g); w = q_w(w - lr*buf), all nearest."""
    torch.manual_seed(3)
    w0 = mpsim.quantize(torch.randn(40), "bf16")
    grads = [torch.randn(40) for _ in range(5)]
    p = torch.nn.Parameter(w0.clone())
    opt = QSGD([p], lr=0.03, momentum=0.9, precision=OptimPrecision(weight="bf16", state="e5m2"))
    w, buf = w0.clone(), None
    for g in grads:
        p.grad = g.clone()
        opt.step()
        buf = g.clone() if buf is None else buf * 0.9 + g
        buf = mpsim.quantize(buf, "e5m2")
        w = mpsim.quantize(w - 0.03 * buf, "bf16")
        assert torch.equal(opt.state[p]["momentum_buffer"], buf)
        assert torch.equal(p.detach(), w)


# --- everything stored is representable -------------------------------------------


_MAKERS = {
    "sgd": lambda ps, prec: QSGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01, precision=prec),
    "adam": lambda ps, prec: QAdam(ps, lr=0.01, weight_decay=0.01, precision=prec),
    "adamw": lambda ps, prec: QAdamW(ps, lr=0.01, precision=prec),
}
_MAKER_STATES = [("sgd", s) for s in SGD_STATE_FORMATS] + [
    (name, s) for name in ("adam", "adamw") for s in ADAM_STATE_FORMATS
]


@pytest.mark.parametrize("weight", WEIGHT_FORMATS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("optimizer, state", _MAKER_STATES)
def test_weights_and_states_stay_in_their_formats(optimizer, state, weight, rounding):
    make = _MAKERS[optimizer]
    model = _model()
    prec = OptimPrecision(weight=weight, state=state, update_rounding=rounding, state_rounding=rounding, seed=7)
    opt = make(model.parameters(), prec)
    for step in range(3):
        _train_step(model, opt, step)
        for p in model.parameters():
            assert torch.isfinite(p).all()
            assert _representable(p.detach(), weight)
        for s in _state_tensors(opt):
            assert _representable(s, state)


@pytest.mark.parametrize("mode", ["master", "kahan"])
def test_master_and_kahan_parameters_are_in_the_weight_format(mode):
    model = _model()
    prec = OptimPrecision(weight="e4m3", master_weights=mode == "master", kahan=mode == "kahan")
    opt = QAdamW(model.parameters(), lr=0.01, precision=prec)
    for step in range(3):
        _train_step(model, opt, step)
        for p in model.parameters():
            assert _representable(p.detach(), "e4m3")
            if mode == "master":
                assert torch.equal(p.detach(), mpsim.quantize(opt.state[p]["master"], "e4m3"))


def test_master_weights_accumulate_in_fp32():
    """The master copy follows plain fp32 SGD on the gradients given; the parameter is its rounding."""
    torch.manual_seed(4)
    w0 = mpsim.quantize(torch.rand(64) + 1.0, "bf16")
    p = torch.nn.Parameter(w0.clone())
    opt = QSGD([p], lr=1e-3, precision=OptimPrecision(weight="bf16", master_weights=True))
    reference = w0.clone()
    for _ in range(20):
        g = torch.randn(64)
        p.grad = g.clone()
        opt.step()
        reference.add_(g, alpha=-1e-3)
    assert torch.equal(opt.state[p]["master"], reference)
    assert torch.equal(p.detach(), mpsim.quantize(reference, "bf16"))


def test_kahan_keeps_the_exact_sum_in_weight_minus_compensation():
    """Kahan invariant: p - c tracks the fp32 sum of all increments although p is bf16."""
    torch.manual_seed(5)
    w0 = mpsim.quantize(torch.rand(64) + 1.0, "bf16")
    p = torch.nn.Parameter(w0.clone())
    opt = QSGD([p], lr=1e-4, precision=OptimPrecision(weight="bf16", kahan=True))
    total = torch.zeros(64, dtype=torch.float64)
    for _ in range(100):
        g = torch.rand(64) + 0.5  # one sign: the sum outgrows an ulp, each step stays below
        p.grad = g.clone()
        opt.step()
        total -= 1e-4 * g.double()
    tracked = p.detach().double() - opt.state[p]["kahan_comp"].double()
    # each step's fp32 roundings are about 2**-24 relative to the weight (in [1, 2))
    assert torch.allclose(tracked, w0.double() + total, rtol=0, atol=100 * 2.0**-22)
    assert not torch.equal(p.detach(), w0)  # the increments did reach the weights


# --- the known effect: nearest stalls, SR / Kahan / master progress -------------


# (optimizer, learning rate, steps): SGD's update lr*grad and Adam's update (about lr
# per step, whatever the gradient) both stay below 2**-9, half the bf16 ulp below 1.0.
REGRESSION_CASES = [(QSGD, 5e-3, 800), (QAdam, 1.5e-3, 600)]


def _regression(opt_class, lr, steps, precision):
    """Least squares from bf16 weights in [1, 2); returns (initial loss, final loss, weights)."""
    g = torch.Generator().manual_seed(11)
    d, n = 8, 128
    x = torch.randn(n, d, generator=g)
    w0 = mpsim.quantize(1.0 + torch.rand(d, generator=g), "bf16")
    target = w0 + 0.2 * torch.randn(d, generator=g)
    y = x @ target
    w = torch.nn.Parameter(w0.clone())
    opt = opt_class([w], lr=lr, precision=precision)

    def loss() -> torch.Tensor:
        return 0.5 * ((x.double() @ w.double() - y.double()) ** 2).mean()

    with torch.no_grad():
        start = loss().item()
    for step in range(steps):
        opt.zero_grad()
        (0.5 * ((x @ w - y) ** 2).mean()).backward()
        before = w.detach().clone()
        opt.step()
        if step == 0 and precision is None:  # the regime under test: every fp32 update is below half an ulp
            assert ((w.detach() - before).abs() < 2.0**-8 / 2).all()
    with torch.no_grad():
        return start, loss().item(), w.detach().clone()


@pytest.mark.slow
@pytest.mark.parametrize("opt_class, lr, steps", REGRESSION_CASES, ids=["sgd", "adam"])
def test_nearest_stalls_while_stochastic_kahan_and_master_make_progress(opt_class, lr, steps):
    start, fp32_end, _ = _regression(opt_class, lr, steps, None)
    fp32_progress = start - fp32_end
    assert fp32_end < 0.01 * start  # the fp32 baseline converges

    _, nearest_end, _ = _regression(opt_class, lr, steps, OptimPrecision(weight="bf16"))
    assert nearest_end == start  # stalled: every update rounds back to the old weight

    for prec in [
        OptimPrecision(weight="bf16", update_rounding="stochastic", seed=1),
        OptimPrecision(weight="bf16", kahan=True),
        OptimPrecision(weight="bf16", master_weights=True),
    ]:
        _, end, w = _regression(opt_class, lr, steps, prec)
        assert start - end > 0.95 * fp32_progress, prec
        assert _representable(w, "bf16")


# --- stochastic rounding at optimizer level ---------------------------------------


def test_stochastic_update_is_unbiased_over_seeds():
    """Mean over seeds of one SR step equals the fp32 step within a binomial bound."""
    torch.manual_seed(6)
    n, seeds, lr = 256, 400, 1e-3
    w0 = mpsim.quantize(torch.rand(n) + 1.0, "bf16")  # ulp 2**-7 in [1, 2)
    g = torch.randn(n)
    exact = w0.double() - lr * g.double()
    results = torch.empty(seeds, n, dtype=torch.float64)
    for s in range(seeds):
        p = torch.nn.Parameter(w0.clone())
        p.grad = g.clone()
        QSGD([p], lr=lr, precision=OptimPrecision(weight="bf16", update_rounding="stochastic", seed=s)).step()
        results[s] = p.detach().double()
    ulp = torch.exp2(torch.floor(torch.log2(exact.abs())) - 7)  # bf16 spacing at each exact value
    # every sample is one of the two bf16 neighbours of the exact value
    assert ((results - exact).abs() < ulp).all()
    sigma = ulp / 2 / math.sqrt(seeds)  # std of a mean of Bernoulli(p) * ulp, p(1-p) <= 1/4
    err = results.mean(0) - exact
    assert (err.abs() < 5 * sigma).all()
    assert abs(err.sum().item()) < 5 * sigma.square().sum().sqrt().item()
    # and rounding was really stochastic: the results are not all equal to nearest
    assert not torch.equal(results[0], results[1])


def test_same_seed_same_weights_different_seed_different():
    def run(seed: int) -> list[torch.Tensor]:
        model = _model()
        prec = OptimPrecision(
            weight="bf16", state="bf16", update_rounding="stochastic", state_rounding="stochastic:8", seed=seed
        )
        opt = QAdam(model.parameters(), lr=0.01, precision=prec)
        for step in range(3):
            _train_step(model, opt, step)
        return [p.detach().clone() for p in model.parameters()] + _state_tensors(opt)

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_rng_advances_every_step():
    p = torch.nn.Parameter(torch.ones(10))
    opt = QSGD([p], lr=0.1, precision=OptimPrecision(weight="bf16", update_rounding="stochastic"))
    offsets = []
    for _ in range(3):
        p.grad = torch.full((10,), 1e-3)
        opt.step()
        offsets.append(opt.rng.offset)
    assert offsets == [10, 20, 30]


# --- state_dict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda ps, prec: QSGD(ps, lr=0.05, momentum=0.9, precision=prec),
        lambda ps, prec: QAdamW(ps, lr=0.01, precision=prec),
    ],
    ids=["sgd", "adamw"],
)
@pytest.mark.parametrize("mode", ["plain", "master", "kahan"])
def test_state_dict_round_trip_continues_bit_for_bit(make, mode):
    prec = OptimPrecision(
        weight="bf16",
        state="bf16",
        update_rounding="stochastic",
        state_rounding="stochastic",
        master_weights=mode == "master",
        kahan=mode == "kahan",
        seed=9,
    )
    model = _model()
    opt = make(model.parameters(), prec)
    for step in range(3):
        _train_step(model, opt, step)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    assert opt.rng.offset > 0
    for step in range(3, 6):
        _train_step(model, opt, step)

    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = _model(seed=123)  # different initial weights: everything must come from the checkpoint
    resumed.load_state_dict(saved["model"])
    opt2 = make(resumed.parameters(), prec)
    opt2.load_state_dict(saved["opt"])
    for step in range(3, 6):
        _train_step(resumed, opt2, step)
    for pa, pb in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(pa, pb)
    for sa, sb in zip(_state_tensors(opt), _state_tensors(opt2), strict=True):
        assert torch.equal(sa, sb)
    assert opt.rng.offset == opt2.rng.offset


def test_load_state_dict_refuses_another_precision():
    model = _model()
    opt = QSGD(model.parameters(), lr=0.1, precision=OptimPrecision(weight="bf16"))
    other = QSGD(model.parameters(), lr=0.1, precision=OptimPrecision(weight="fp16"))
    with pytest.raises(
        ValueError,
        match=r"^state_dict was saved with precision OptimPrecision\(weight='bf16'.*\), "
        r"not this optimizer's OptimPrecision\(weight='fp16'.*\)$",
    ):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_accepts_aliases_of_the_same_precision():
    model = _model()
    opt = QSGD(model.parameters(), lr=0.1, precision=OptimPrecision(weight="bfloat16", update_rounding="sr8"))
    _train_step(model, opt, 0)
    same = QSGD(
        model.parameters(),
        lr=0.1,
        precision=OptimPrecision(weight=mpsim.parse_format("bf16"), update_rounding="stochastic:8"),
    )
    same.load_state_dict(opt.state_dict())
    assert same.rng.offset == opt.rng.offset > 0


def test_load_state_dict_refuses_torch_state():
    model = _model()
    torch_state = torch.optim.SGD(model.parameters(), lr=0.1).state_dict()
    with pytest.raises(
        ValueError,
        match=r"^state_dict has no 'mpsim' entry \(precision and random-number state\); "
        r"it was not saved by a QSGD$",
    ):
        QSGD(model.parameters(), lr=0.1).load_state_dict(torch_state)


# --- configuration --------------------------------------------------------------------


def test_precision_dict_round_trip_through_json():
    prec = OptimPrecision(
        weight="bf16",
        grad="e5m2",
        state="fp16",
        update_rounding="stochastic:8",
        state_rounding="stochastic",
        kahan=True,
        seed=None,
    )
    data = json.loads(json.dumps(prec.to_dict()))
    assert OptimPrecision.from_dict(data) == prec
    assert OptimPrecision.from_dict({}) == OptimPrecision()
    spec = OptimPrecision(weight=mpsim.parse_format("e4m3"))
    assert spec.to_dict()["weight"] == "e4m3"
    assert mpsim.parse_format(OptimPrecision.from_dict(spec.to_dict()).weight) == mpsim.parse_format("e4m3")


def test_to_dict_is_canonical():
    prec = OptimPrecision(weight="bfloat16", grad="E5M2", state="half", update_rounding="sr8", state_rounding="rne")
    assert prec.to_dict() == {
        "weight": "bf16",
        "grad": "e5m2",
        "state": "fp16",
        "update_rounding": "stochastic:8",
        "state_rounding": "nearest",
        "master_weights": False,
        "kahan": False,
        "seed": 0,
    }
    back = OptimPrecision.from_dict(prec.to_dict())
    for name in ("weight_format", "grad_format", "state_format"):
        assert getattr(back, name) == getattr(prec, name)


def test_error_kahan_with_master_weights():
    with pytest.raises(
        ValueError,
        match=r"^kahan and master_weights cannot be combined: both keep the bits the "
        r"weight format drops \(a compensation buffer or a float32 master copy\); "
        r"choose one$",
    ):
        OptimPrecision(weight="bf16", kahan=True, master_weights=True)


@pytest.mark.parametrize("field", ["weight", "grad", "state"])
def test_error_unknown_format(field):
    known = ", ".join(mpsim.PRESETS)
    with pytest.raises(
        ValueError,
        match=rf"^{field} format: unknown format 'bf17': expected one of {known}, "
        r"eXmY\[fn\|fnuz\|f\]\[bN\]\[ns\]\[sat\], qI\.F or uqI\.F$",
    ):
        OptimPrecision(**{field: "bf17"})


@pytest.mark.parametrize("field", ["update_rounding", "state_rounding"])
def test_error_unknown_rounding(field):
    with pytest.raises(
        ValueError,
        match=rf"^{field}: unknown rounding 'floor': expected one of nearest, "
        r"nearest_away, toward_zero, up, down, stochastic "
        r"\(stochastic:K for K random bits\)$",
    ):
        OptimPrecision(**{field: "floor"})


def test_error_unknown_dict_keys():
    known = ["grad", "kahan", "master_weights", "seed", "state", "state_rounding", "update_rounding", "weight"]
    message = r"^unknown OptimPrecision keys \['lr', 'momentum'\]; known: " + re.escape(str(known)) + "$"
    with pytest.raises(ValueError, match=message):
        OptimPrecision.from_dict({"weight": "bf16", "momentum": 0.9, "lr": 0.1})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=-1), r"^seed must be in 0\.\.2\*\*64-1 or None, not -1$"),
        (dict(seed=True), r"^seed must be an integer or None, not True$"),
        (dict(kahan=1), r"^kahan must be True or False, not 1$"),
        (dict(weight=8), r"^weight format must be a format string, a format spec or None, not 8$"),
    ],
)
def test_error_bad_field_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OptimPrecision(**kwargs)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: QSGD(ps, lr=-0.1), r"^learning rate must be >= 0\.0, not -0\.1$"),
        (
            lambda ps: QSGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            r"^nesterov momentum needs momentum > 0 and dampening 0, not momentum=0\.9, dampening=0\.1$",
        ),
        (lambda ps: QAdam(ps, betas=(0.9, 1.0)), r"^beta2 must be in \[0\.0, 1\.0\), not 1\.0$"),
        (lambda ps: QAdamW(ps, eps=-1e-8), r"^epsilon must be >= 0\.0, not -1e-08$"),
        (
            lambda ps: QAdam(ps, precision={"weight": "bf16"}),
            r"^precision must be an OptimPrecision, not \{'weight': 'bf16'\}$",
        ),
    ],
)
def test_error_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make(_model().parameters())


def test_error_non_float32_parameter():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    p.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^QAdam takes float32 CPU parameters, not torch\.float64 on cpu$"):
        QAdam([p]).step()


def test_deepcopy_of_precision_is_equal():
    prec = OptimPrecision(weight="e4m3", state="bf16")
    assert copy.deepcopy(prec) == prec
