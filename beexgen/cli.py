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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--epochs", default=5, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--vocab-size", default=3000, show_default=True, help="WordPiece vocabulary (lives in flash).")
@click.option("--d-model", default=128, show_default=True)
@click.option("--heads", default=4, show_default=True)
@click.option("--d-ff", default=256, show_default=True)
@click.option("--blocks", default=4, show_default=True, help="Transformer blocks = exits.")
@click.option("--seq-max", default=64, show_default=True, help="Maximum tokens per sentence, [CLS] included.")
@click.option("--no-slfn", is_flag=True, help="Ablation: blocks without the Selective Learn-Forget Network.")
@click.option("--full-precision", is_flag=True, help="Train the full-precision twin (binarization off).")
@click.option("--with-twin", is_flag=True, help="Also train the full-precision twin into RUN/twin.")
@click.option("--exit-weights", help="Soft-routing loss weight of each exit, e.g. 1,1,1,2 [all 1].")
@click.option("--max-train", type=int, help="Use at most this many training sentences.")
@click.option("--text-column", help="Text column of a CSV/TSV/JSONL file.")
@click.option("--label-column", help="Label column of a CSV/TSV/JSONL file.")
@click.option("--dropout", default=0.1, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(dataset, out, seed, epochs, batch_size, lr, vocab_size, d_model, heads, d_ff, blocks, seq_max,
          no_slfn, full_precision, with_twin, exit_weights, max_train, text_column, label_column, dropout, quiet):
    """Train a BEExformer on DATASET, export its artifact and print the eval table.

    DATASET is `rotten_tomatoes`, `sms_spam` or `trec6` (fetched once, offline
    afterwards), a local .csv/.tsv/.jsonl file with text and label columns, or a
    Hugging Face `datasets` name such as `glue/sst2` (needs `pip install beexgen[online]`)."""
    from beexgen.train.trainer import TrainConfig, train as run_train

    out = Path(out or f"runs/{Path(dataset).stem.replace('/', '_')}")
    model = dict(d_model=d_model, n_heads=heads, d_ff=d_ff, n_blocks=blocks, seq_max=seq_max,
                 slfn=not no_slfn, dropout=dropout)
    common = dict(dataset=dataset, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                  vocab_size=vocab_size, exit_weights=_floats(exit_weights), max_train=max_train,
                  text_column=text_column, label_column=label_column, model=model)
    run_train(TrainConfig(out=str(out), full_precision=full_precision, **common), progress=not quiet)
    if with_twin and not full_precision:
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


def _print_eval(run_dir: Path, twin: Path | None = None, as_json: bool = False):
    from beexgen import artifact
    from beexgen.train import evaluate
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids, y, _ = run.part("test")
    rep = evaluate.evaluate(art, ids, y)
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
@click.option("--ceiling", type=float, help="Compute ceiling for the entropy threshold (fraction of full depth).")
@click.option("--tolerance", default=0.0025, show_default=True,
              help="Accept this much validation accuracy below the best for a cheaper threshold.")
def export(run_dir, out, ceiling, tolerance):
    """Freeze a trained run into a deployable artifact (packed bits, calibrated exits)."""
    from beexgen.train.export import export_run
    art = export_run(run_dir, out, ceiling=ceiling, tolerance=tolerance)
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


if __name__ == "__main__":
    sys.exit(main())
