"""The `beexgen` command: train, export, eval, build, emulate, flash, infer."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from beexgen import __version__


def _floats(s: str | None) -> list[float] | None:
    if s is None or s == "":
        return None
    try:
        return [float(x) for x in s.split(",")]
    except ValueError:
        raise click.BadParameter(f"{s!r}: want comma-separated numbers, e.g. 1,1,1,1") from None


def _known_errors() -> tuple:
    """Errors that mean bad input (a file, a name, a size), not a bug: one line, no traceback."""
    from beexgen.core.artifact import ArtifactError
    from beexgen.train.data import DataError
    out = [ArtifactError, DataError, FileNotFoundError, NotADirectoryError, IsADirectoryError]
    try:
        from beexgen.codegen import boards, build, emulate, firmware
        out += [boards.UnknownBoardError, build.BuildError, firmware.FirmwareTooBig, emulate.QemuError]
    except ImportError:
        pass
    return tuple(out)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _known_errors() as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="beexgen")
def main():
    """beexgen: a text classification data set -> a binarized early-exit transformer
    (BEExformer) -> C that runs on a Cortex-M4 and agrees with PyTorch bit for bit.

    \b
    Typical flow:
      beexgen train rotten_tomatoes --out runs/rt       # train, export, evaluate
      beexgen build runs/rt/artifact --target host      # x86 emulator of the board
      beexgen build runs/rt/artifact --target cortex-m4 --board nucleo-f411re
      beexgen emulate runs/rt/artifact --board mps2-an386
    """


@main.command()
@click.argument("dataset")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [runs/<dataset>].")
@click.option("--seed", default=0, show_default=True, help="Seeds the split, the initialisation and the batches.")
@click.option("--epochs", type=int, help="Train this many epochs [derived from --steps].")
@click.option("--steps", default=1500, show_default=True,
              help="Optimizer-step budget, rounded up to whole epochs (ignored with --epochs).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--vocab-size", default=3500, show_default=True, help="WordPiece vocabulary (lives in flash).")
@click.option("--d-model", default=128, show_default=True)
@click.option("--heads", default=4, show_default=True)
@click.option("--d-ff", default=256, show_default=True)
@click.option("--blocks", type=int, help="Transformer blocks, each with an exit head [2 with the wide exit, 4 without].")
@click.option("--seq-max", default=64, show_default=True, help="Maximum tokens per sentence, [CLS] included.")
@click.option("--no-slfn", is_flag=True, help="Ablation: blocks without the Selective Learn-Forget Network.")
@click.option("--no-wide", is_flag=True, help="The paper's architecture alone: no wide exit 0 (bag of ids + bigrams).")
@click.option("--bigram-buckets", type=int,
              help="Hashed bigram buckets of the wide exit (a power of two, 0: none) [most that fit 256 KB].")
@click.option("--full-precision", is_flag=True, help="Train the full-precision twin (binarization off).")
@click.option("--with-twin", is_flag=True, help="Also train the full-precision twin into RUN/twin.")
@click.option("--exit-weights", help="Soft-routing loss weight of each exit, e.g. 1,1,1,2 [all 1].")
@click.option("--max-train", type=int, help="Use at most this many training sentences.")
@click.option("--text-column", help="Text column of a CSV/TSV/JSONL file.")
@click.option("--label-column", help="Label column of a CSV/TSV/JSONL file.")
@click.option("--dropout", default=0.1, show_default=True, help="Training-only dropout: embeddings, block branches.")
@click.option("--attn-dropout", default=0.0, show_default=True, help="Training-only dropout on the attention weights.")
@click.option("--token-dropout", default=0.0, show_default=True,
              help="Training-only: replace each token by [UNK] with this probability.")
@click.option("--board", default="nucleo-f411re", show_default=True,
              help="Check before training that the model's RAM (seq_max tokens) fits this board; 'none' skips.")
@click.option("--threads", default=1, show_default=True,
              help="Torch threads (more help little on a model this small, and hurt on a loaded machine).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(dataset, out, seed, epochs, steps, batch_size, lr, vocab_size, d_model, heads, d_ff, blocks, seq_max,
          no_slfn, no_wide, bigram_buckets, full_precision, with_twin, exit_weights, max_train, text_column, label_column, dropout,
          attn_dropout, token_dropout, board, threads, quiet):
    """Train a BEExformer on DATASET, export its artifact and print the eval table.

    DATASET is `rotten_tomatoes`, `sms_spam` or `trec6` (fetched once, offline
    afterwards), a local .csv/.tsv/.jsonl file with text and label columns, or a
    Hugging Face `datasets` name such as `glue/sst2` (needs `pip install beexgen[online]`)."""
    from beexgen.train.trainer import TrainConfig, train as run_train

    out = Path(out or f"runs/{Path(dataset).stem.replace('/', '_')}")
    model = dict(d_model=d_model, n_heads=heads, d_ff=d_ff, seq_max=seq_max,
                 slfn=not no_slfn, dropout=dropout, wide=not no_wide)
    if blocks is not None:
        model["n_blocks"] = blocks
    if bigram_buckets is not None:
        model["bigram_buckets"] = bigram_buckets
    if board != "none":
        _ram_check(model, vocab_size, board)
    common = dict(dataset=dataset, seed=seed, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr,
                  vocab_size=vocab_size, token_dropout=token_dropout, attn_dropout=attn_dropout,
                  exit_weights=_floats(exit_weights), threads=threads,
                  max_train=max_train, text_column=text_column, label_column=label_column, model=model)
    run_train(TrainConfig(out=str(out), full_precision=full_precision, **common), progress=not quiet)
    if with_twin and not full_precision:
        click.echo("binarized model done; now its full-precision twin (--with-twin), same split and tokenizer",
                   err=True)
        twin = out / "twin"
        twin.mkdir(parents=True, exist_ok=True)
        for f in ("split.json", "tokenizer.json"):  # the twin sees exactly the same data and ids
            (twin / f).write_bytes((out / f).read_bytes())
        run_train(TrainConfig(out=str(twin), full_precision=True, **common), progress=not quiet)
    if full_precision:
        click.echo(f"full-precision run in {out} (not exportable: it is the reference twin)")
        return
    from beexgen.train.export import export_run
    art = export_run(out)
    click.echo(f"artifact: {art.path} (hash {art.hash[:16]}...)")
    _print_eval(out, twin=out / "twin" if (out / "twin" / "checkpoint.pt").exists() else None)


def _ram_check(model: dict, vocab_size: int, board: str) -> None:
    """Refuse, before any training, a seq_max (or width) whose activations do not fit
    the board's RAM; print what the model will need (codegen/fit.py measures it)."""
    from beexgen.codegen import firmware, fit
    from beexgen.codegen.build import BuildError
    from beexgen.train.model import ModelConfig
    from beexgen.train.tokenizer import build_empty

    cfg = ModelConfig(vocab_size=vocab_size, n_classes=2, **{**model, "bigram_buckets": 0}).to_dict()
    try:
        b = fit.ram_check(cfg, build_empty(fit.placeholder_vocab(vocab_size)).to_str(), board)
    except firmware.FirmwareTooBig as e:
        raise click.ClickException(
            f"--seq-max {cfg['seq_max']} with d_model {cfg['d_model']} needs {e.build.ram_used / 1024:.1f} KB "
            f"of RAM on {board} ({e.build.ram_total / 1024:.0f} KB there): lower --seq-max or --d-model, or "
            f"pick another --board (checked before training)\n{firmware.format_size_table(e.build)}") from None
    except BuildError as e:
        click.echo(f"RAM check for {board} skipped: {e}", err=True)
        return
    click.echo(f"RAM on {board}: {b.ram_used / 1024:.1f} of {b.ram_total / 1024:.0f} KB "
               f"(seq_max {cfg['seq_max']}, d_model {cfg['d_model']}, stack and line buffers included)", err=True)


def _print_eval(run_dir: Path, twin: Path | None = None, as_json: bool = False):
    from beexgen.core import artifact
    from beexgen.train import evaluate
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids, y, _ = run.part("test")
    rep = evaluate.evaluate(art, ids, y, all_ids=run.all_part("test"))
    twin_acc = evaluate.twin_exit_accuracy(twin) if twin else None
    rep["twin_exit_acc"] = twin_acc
    if as_json:
        click.echo(evaluate.to_json(rep))
    else:
        click.echo(evaluate.format_report(rep, f"beexgen eval: {run.config.dataset} ({run_dir})", twin_acc))
    (run_dir / "eval.json").write_text(evaluate.to_json(rep) + "\n")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Artifact directory [RUN_DIR/artifact].")
@click.option("--policy", "policy_name", type=click.Choice(["confidence", "entropy"]), default="confidence",
              show_default=True, help="Default exit policy to calibrate on the validation split.")
@click.option("--ceiling", type=float, help="entropy: compute ceiling (fraction of full depth).")
@click.option("--tolerance", default=0.01, show_default=True,
              help="confidence: accuracy the early leavers may lose (bounded with prob. 1-delta); "
                   "entropy: validation accuracy given up for a cheaper threshold.")
def export(run_dir, out, policy_name, ceiling, tolerance):
    """Freeze a trained run into a deployable artifact (packed bits, calibrated exits)."""
    from beexgen.train.export import export_run
    art = export_run(run_dir, out, policy_name=policy_name, ceiling=ceiling, tolerance=tolerance)
    size = art.size_report()
    click.echo(f"artifact {art.path}: {size['total']:,} bytes, hash {art.hash[:16]}..., "
               f"policy {art.policy['name']} {art.policy['thresholds']}")


@main.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--twin", type=click.Path(exists=True, file_okay=False),
              help="Full-precision twin run to report beside [RUN_DIR/twin if present].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def eval_cmd(run_dir, twin, as_json):
    """Accuracy of every exit and under the exit policy, compute and size, on the test split."""
    run_dir = Path(run_dir)
    if twin is None and (run_dir / "twin" / "checkpoint.pt").exists():
        twin = run_dir / "twin"
    _print_eval(run_dir, Path(twin) if twin else None, as_json)


def _deploy_split(run, art, part):
    from beexgen.train import deploy
    import numpy as np
    ids, y, _ = run.part(part)
    return deploy.run(deploy.DeployModel(art), ids, run.all_part(part)), y, np.array([len(s) for s in ids])


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--policy", "policy_name", type=click.Choice(["entropy", "confidence", "budget", "none"]),
              default="confidence", show_default=True, help="Exit policy to calibrate and write into the artifact.")
@click.option("--ceiling", type=float, help="entropy: compute ceiling (fraction of full depth).")
@click.option("--tolerance", type=float, help="entropy: accept this much validation accuracy below the "
              "best for a cheaper threshold [0.005]. confidence: accuracy the early leavers may lose "
              "against the last exit [0.01].")
@click.option("--delta", default=0.05, show_default=True, help="confidence: the bound holds with probability 1-delta.")
@click.option("--budget", type=float, help="budget: mean compute allowed, fraction of full depth (0..1].")
@click.option("--unit", type=click.Choice(["depth", "compute"]), default="depth", show_default=True,
              help="budget: measure the budget in blocks run or in operations (bmacs/64 + flops).")
@click.option("--out", type=click.Path(file_okay=False), help="Artifact directory [RUN_DIR/artifact].")
def calibrate(run_dir, policy_name, ceiling, tolerance, delta, budget, unit, out):
    """Choose an exit policy's thresholds on the validation split and re-export the artifact.

    \b
    entropy     the paper's rule: exit when the fractional entropy reduction between
                consecutive exits falls below tau (best validation accuracy under --ceiling)
    confidence  LAMA-style: per-exit confidence thresholds such that, with probability
                1-delta, sentences leaving early lose at most --tolerance accuracy
                against the last exit (Clopper-Pearson bound, Bonferroni over exits)
    budget      EERO-style: thresholds meeting a mean compute --budget with the best accuracy
    The test split is never looked at. Every calibrated policy is also kept in
    RUN_DIR/policies.json for `beexgen report`."""
    from beexgen.core import artifact
    from beexgen.train import calibrate as cal, policies
    from beexgen.train.export import export_run
    from beexgen.train.trainer import load_run

    if policy_name == "budget" and (budget is None or not 0 < budget <= 1):   # before the slow loading
        raise click.UsageError("--budget must be given as a fraction in (0, 1], e.g. --budget 0.5")
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    art_dir = Path(out) if out else run_dir / "artifact"
    if not (art_dir / "meta.json").exists():
        export_run(run_dir, art_dir, policy={"name": "none", "thresholds": []})   # weights only; re-exported below
    art = artifact.load(art_dir)
    before = dict(art.policy)
    res, y, lengths = _deploy_split(run, art, "val")
    try:
        if policy_name == "entropy":
            pol = cal.calibrate_entropy(art.config, res, y, lengths, ceiling=ceiling,
                                        tolerance=0.005 if tolerance is None else tolerance)
        elif policy_name == "confidence":
            pol = policies.calibrate_confidence(res, y, tolerance=0.01 if tolerance is None else tolerance,
                                                delta=delta)
        elif policy_name == "budget":
            pol = policies.calibrate_budget(res, y, lengths, art.config, budget=budget, unit=unit)
        else:
            pol = {"name": "none", "thresholds": []}
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    new = {k: pol[k] for k in ("name", "thresholds")}
    if policy_name in ("confidence", "budget") and pol["thresholds"] and min(pol["thresholds"]) > 1.0:
        click.echo(f"warning: the {policy_name} calibration disables every early exit (thresholds above 1: "
                   f"no threshold passes on {len(y)} validation sentences); every sentence runs all blocks. "
                   f"Loosen --tolerance/--delta or calibrate on a larger validation split.", err=True)
    if new["name"] == before["name"] and [float(t) for t in new["thresholds"]] == [float(t) for t in before["thresholds"]]:
        click.echo(f"artifact {art_dir} unchanged: its policy already is {new['name']} {new['thresholds']}")
    else:
        art = export_run(run_dir, art_dir, policy=new)
        click.echo(f"default policy of {art.path}: {new['name']} (was {before['name']}); hash {art.hash[:16]}...")
    store = run_dir / "policies.json"
    saved = json.loads(store.read_text()) if store.exists() else {}
    saved[policy_name] = json.loads(json.dumps(pol, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    store.write_text(json.dumps(saved, indent=2) + "\n")
    thr = ", ".join(f"{t:.4g}" for t in pol["thresholds"]) or "-"
    click.echo(f"{policy_name}: thresholds [{thr}]")
    ev = policies.evaluate_policy(res, y, lengths, art.config, pol["name"], pol["thresholds"])
    click.echo("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items() if isinstance(v, float)))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Report directory [RUN_DIR/report].")
@click.option("--compare", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Other runs (e.g. other --exit-weights) whose per-exit accuracy to show beside.")
def report(run_dir, out, compare):
    """Plots and a markdown summary of the exit policies on the test split.

    Accuracy against compute for every policy (the Pareto curve, fixed exits and full
    depth marked), exit-depth histograms, accuracy of each exit and overthinking counts.
    Policies come from RUN_DIR/policies.json (`beexgen calibrate`) and the artifact."""
    from beexgen.core import artifact
    from beexgen.train import report as rep_mod
    from beexgen.train.trainer import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    store = run_dir / "policies.json"
    pols = json.loads(store.read_text()) if store.exists() else {}
    pols.setdefault(art.policy["name"], art.policy)
    pols = {k: v for k, v in pols.items() if k != "none"}
    res_t, y_t, len_t = _deploy_split(run, art, "test")
    res_v, y_v, len_v = _deploy_split(run, art, "val")
    out = Path(out) if out else run_dir / "report"
    md = rep_mod.make_report(res_t, y_t, len_t, art.config, pols, out, res_val=res_v, labels_val=y_v,
                             lengths_val=len_v, title=f"{run.config.dataset} ({run_dir})")
    if compare:
        runs = []
        for d in (run_dir, *map(Path, compare)):
            r = load_run(d)
            a = artifact.load(d / "artifact")
            res, y, _ = _deploy_split(r, a, "test")
            w = r.config.exit_weights or [1.0] * a.config["n_blocks"]
            runs.append((f"{d.name} w={','.join(f'{x:g}' for x in w)}", res, y))
        eff = rep_mod.exit_weights_effect(runs, out)
        with md.open("a") as fh:
            fh.write("\n## Soft-routing loss weights\n\n" + eff["table"] + "\n")
    click.echo(md.read_text())
    click.echo(f"report: {md}")


def _artifact_arg(path: str):
    """An artifact directory, or a run directory holding artifact/."""
    p = Path(path)
    if not (p / "meta.json").exists() and (p / "artifact" / "meta.json").exists():
        p = p / "artifact"
    elif not (p / "meta.json").exists() and (p / "checkpoint.pt").exists():
        raise click.ClickException(f"{p} is a training run without an artifact: export it first "
                                   f"(`beexgen export {p}`)")
    return p


def _build_dir(art_dir: Path, target: str, board: str | None) -> Path:
    return art_dir.parent / "build" / (board or target)


@main.command()
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--target", type=click.Choice(["host", "cortex-m4"]), default="cortex-m4", show_default=True,
              help="host: the x86 emulator of the board (speaks the protocol on stdin/stdout); "
                   "cortex-m4: firmware for --board.")
@click.option("--board", default="nucleo-f411re", show_default=True,
              help="Board for --target cortex-m4: mps2-an386, netduinoplus2 (QEMU) or nucleo-f411re.")
@click.option("--out", type=click.Path(file_okay=False), help="Build directory [ARTIFACT/../build/<board>].")
@click.option("--dsp", is_flag=True, help="Use the Cortex-M4 DSP (ACLE) path of the kernels.")
@click.option("--cmsis", "cmsis_include", type=click.Path(exists=True, file_okay=False),
              help="A CMSIS-Core include directory to take core register definitions from.")
@click.option("--sanitize", is_flag=True, help="host: build with AddressSanitizer + UndefinedBehaviorSanitizer.")
@click.option("--stack", "stack_bytes", type=int, help="Stack bytes the linker reserves (cortex-m4).")
@click.option("--isa", help="host: the x86 kernel path to compile, portable, popcnt, avx2 or avx512 "
                             "(each gives the same replies) [the fastest this machine has].")
def build(artifact_dir, target, board, out, dsp, cmsis_include, sanitize, stack_bytes, isa):
    """Generate the C for an artifact and compile it.

    ARTIFACT_DIR is an artifact (or a run directory holding one). For cortex-m4, prints
    the size table against the board's flash, RAM and stack, and fails when it does not fit."""
    from beexgen.core import artifact
    from beexgen.codegen import build as build_mod

    art_dir = _artifact_arg(artifact_dir)
    try:
        art = artifact.load(art_dir)
    except artifact.ArtifactError as e:
        raise click.ClickException(str(e)) from None
    out_dir = Path(out) if out else _build_dir(art_dir, target, board if target == "cortex-m4" else "host")
    cmd = "beexgen build " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "beexgen build"
    if isa and target != "host":
        raise click.UsageError("--isa is for --target host (the Cortex-M4 build has its own --dsp)")
    from beexgen.codegen import boards, firmware   # before the try: its except clauses name them
    try:
        if target == "host":
            exe = build_mod.build_host(art, out_dir, sanitize=sanitize, command=cmd, isa=isa)
            click.echo(f"host emulator: {exe}")
            click.echo(f"try: beexgen-infer --emulator {exe} --artifact {art_dir}")
            return
        kw = {"stack_bytes": stack_bytes} if stack_bytes else {}
        fw = firmware.build_firmware(art, board, out_dir, dsp=dsp, cmsis_include=cmsis_include,
                                     command=cmd, **kw)
    except boards.UnknownBoardError as e:
        raise click.ClickException(str(e)) from None
    except firmware.FirmwareTooBig as e:
        raise click.ClickException(f"the model does not fit {board}:\n{e}") from None
    except build_mod.BuildError as e:
        raise click.ClickException(str(e)) from None
    click.echo(firmware.format_size_table(fw))
    click.echo(f"firmware: {fw.elf}\n          {fw.bin}\n          {fw.hex}\n          {fw.map}")
    b = boards.get_board(board)
    if b.emulated:
        click.echo(f"next: beexgen emulate {artifact_dir} --board {board}")
    else:
        click.echo(f"next: beexgen flash {artifact_dir} --board {board}; "
                   f"then beexgen-infer --port /dev/ttyACM0 --artifact {art_dir}")


@main.command("export-c")
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory of the library (new or empty).")
@click.option("--prefix", default="bx", show_default=True,
              help="Prefix of every global C name, macro and file (two models with two prefixes link into one image).")
@click.option("--format", "fmt", type=click.Choice(["cmake", "make", "zephyr", "platformio", "arduino"]),
              default="cmake", show_default=True,
              help="Layout: CMakeLists.txt and Makefile always; zephyr adds zephyr/module.yml + Kconfig, "
                   "platformio library.json, arduino library.properties.")
@click.option("--target", default="portable", show_default=True,
              help="Kernel files and core flags: portable (any C11 compiler and core), host (with the x86 paths) "
                   "or a board name (its core's kernels and -mcpu/-mfpu/-mfloat-abi).")
@click.option("--line-max", default=512, show_default=True, help="Longest text in bytes whose every token counts.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
def export_c(artifact_dir, out, prefix, fmt, target, line_max, force):
    """Export the C of an artifact as a library for your own firmware.

    One public header (<prefix>_classifier.h: classify a UTF-8 text, the result struct, the
    exit-policy switch, the tokenizer), the private sources in src/, a CMakeLists.txt and a
    Makefile that read the exactness flags from the generated <prefix>_flags.cmake /
    <prefix>_flags.mk (one definition), and a README naming the artifact hash."""
    from beexgen.codegen import export, project

    art_dir = _artifact_arg(artifact_dir)
    try:
        files = export.export_c(art_dir, out, prefix=prefix, fmt=fmt, target=target, line_max=line_max,
                                force=force)
    except (export.ExportError, project.ProjectError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(files)} files in {out}: #include \"{prefix}_classifier.h\", call {prefix}_classify()")
    click.echo(f"build: cmake -S {out} -B {out}/build && cmake --build {out}/build   (or: make -C {out})")


@main.command()
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--board", default="mps2-an386", show_default=True, help="An emulated board: mps2-an386 or netduinoplus2.")
@click.option("--serial", "serial_kind", type=click.Choice(["tcp", "pty"]), default="tcp", show_default=True)
@click.option("--port-file", type=click.Path(dir_okay=False), help="Also write the --port value to this file.")
@click.option("--rebuild/--no-rebuild", default=True, show_default=True, help="Build the firmware first.")
def emulate(artifact_dir, board, serial_kind, port_file, rebuild):
    """Run the firmware in QEMU and serve its UART on a TCP socket or a pty.

    Prints the --port value for `beexgen-infer`; runs until Ctrl-C. On-device cost is
    counted in instructions (QEMU -icount)."""
    import signal
    import time

    from beexgen.codegen import boards, emulate as emu, firmware

    art_dir = _artifact_arg(artifact_dir)
    try:
        b = boards.get_board(board)
    except boards.UnknownBoardError as e:
        raise click.ClickException(str(e)) from None
    if not b.emulated:
        raise click.ClickException(f"{board} is a real board: use `beexgen flash` (QEMU boards: "
                                   f"{', '.join(n for n in boards.BOARDS if boards.get_board(n).emulated)})")
    out_dir = _build_dir(art_dir, "cortex-m4", board)
    elf = out_dir / "fw.elf"
    if rebuild or not elf.exists():
        try:
            fw = firmware.build_firmware(art_dir, board, out_dir)
        except Exception as e:   # too big, compile error: the message says which
            raise click.ClickException(str(e)) from None
        elf = fw.elf
    try:
        h = emu.start_qemu(elf, board, serial=serial_kind, log=out_dir / "qemu.log")
    except emu.QemuError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"QEMU {board} running {elf}")
    click.echo(f"port: {h.url}")
    click.echo(f"try:  beexgen-infer --port {h.url} --artifact {art_dir}")
    if port_file:
        Path(port_file).write_text(h.url + "\n")
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while h.running and not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        h.stop()
    click.echo("QEMU stopped")


@main.command()
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--board", default="nucleo-f411re", show_default=True)
def flash(artifact_dir, board):
    """Program a real board with openocd, st-flash or pyocd (whichever is installed),
    or say how to copy fw.bin to the board's USB drive."""
    from beexgen.codegen import boards, flash as flash_mod

    art_dir = _artifact_arg(artifact_dir)
    out_dir = _build_dir(art_dir, "cortex-m4", board)
    try:
        boards.get_board(board)
    except boards.UnknownBoardError as e:
        raise click.ClickException(str(e)) from None
    if not (out_dir / "fw.bin").exists():
        raise click.ClickException(f"{out_dir}/fw.bin not found: run `beexgen build {artifact_dir} --board {board}` first")
    sys.exit(flash_mod.flash(board, out_dir))


@main.command("bench")
@click.option("--dataset", "datasets", multiple=True, type=click.Choice(["rotten_tomatoes", "sms_spam", "trec6"]),
              help="Data sets to run [all three].")
@click.option("--out", default="runs/bench", show_default=True, type=click.Path(file_okay=False))
@click.option("--reuse/--retrain", default=True, show_default=True, help="Reuse trained runs found in --out.")
@click.option("--epochs", type=int, help="Override the default epochs (quick looks only).")
@click.option("--qemu-n", type=int, help="Send only this many test sentences to QEMU [all].")
@click.option("--jobs", default=2, show_default=True, help="Trainings run side by side (one torch thread each).")
@click.option("--readme", type=click.Path(dir_okay=False), help="Write the summary table into this README "
              "between its <!-- bench:begin/end --> markers (and docs/bench.json beside it).")
def bench_cmd(datasets, out, reuse, epochs, qemu_n, jobs, readme):
    """The results table: accuracy, compute, size, M4 instructions and speed, side by side.

    Trains (or reuses) on each offline data set the default model (seeds 0, 1, 2), its
    full-precision twin and the paper's architecture (--no-wide), fits the two linear
    baselines (binary bag-of-words LR, TF-IDF uni+bigram LR), builds the host emulator and
    the firmware, runs the test split through PyTorch, the host emulator and QEMU, and
    writes OUT/bench.md and OUT/bench.json (and docs/bench.json with --readme)."""
    from beexgen import bench
    bench.main(datasets or bench.DATASETS, out, reuse=reuse, epochs=epochs, qemu_n=qemu_n, readme=readme,
               jobs=jobs, json_out=str(Path(readme).parent / "docs" / "bench.json") if readme else None)


if __name__ == "__main__":
    sys.exit(main())
