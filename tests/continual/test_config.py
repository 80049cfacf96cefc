"""RunConfig checks every value at once, naming the bad one; run ids are file-safe."""

from __future__ import annotations

import pytest

from continual.config import RunConfig, run_id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"strategy": "icarl"},
            r"^unknown strategy 'icarl': expected one of naive, replay, gem, agem, ewc, si, lwf, packnet, joint$",
        ),
        ({"benchmark": "cifar"}, r"^unknown benchmark 'cifar': expected one of split-digits, "),
        ({"precision": "e4m3x"}, r"^unknown precision 'e4m3x': "),
        ({"policy": "often"}, r"^unknown policy 'often': "),
        ({"epochs": 0}, r"^epochs must be a positive integer, not 0$"),
        ({"lr": -1.0}, r"^lr must be positive, not -1\.0$"),
        (
            {"strategy": "packnet"},
            r"^strategy 'packnet' selects a sub-network per task and needs task labels: use scenario 'task'$",
        ),
        (
            {"strategy": "packnet", "scenario": "task", "epochs": 1},
            r"^strategy 'packnet' needs epochs > packnet_post_prune_epochs \(1\), not 1$",
        ),
    ],
)
def test_bad_values_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kwargs)


def test_labels_and_ids():
    assert RunConfig(precision="e4m3-sr").label == "e4m3-sr"
    adaptive = RunConfig(precision="e4m3-sr", policy="adaptive", seed=2)
    assert adaptive.label == "adaptive(e4m3-sr)"
    assert run_id(adaptive) == "split-digits_class_naive_adaptive-e4m3-sr_s2"
    schedule = RunConfig(policy="schedule:bf16,e4m3-sr")
    assert (
        schedule.label == "schedule:bf16,e4m3-sr"
        and run_id(schedule) == "split-digits_class_naive_schedule-bf16-e4m3-sr_s0"
    )


def test_from_dict_round_trip_and_unknown_keys():
    from dataclasses import asdict

    config = RunConfig(strategy="gem", seed=4)
    assert RunConfig.from_dict(asdict(config)) == config
    with pytest.raises(ValueError, match=r"^unknown RunConfig keys \['colour'\]; known: "):
        RunConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize(("name", "counts"), [("split-digits", (1, 2, 5, 10)), ("permuted-mnist1d", ())])
def test_experience_counts_follow_the_classes(name, counts):
    from continual.config import BENCHMARKS

    assert BENCHMARKS[name].experience_counts() == counts
    for n in counts or (3, 7):
        assert RunConfig(benchmark=name, n_experiences=n).n_experiences == n
    if counts:
        with pytest.raises(
            ValueError,
            match=rf"^{name} has 10 classes, which 3 experiences do not divide: experiences must be one of "
            r"1, 2, 5, 10$",
        ):
            RunConfig(benchmark=name, n_experiences=3)
