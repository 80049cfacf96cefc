"""The accuracy estimators of ``mpsim nas`` compared on one budget and seeds (issue 22, item 4), in one run.

    python benchmarks/nas_estimators.py [--estimators full,pruned,curve,proxy,supernet] [--trials 30]
                                        [--seeds 0] [--every 5] [--sample 12] [--supernet-epochs 10]
                                        [--predict] [--synth-front] [--cache-dir DIR] [--out results/nas/estimators]

For each estimator and seed, a search of ``--trials`` trials on digits in the default space (resumable: each run's
study lives in ``OUT/runs/ESTIMATOR_sSEED``). Every ``--every`` trials, the front the estimator found so far is
scored by what its members really reach: each front member's *true* accuracy is its accuracy after the full
training of ``--estimator full`` (4 epochs, never stopped early), trained once per distinct network and
remembered in ``OUT/true_accuracy.json`` (that evaluation is not charged to the estimator). Its **hypervolume**
in (1 - true accuracy, latency, energy[, LUT4]), each objective scaled to [0, 1] over every front point of
every run (best to worst) and the reference 1.1 in each, as a fraction of that box, beside what the search spent to
find it: training epochs (the supernet's one-off training counted as subnetwork-epochs) and synthesis seconds
(``--synth-front``: the reports of the arrays it synthesized).
With ``--predict`` the arrays are costed by the cost surrogate and LUT4 is a fourth objective.

Then **Kendall's tau** of each cheap score against full training over ``--sample`` candidates drawn from the
space (seeded): the gradient-norm proxy at initialisation, the accuracy after 1 epoch (what the pruners decide
on), the curve estimator's extrapolation from epochs 1-2, and the supernet's subnetwork accuracy.

Writes ``estimators.json``, ``estimators.csv`` (a row per run and checkpoint), ``kendall.csv``,
``estimators.md`` (the tables) and ``hypervolume.png`` (hypervolume against epochs, and against synthesis
seconds when any were spent).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

from bench_kit import md_table, plot_runs, score_hypervolumes, tool_seconds

from hls_gen.nas import (
    Estimator,
    NASConfig,
    _rows,
    datasets,
    extrapolate,
    front_rows,
    gradient_norm,
    kendall_tau,
    run_nas,
    sample,
    train_accuracy,
)
from hls_gen.network import NetworkSpec

FULL_EPOCHS = 4  # the full estimator's training: what "true accuracy" means here


def estimator_config(name: str, trials: int, seed: int, args: argparse.Namespace) -> NASConfig:
    """The search of estimator ``name``: the full estimator's budget, each estimator's own stopping rule."""
    settings: dict[str, Any] = {"estimator": name, "trials": trials, "seed": seed, "proxy_threshold": None}
    if name == Estimator.FULL:
        settings["proxy_threshold"] = 0.5  # the full estimator as mpsim nas runs it
    if name == Estimator.PRUNED:
        settings["pruner"] = "hyperband"
    if name == Estimator.SUPERNET:
        settings["supernet_epochs"] = args.supernet_epochs
    if name not in (Estimator.PROXY, Estimator.SUPERNET):
        settings["epochs"] = FULL_EPOCHS
    return NASConfig(**settings, predict=args.predict, synth_front=args.synth_front)


class TrueAccuracy:
    """Full-training accuracy per network (4 epochs, no early stop), remembered in a JSON file as it comes."""

    def __init__(self, path: Path, seed: int) -> None:
        self.path = path
        self.seed = seed
        self.memo: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
        self.config = NASConfig(epochs=FULL_EPOCHS, proxy_threshold=None, seed=seed)
        self.data = datasets(self.config)
        self.trained = 0

    def __call__(self, network: dict[str, Any], arch: str) -> float:
        key = json.dumps({"seed": self.seed, "network": network}, sort_keys=True)
        if key not in self.memo:
            accuracy, _, _ = train_accuracy(NetworkSpec.from_dict(network), self.config, self.data[arch])
            self.memo[key] = accuracy
            self.trained += 1
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.memo, sort_keys=True) + "\n")
            tmp.replace(self.path)  # a killed run keeps every accuracy it finished
        return self.memo[key]


def spent_epochs(study: Any, rows: list[dict[str, Any]]) -> float:
    """Training epochs a search spent on its first ``len(rows)`` trials; the supernet's one-off training as
    subnetwork-epochs (its epochs x families x subnetworks a step)."""
    epochs = float(sum(r["epochs"] or 0 for r in rows))
    supernet = study.user_attrs.get("supernet")
    if supernet:
        epochs += supernet["epochs"] * len(supernet["families"]) * supernet["subnets_per_step"]
    return epochs


def training_seconds(study: Any, rows: list[dict[str, Any]]) -> float:
    """Seconds the search's accuracy estimates took (each trial's, and the supernet's one-off training), as the
    study recorded them: the same on a resumed run."""
    supernet = study.user_attrs.get("supernet") or {}
    return sum(r["train_seconds"] or 0.0 for r in rows) + supernet.get("train_seconds", 0.0)


def synthesis_seconds(study: Any, cache: Any) -> float:
    """Seconds the tools took for the arrays the study synthesized (their reports' synthesis and P&R times)."""
    from hls_gen.cost_surrogate import config_from_dict
    from hls_gen.synth import SynthOptions, lookup

    seconds = 0.0
    measured = {k.split(":", 1)[1] for k in study.user_attrs if k.startswith("measured:")}
    specs = {t.user_attrs.get("array_config"): t.user_attrs.get("array_spec") for t in study.trials}
    for name in sorted(measured):
        report = lookup(config_from_dict(specs[name]), SynthOptions(pnr=True), cache=cache)
        if report is not None:
            seconds += tool_seconds(report)
    return seconds


def checkpoints(study: Any, every: int, truth: TrueAccuracy, lut: bool, cache: Any) -> list[dict[str, Any]]:
    """Per ``every`` finished trials: the front so far (by the estimator's objectives) scored at true accuracy."""
    rows = sorted(_rows(study), key=lambda r: r["trial"])
    out = []
    marks = sorted({*range(every, len(rows) + 1, every), len(rows)} - {0})
    synth = synthesis_seconds(study, cache)
    for mark in marks:
        head = rows[:mark]
        front = front_rows(head)
        points = []
        for r in front:
            accuracy = truth(r["network"], r["arch"])
            point = [1.0 - accuracy, r["latency_us"], r["energy_uj"]]
            if lut:
                point.append(float(r["luts"]))
            points.append(point)
        out.append(
            {
                "trials": mark,
                "epochs": spent_epochs(study, head),
                "train_seconds": round(training_seconds(study, head), 1),
                "synth_seconds": synth if mark == len(rows) else None,
                "front": len(front),
                "points": points,
            }
        )
    return out


def sample_scores(count: int, seed: int, truth: TrueAccuracy, supernet_out: Path | None, args: Any) -> list[dict]:
    """Per sampled candidate: its true accuracy and each cheap score of it."""
    import optuna

    config = NASConfig(epochs=FULL_EPOCHS, proxy_threshold=None, seed=seed)
    data = datasets(config)
    supernets = None
    if supernet_out is not None:
        from hls_gen.supernet import train_supernets

        # the supernet run's own settings: its checkpoint is loaded, not trained again
        config_s = estimator_config("supernet", args.trials, seed, args)
        supernets = train_supernets(config_s, data, supernet_out, progress=False)
    sampler = optuna.samplers.RandomSampler(seed=seed + 1000)  # not the searches' candidates
    study = optuna.create_study(sampler=sampler)
    scores = []
    for _ in range(count):
        trial = study.ask()
        arch = trial.suggest_categorical("arch", list(config.space.archs))
        candidate = sample(trial, config.space, data[arch].input_shape, data[arch].num_classes)
        curve: list[float] = []

        def keep(accuracy: float, epoch: int, curve: list[float] = curve) -> bool:
            curve.append(accuracy)
            return False

        full, _, _ = train_accuracy(candidate.network, config, data[arch], keep)
        truth.memo.setdefault(json.dumps({"seed": seed, "network": candidate.network.to_dict()}, sort_keys=True), full)
        row = {
            "network": candidate.network.to_dict(),
            "arch": arch,
            "full": full,
            "proxy": gradient_norm(candidate.network, config, data[arch])[0],
            "epoch1": curve[0],
            "curve": extrapolate(curve[:2], FULL_EPOCHS),
        }
        if supernets is not None:
            row["supernet"] = supernets.accuracy(candidate.network, arch, data[arch])[0]
        scores.append(row)
        study.tell(trial, full)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimators", default="full,pruned,curve,proxy,supernet")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--every", type=int, default=5, help="trials between hypervolume checkpoints (default: 5)")
    parser.add_argument("--sample", type=int, default=12, help="candidates for Kendall's tau (default: 12; 0: none)")
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--predict", action="store_true", help="cost arrays by the cost surrogate; LUT4 in the HV")
    parser.add_argument("--synth-front", action="store_true", help="with --predict: synthesize each run's front")
    parser.add_argument("--cache-dir", default=None, help="synthesis cache (default: mpsim's)")
    parser.add_argument("--out", type=Path, default=Path("results/nas/estimators"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.estimators.split(",") if n.strip()]
    for name in names:
        if name not in {e.value for e in Estimator}:
            parser.error(f"unknown estimator {name!r}: expected some of {', '.join(e.value for e in Estimator)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.synth_front and not args.predict:
        parser.error("--synth-front synthesizes the front that --predict ranks: add --predict")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    truths = {seed: TrueAccuracy(args.out / f"true_accuracy_s{seed}.json", seed) for seed in seeds}
    for seed in seeds:
        for name in names:
            config = estimator_config(name, args.trials, seed, args)
            out = args.out / "runs" / f"{name}_s{seed}"
            print(f"[{name}, seed {seed}] {args.trials} trials into {out}", flush=True)
            study = run_nas(config, out, progress=True, cache=args.cache_dir)
            cps = checkpoints(study, args.every, truths[seed], args.predict, args.cache_dir)
            runs.append({"estimator": name, "seed": seed, "checkpoints": cps})
    scaling = score_hypervolumes(runs)
    kendall: list[dict[str, Any]] = []
    if args.sample:
        supernet_out = args.out / "runs" / f"supernet_s{seeds[0]}" if "supernet" in names else None
        scores = sample_scores(args.sample, seeds[0], truths[seeds[0]], supernet_out, args)
        full = [s["full"] for s in scores]
        for score in ("proxy", "epoch1", "curve", "supernet"):
            if scores and score in scores[0]:
                kendall.append({"score": score, "tau": round(kendall_tau([s[score] for s in scores], full), 3)})
    summary = {
        "objectives": ["1 - true accuracy", "latency_us", "energy_uj", *(["luts"] if args.predict else [])],
        "scaling": scaling,
        "trials": args.trials,
        "seeds": seeds,
        "true_accuracy_trainings": sum(t.trained for t in truths.values()),
        "runs": runs,
        "kendall": kendall,
    }
    (args.out / "estimators.json").write_text(json.dumps(summary, indent=1) + "\n")
    with open(args.out / "estimators.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        head = ["estimator", "seed", "trials", "epochs", "train_seconds", "synth_seconds", "front", "hypervolume"]
        writer.writerow(head)
        for run in runs:
            for c in run["checkpoints"]:
                row = [c["trials"], c["epochs"], c["train_seconds"], c["synth_seconds"], c["front"]]
                row.append(round(c["hypervolume"], 6))
                writer.writerow([run["estimator"], run["seed"], *row])
    with open(args.out / "kendall.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["score", "tau"])
        writer.writeheader()
        writer.writerows(kendall)
    final = [
        [
            r["estimator"],
            str(r["seed"]),
            f"{r['checkpoints'][-1]['epochs']:.0f}",
            f"{r['checkpoints'][-1]['train_seconds']:.0f}",
            f"{r['checkpoints'][-1]['synth_seconds'] or 0:.0f}",
            str(r["checkpoints"][-1]["front"]),
            f"{r['checkpoints'][-1]['hypervolume']:.4g}",
        ]
        for r in runs
    ]
    headers = ["estimator", "seed", "epochs spent", "training s", "synthesis s", "front", "hypervolume"]
    if len(seeds) > 1:  # the same per estimator over the seeds: mean and standard deviation
        per = {n: [r["checkpoints"][-1] for r in runs if r["estimator"] == n] for n in names}

        def spread(values: list[float], digits: str) -> str:
            return f"{statistics.mean(values):{digits}} ± {statistics.stdev(values):{digits}}"

        summary_rows = [
            [
                n,
                spread([c["epochs"] for c in cs], ".0f"),
                spread([c["train_seconds"] for c in cs], ".0f"),
                spread([c["hypervolume"] for c in cs], ".3f"),
            ]
            for n, cs in per.items()
        ]
        means = md_table(["estimator", "epochs spent", "training s", "hypervolume"], summary_rows)
    else:
        means = ""
    text = (means + "\n\n" if means else "") + md_table(headers, final)
    if kendall:
        tau_rows = [[k["score"], str(k["tau"])] for k in kendall]
        text += "\n\n" + md_table(["score", "Kendall tau vs full training"], tau_rows)
    (args.out / "estimators.md").write_text(text + "\n")
    print(text)
    plot_runs(
        runs,
        "estimator",
        "epochs",
        args.out / "hypervolume.png",
        measure="true accuracy",
        spent="training epochs spent by the search",
        note="each run (supernet: its one-off training as subnetwork-epochs)",
        title="mpsim nas: the accuracy estimators on one budget",
    )
    print(f"wrote {args.out}/estimators.json, estimators.csv, kendall.csv, estimators.md, hypervolume.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
