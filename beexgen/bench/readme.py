"""The README's results: the table, the per-core table and the prose under them, rendered
from a Bench (record.py) only, so every figure in them is one docs/bench.json holds.
Each goes between its <!-- TAG:begin --> / <!-- TAG:end --> markers (update_readme)."""
from __future__ import annotations

from pathlib import Path

from beexgen.bench.common import SEEDS
from beexgen.bench.m4 import CYCLE_NOTE
from beexgen.bench.record import Bench
from beexgen.bench.speed import SPEED_PASSES

TAGS = ("bench", "bench-cores", "bench-prose")


def _ci(acc: float, w: list[float]) -> str:
    return f"{acc:.1f} [{w[0]:.1f}-{w[1]:.1f}]"


def _exit_name(e: str) -> str:
    return "0 (wide)" if e == "0" else e


def table(b: Bench) -> str:
    meta, ds = b.meta, b.datasets
    runs = list(ds.values())
    L = [f"Measured by `{meta.command}` on {meta.machine} ({meta.date}, {meta.minutes:.1f} min). Test split of each "
         "data set (seeded 80/10/10, stratified; seed 0 unless a row says otherwise); thresholds calibrated on the "
         "validation split; [a-b] is the 95 % Wilson interval.", "",
         "| | " + " | ".join(ds) + " |", "|---|" + "---|" * len(ds)]

    def row(name, f):
        L.append(f"| {name} | " + " | ".join(f(r) for r in runs) + " |")

    def ci(r, key):
        return _ci(getattr(r.accuracy, f"accuracy_{key}"), r.accuracy.wilson95[key])

    row("**accuracy, shipped model, default policy** ", lambda r: f"**{ci(r, 'default_policy')}**")
    row("accuracy, shipped model, full depth", lambda r: ci(r, "full_depth"))
    row("bag-of-words LR (binary words) / TF-IDF uni+bigram LR (C tuned)",
        lambda r: f"{ci(r, 'bow_lr')} / {ci(r, 'tfidf_lr')}")
    row(f"mean of {len(SEEDS)} seeds: shipped (default policy) / BoW LR / TF-IDF LR",
        lambda r: " / ".join(f"{r.accuracy.seed_mean[k]:.1f}" for k in ("default_policy", "bow", "tfidf")))
    row("per seed " + ", ".join(map(str, SEEDS)) + ": shipped (default policy)",
        lambda r: ", ".join(f"{v['default_policy']:.1f}" for v in r.accuracy.seeds.values()))
    if all(r.accuracy.mcnemar_p for r in runs):
        f1 = lambda v: "-" if v is None else f"{v:.1f}"      # noqa: E731
        row(f"exit 0 alone: mean of {len(SEEDS)} seeds (per seed)",
            lambda r: f"{f1(r.accuracy.seed_mean.get('exit0'))} "
                      f"({', '.join(f1(v.get('exit0')) for v in r.accuracy.seeds.values())})")
        row("exact McNemar p, default policy vs BoW LR / vs TF-IDF LR, seed 0 (model right only : baseline right only)",
            lambda r: " / ".join(f"{r.accuracy.mcnemar_p[k]:.3g} ({a}:{b})"
                                 for k, (a, b) in r.accuracy.mcnemar_discordant.items()))
        row("sentences the default policy ends at exit 0",
            lambda r: "all (the blocks did not help on validation)" if r.accuracy.leaves_at_exit0 == 1.0
            else f"{100 * r.accuracy.leaves_at_exit0:.0f} %")
    row("paper's architecture (--no-wide): full depth / its default policy",
        lambda r: f"{ci(r, 'paper_model')} / {r.accuracy.accuracy_paper_default_policy:.1f}")
    row("full-precision twin (same wide exit in float32), final exit", lambda r: ci(r, "twin"))
    row("accuracy by exit (" + ", ".join(map(_exit_name, runs[0].accuracy.accuracy_by_exit)) + ")",
        lambda r: " / ".join(f"{a:.1f}" for a in r.accuracy.accuracy_by_exit.values()))
    row("default policy (calibrated)", lambda r: f"{r.policies.default_policy.name} "
        + ",".join(f"{t:.3g}" for t in r.policies.default_policy.thresholds))
    row("sentences leaving at each exit, default policy",
        lambda r: " / ".join(str(h) for h in r.policies.exit_histogram.values()))
    row("**compute saved vs full depth, default policy**",
        lambda r: f"**{100 * r.policies.compute_saved_default_policy:.0f} %**")
    for p in runs[0].policies.policies:
        row(f"{p} policy: accuracy / compute saved", lambda r, p=p: (lambda q: f"{_ci(q.accuracy, q.wilson95)} / "
                                                                     f"{100 * q.compute_saved:.0f} %")(r.policies.policies[p]))
    row("test texts longer than seq_max (head + tail) / longest test text (streamed whole)",
        lambda r: f"{r.parity.texts_over_seq_max} / {r.parity.max_text_bytes} B")
    row("artifact bytes, shipped (paper model) [twin, ratio]",
        lambda r: f"{r.size.artifact_bytes / 1024:.0f} KB ({r.size.paper_model_bytes / 1024:.0f} KB) "
                  f"[{r.size.twin_bytes / 1024:.0f} KB, {r.size.twin_bytes / r.size.artifact_bytes:.1f}x]")
    row("bag-of-words LR bytes fp32 / int8",
        lambda r: f"{r.size.bow_lr_fp32_bytes / 1024:.0f} / {r.size.bow_lr_int8_bytes / 1024:.0f} KB")
    if all(r.accuracy.board_flash_budget for r in runs):
        row(f"flash budget of the model on {runs[0].size.board} (flash - firmware code - margin) / artifact",
            lambda r: f"{r.accuracy.board_flash_budget / 1024:.0f} KB / {r.size.artifact_bytes / 1024:.0f} KB")
    row(f"{runs[0].size.board} flash / RAM / stack", lambda r: f"{r.size.board_flash_bytes / 1024:.0f} / "
        f"{r.size.board_ram_bytes / 1024:.0f} KB / {r.size.board_stack_bytes} B")
    row("M4 instructions / sentence, mean (p95)",
        lambda r: f"{r.m4.m4_instructions_mean / 1e6:.2f} M ({r.m4.m4_instructions_p95 / 1e6:.2f} M)")
    if all(r.latency.m4_full_depth_mean is not None for r in runs):
        row("M4 instructions, default policy max / full depth mean [per token per block] / worst-case bound (seq_max)",
            lambda r: f"{r.latency.m4_instructions_max / 1e6:.2f} M / {r.latency.m4_full_depth_mean / 1e6:.2f} M "
                      f"[{r.latency.m4_full_depth_per_token_per_block / 1e3:.1f} k] / "
                      f"{(r.latency.m4_worst_case_bound or 0) / 1e6:.2f} M"
                      + ("" if r.latency.m4_worst_case_bound_holds else " (does not hold)"))
    row("M4 instructions by exit", lambda r: ", ".join(f"{e}: {v / 1e6:.2f} M" for e, v in r.m4.m4_by_exit.items()))
    row("est. ms / sentence at 100 MHz", lambda r: "{:.1f}-{:.1f}".format(*r.m4.ms_at_100mhz()))
    row("host emulator us / sentence, full depth", lambda r: f"{r.speed.host_us_per_sentence:.0f}")
    row("PyTorch eager batch-1 us / sentence, full depth", lambda r: f"{r.speed.pytorch_us_per_sentence:.0f}")
    row("speed-up of the C over PyTorch", lambda r: f"{r.speed.host_speedup:.0f}x")
    isa = [n for n in runs[0].speed.host_speedup_by_isa if all(n in r.speed.host_speedup_by_isa for r in runs)]
    if isa:
        row(f"speed-up over PyTorch by x86 path ({' / '.join(isa)})",
            lambda r: " / ".join(f"{r.speed.host_speedup_by_isa[n]:.0f}x" for n in isa))
    row("C == PyTorch (class, exit, logits bits)", lambda r: "{}/{}".format(*r.parity.c_equals_pytorch))
    row("QEMU firmware == host emulator (replies)", lambda r: "{}/{}".format(*r.parity.qemu_equals_host))
    L.append("")
    k = b.kernel
    shapes = list(k.binary_instr_per_32_macs)
    L += ["Binary linear kernel on the model's shapes, whole calls on the M4 (mps2-an386 build, counted in unicorn), "
          "beside CMSIS-DSP's `arm_mat_vec_mult_q7` (the int8 peer) on the same shapes:", "",
          "| shape (in x out) | " + " | ".join(shapes) + " |", "|---|" + "---|" * len(shapes),
          "| binary, instructions per 32 MACs (default / DSP / portable C) | " + " | ".join(
              f"{k.binary_instr_per_32_macs[s]:.2f} / {k.dsp_instr_per_32_macs[s]:.2f} / "
              f"{k.portable_instr_per_32_macs[s]:.2f}" for s in shapes) + " |",
          "| binary, instructions per call | " + " | ".join(f"{k.binary_instr[s]:,}" for s in shapes) + " |",
          "| CMSIS-DSP q7, instructions per call | " + " | ".join(f"{k.cmsis_dsp_q7_instr[s]:,}" for s in shapes) + " |",
          "| **q7 / binary** | " + " | ".join(f"**{k.q7_over_binary[s]:.1f}x**" for s in shapes) + " |", ""]
    L += [f"M4 instructions per sentence by stage (default model and policy, mean over the first "
          f"{runs[0].m4.m4_profile_sentences} test sentences; the stages sum to the firmware's `cost=`):", "",
          "| stage | " + " | ".join(ds) + " |", "|---|" + "---|" * len(ds)]
    for st in runs[0].m4.m4_profile:
        row(st, lambda r, st=st: f"{r.m4.m4_profile.get(st, 0):,}")
    row("**total (= mean cost=)**", lambda r: f"**{sum(r.m4.m4_profile.values()):,}**")
    if all(r.m4.m4_profile_cost_mean is not None for r in runs):
        row("mean cost= over the same sentences", lambda r: f"{r.m4.m4_profile_cost_mean:,}")
    row("int8 peer (same shapes, q7 matrix products only)", lambda r: f"{r.m4.int8_peer_instructions_estimate:,} "
        f"({r.m4.int8_peer_flash_bytes / 1024:.0f} KB flash)")
    L.append(f"Cycle estimate: {CYCLE_NOTE}. Compute = float ops + binary MACs / 64 (beexgen/core/cost.py).")
    if b.tune is not None:
        L += ["", "A fixed-budget model search (`beexgen tune`, beexgen/bench/tune.py):", "", b.tune.markdown()]
    return "\n".join(L) + "\n"


def cores_table(b: Bench) -> str:
    """The per-core table."""
    first = next(iter(b.cores.values()))
    L = [f"The default model ({first.dataset}) on every Cortex-M core QEMU emulates: instructions per "
         "test sentence under `-icount` (default exit policy), the firmware's flash and RAM "
         "(statics + reserved stack), and how many replies equal the host emulator's:", "",
         "| core | board | float | instructions / sentence (mean, p95) | flash | RAM | QEMU == host |",
         "|---|---|---|---|---|---|---|"]
    for core, r in b.cores.items():
        size = f"{r.flash_bytes / 1024:.0f} KB | {r.ram_bytes / 1024:.0f} KB"
        if r.fits:
            L.append(f"| {core} | {r.board} | {r.float_abi} | {r.instructions_mean / 1e6:.2f} M "
                     f"({r.instructions_p95 / 1e6:.2f} M) | {size} | {r.qemu_equals_host[0]}/{r.qemu_equals_host[1]} |")
        else:
            L.append(f"| {core} | {r.board} | {r.float_abi} | does not fit: {r.reason} | {size} | - |")
    return "\n".join(L) + "\n"


def _span(values, fmt: str) -> str:
    """"lo-hi" of values in format fmt, or the one value when they print alike."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def _versus(mine: float, other: float) -> str:
    return "above" if mine > other else "**below**" if mine < other else "level with"


def prose(b: Bench) -> str:
    """The text under the tables: how the figures were made and what they say."""
    meta, runs = b.meta, b.datasets
    n_models = len(runs) * (len(SEEDS) + 2)
    if meta.train_seconds:
        how = (f"this run trained {len(meta.train_seconds)} of them "
               f"({sum(meta.train_seconds.values()) / 60:.0f} min of training, summed over the jobs)")
    else:
        how = "this table was regenerated from earlier runs with `--reuse`"
    L = [f"The table and `docs/bench.json` are written together by `make bench` (`beexgen bench --readme README.md`). "
         f"The full run trains {n_models} models (on each data set the shipped model on seeds "
         + ", ".join(map(str, SEEDS)) + ", its full-precision twin and the paper's architecture), two at a time "
         f"with one torch thread each; {how}; the whole bench took {meta.minutes:.1f} min. Each seed has its own "
         "split, tokenizer and model; the baselines are fitted on each seed's split. PyTorch is timed eager, batch 1, "
         "one thread, full depth; the host emulator's time is its own `cost=` (ns inside the device's classify, "
         f"tokenizer included), full depth; {SPEED_PASSES} passes, PyTorch and the C taking turns, medians. M4 "
         "figures are instructions (QEMU `-icount` for `cost=`, unicorn for the per-stage profile and the kernels), "
         "not cycles. The exit-policy report of each run (Pareto curve, exit histogram, per-exit accuracy) is "
         "written to `runs/bench/<dataset>/report/report.md`; design ablations are in "
         "[docs/ABLATIONS.md](docs/ABLATIONS.md).", "",
         "**Where the model stands against the baselines, plainly.**"]
    margin = {name: r.accuracy.accuracy_default_policy - max(r.accuracy.accuracy_bow_lr, r.accuracy.accuracy_tfidf_lr)
              for name, r in runs.items()}
    for name in sorted(runs, key=lambda n: -margin[n]):
        a, p = runs[name].accuracy, runs[name].policies
        exit0 = 100 * p.exit_histogram.get("0", 0) / max(1, sum(p.exit_histogram.values()))
        L.append(f"- **{name}**: the shipped model ({a.accuracy_default_policy:.1f} %, {len(SEEDS)}-seed mean "
                 f"{a.seed_mean['default_policy']:.1f} %) is {_versus(a.accuracy_default_policy, a.accuracy_bow_lr)} "
                 f"the binary bag-of-words LR ({a.accuracy_bow_lr:.1f} %, mean {a.seed_mean['bow']:.1f} %) and "
                 f"{_versus(a.accuracy_default_policy, a.accuracy_tfidf_lr)} the TF-IDF uni+bigram LR "
                 f"({a.accuracy_tfidf_lr:.1f} %, mean {a.seed_mean['tfidf']:.1f} %); the paper's architecture "
                 f"(--no-wide) reaches {a.accuracy_paper_model:.1f} % at full depth, and {exit0:.0f} % of the test "
                 "sentences leave at exit 0.")
    L.append("- Where the shipped model is below a baseline, the wide exit over the WordPiece vocabulary is a weaker "
             "bag of words than the baselines' words (and word pairs, for TF-IDF), and the binarized blocks add "
             "little to it (the paper's architecture row); neither a MiniLM teacher's representation nor a "
             "teacher-labelled transfer set changed that (docs/ABLATIONS.md).")
    rs = list(runs.values())
    exact = all(r.parity.c_equals_pytorch[0] == r.parity.c_equals_pytorch[1] and
                r.parity.qemu_equals_host[0] == r.parity.qemu_equals_host[1] for r in rs)
    exit0 = [100 * r.policies.exit_histogram.get("0", 0) / max(1, sum(r.policies.exit_histogram.values())) for r in rs]
    mean = [r.m4.m4_instructions_mean / 1e6 for r in rs]
    ms = [r.m4.ms_at_100mhz() for r in rs]
    int8 = [r.m4.int8_peer_instructions_estimate / 1e6 for r in rs]
    flash = [r.m4.int8_peer_flash_bytes / 1024 for r in rs]
    first, s0 = next(iter(runs)), rs[0].size
    names = sorted({r.policies.default_policy.name for r in rs})
    L.append("- What the model does give: it is " + (
        "**exact** (C == PyTorch, bit for bit, on every test sentence; QEMU == host)" if exact else
        "**not exact** on every sentence (see the C == PyTorch and QEMU == host rows)")
        + f", and **cheap on the M4**: the default ({' / '.join(names)}) policy sends {_span(exit0, '.0f')} "
        f"% of the sentences out at exit 0, so the mean is {_span(mean, '.2f')} M instructions per sentence "
        f"(about {_span([m[0] for m in ms] + [m[1] for m in ms], '.1f')} ms at 100 MHz), where an int8 model of the "
        f"same shape would need {_span(int8, '.0f')} M instructions for its matrix products alone and "
        f"{_span(flash, '.0f')} KB of flash. It is "
        + ("**not smaller**" if s0.artifact_bytes >= s0.bow_lr_int8_bytes else "smaller")
        + f" than the bag-of-words LR ({s0.artifact_bytes / 1024:.0f} KB against {s0.bow_lr_int8_bytes / 1024:.0f} KB "
        f"at int8 on {first}).")
    return "\n".join(L) + "\n"


def blocks(b: Bench) -> dict[str, str]:
    """README marker tag -> its text."""
    out = {"bench": table(b), "bench-prose": prose(b)}
    if b.cores:
        out["bench-cores"] = cores_table(b)
    return out


def read_block(text: str, tag: str) -> str:
    a, z = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if a not in text or z not in text:
        raise SystemExit(f"README: no {a} ... {z} markers")
    return text.split(a, 1)[1].split(z, 1)[0].removeprefix("\n")


def update_readme(readme: Path, md: str, tag: str = "bench") -> None:
    text = readme.read_text()
    a, z = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if a not in text or z not in text:
        raise SystemExit(f"{readme}: no {a} ... {z} markers")
    head, rest = text.split(a, 1)
    _, tail = rest.split(z, 1)
    readme.write_text(head + a + "\n" + md + z + tail)


def write(readme: Path, b: Bench) -> None:
    for tag, md in blocks(b).items():
        update_readme(readme, md, tag)
