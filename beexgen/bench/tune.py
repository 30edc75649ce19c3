"""The bench's fixed-budget `beexgen tune` (issue 22): trec6, nucleo-f411re, --max-ms 20.

    from beexgen.bench import tune as bench_tune
    r = bench_tune.run(Path("runs/bench"))           # resumes or reuses OUT/tune's study
    Bench(..., tune=r)                               # the tune.* keys of docs/bench.json

The search itself reads the training and validation splits only. After the pick, and only
then, this module reads the test split: the chosen model's test accuracy beside the
default recipe's (the bench's own run OUT/trec6, same seed and split) and the two linear
baselines' (fitted on the training split, C by cross-validation on it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DATASET = "trec6"
BOARD = "nucleo-f411re"
MAX_MS = 20.0
TRIALS = 20
SEED = 0
TUNE_DIR = "tune"


@dataclass
class TuneBench:
    dataset: str
    board: str
    max_ms: float
    budget: int                      # --trials
    trials: int                      # finished trials in the study (complete + pruned)
    measured: int                    # trials trained, built and counted to the end
    minutes: float                   # first trial's start to last trial's end
    chosen_trial: int | None
    accuracy_test: float | None      # the chosen model, its calibrated policy, the test split
    accuracy_val: float | None
    ms: float | None                 # mean over the validation sentences
    ms_p95: float | None
    flash_bytes: int | None
    ram_bytes: int | None
    default_recipe_test: float | None
    baselines_test: dict = field(default_factory=dict)
    pareto: list = field(default_factory=list)
    plot: str = ""
    report: str = ""

    def to_json(self) -> dict:
        """docs/bench.json's "tune" block (/work/shared/BENCH.md keys), accuracies in %."""
        pct = lambda x: None if x is None else round(100 * x, 4)   # 4 places: the README's 1-place figure
                                                                  # must not round an already rounded value
        return {"trials": self.trials, "budget": self.budget, "measured": self.measured, "minutes": round(self.minutes, 1),
                "max_ms": self.max_ms, "board": self.board, "dataset": self.dataset,
                "chosen": {"trial": self.chosen_trial, "accuracy_test": pct(self.accuracy_test),
                           "accuracy_val": pct(self.accuracy_val), "ms": self.ms, "ms_p95": self.ms_p95,
                           "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes},
                "accuracy_default_recipe_test": pct(self.default_recipe_test),
                "baselines_test": {k: pct(v) for k, v in self.baselines_test.items()},
                "pareto": self.pareto, "plot": self.plot, "report": self.report}

    @classmethod
    def from_json(cls, d: dict) -> "TuneBench":
        """The inverse of to_json (docs/bench.json read back)."""
        frac = lambda x: None if x is None else x / 100
        c = d.get("chosen", {})
        return cls(dataset=d["dataset"], board=d["board"], max_ms=d["max_ms"], budget=d.get("budget", d["trials"]),
                   trials=d["trials"], measured=d["measured"], minutes=d["minutes"], chosen_trial=c.get("trial"),
                   accuracy_test=frac(c.get("accuracy_test")), accuracy_val=frac(c.get("accuracy_val")),
                   ms=c.get("ms"), ms_p95=c.get("ms_p95"), flash_bytes=c.get("flash_bytes"),
                   ram_bytes=c.get("ram_bytes"), default_recipe_test=frac(d.get("accuracy_default_recipe_test")),
                   baselines_test={k: frac(v) for k, v in d.get("baselines_test", {}).items()},
                   pareto=d.get("pareto", []), plot=d.get("plot", ""), report=d.get("report", ""))

    def markdown(self) -> str:
        f = lambda x: "-" if x is None else f"{100 * x:.1f}"
        L = [f"`beexgen tune {self.dataset} --board {self.board} --max-ms {self.max_ms:g} --trials {self.budget}`: "
             f"{self.trials} trials ({self.measured} measured) in {self.minutes:.0f} min.", "",
             "| model | test accuracy | ms mean (p95) | flash | RAM |", "|---|---|---|---|---|"]
        if self.chosen_trial is not None:
            L.append(f"| tuned (trial #{self.chosen_trial}) | {f(self.accuracy_test)} | {self.ms:.1f} ({self.ms_p95:.1f}) "
                     f"| {self.flash_bytes / 1024:.0f} KB | {self.ram_bytes / 1024:.0f} KB |")
        L.append(f"| default recipe | {f(self.default_recipe_test)} | | | |")
        for k, v in self.baselines_test.items():
            L.append(f"| {k} | {f(v)} | | | |")
        if self.plot:
            L += ["", f"![The search's Pareto front: validation accuracy against ms per sentence]({self.plot})", "",
                  f"Pareto front: validation accuracy against ms per sentence on {self.board} (`{self.plot}`); "
                  f"the search's own report (every trial, the front, parameter importances) is `{self.report}`."]
        return "\n".join(L)


def _minutes(study) -> float:
    ts = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    if not ts:
        return 0.0
    return (max(t.datetime_complete for t in ts) - min(t.datetime_start for t in ts)).total_seconds() / 60


def test_accuracy(run_dir: Path) -> float:
    """Accuracy on the test split of a run directory's artifact under its exit policy."""
    from beexgen.core import artifact
    from beexgen.train import deploy
    from beexgen.train.trainer import load_run
    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids, y, _ = run.part("test")
    res = deploy.run(deploy.DeployModel(art), ids, run.all_part("test"))
    cls, _ = res.at_exit(res.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"]))
    return float((cls == y).mean())


def run(out: Path, *, dataset: str = DATASET, board: str = BOARD, max_ms: float = MAX_MS, trials: int = TRIALS,
        default_run: Path | None = None, jobs: int = 1, space: str | None = None) -> TuneBench:
    """Run (or resume, or reuse when finished) the fixed-budget tune in OUT/tune, then
    measure the chosen model on the test split."""
    from optuna.trial import TrialState

    from beexgen import tune
    from beexgen.train.trainer import load_run

    tdir = Path(out) / TUNE_DIR
    opt = tune.Options(dataset=dataset, board=board, out=str(tdir), storage=tune.storage_url(None, tdir.resolve()),
                       study=f"tune-{dataset}-{board}", trials=trials, minutes=None, max_ms=max_ms, space=space,
                       seed=SEED)
    res = tune.tune(opt, jobs=jobs)          # a finished study: no trial runs, only the pick and the report
    study, chosen = res["study"], res["chosen"]
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    measured = [t for t in study.trials if t.state == TrialState.COMPLETE and "accuracy" in t.user_attrs]
    front = [{"trial": t.number, "accuracy_val": round(100 * t.user_attrs["accuracy"], 2),
              "ms": t.user_attrs["ms_mean"], "flash_bytes": t.user_attrs["flash"]}
             for t in tune.pareto(measured)]
    # the test split, read only now that the pick is made
    acc_test = test_accuracy(res["best"]) if chosen is not None else None
    default = test_accuracy(default_run) if default_run and (Path(default_run) / "artifact" / "meta.json").exists() \
        else None
    r = load_run(res["best"]) if chosen is not None else None
    base = {}
    if r is not None:
        tr, te = list(r.split.train), list(r.split.test)
        base = tune.linear_baselines([r.texts[i] for i in tr], r.labels[tr], [r.texts[i] for i in te], r.labels[te])
    a = chosen.user_attrs if chosen is not None else {}
    png = tdir / "pareto_ms.png"
    return TuneBench(dataset=dataset, board=board, max_ms=max_ms, budget=trials, trials=len(done), measured=len(measured),
                     minutes=_minutes(study), chosen_trial=chosen.number if chosen is not None else None,
                     accuracy_test=acc_test, accuracy_val=a.get("accuracy"), ms=a.get("ms_mean"),
                     ms_p95=a.get("ms_p95"), flash_bytes=a.get("flash"), ram_bytes=a.get("ram"),
                     default_recipe_test=default, baselines_test=base, pareto=front,
                     plot=str(png) if png.exists() else "", report=str(res["report"]))
