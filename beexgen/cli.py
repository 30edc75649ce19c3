"""The `beexgen` command: train, export, eval, build, emulate, flash, infer."""
from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path

import click

from beexgen import __version__
from beexgen.codegen import boards as _board_registry   # standard library only: the --board help
from beexgen.codegen import layout as _layout           # standard library only: export-c's prefix and formats
from beexgen.core import protocol as _protocol          # pure Python: the default line length


def _floats(s: str | None, rule: tuple | None = None) -> list[float] | None:
    if s is None:
        return None
    try:
        out = [float(x) for x in s.split(",")]
    except ValueError:
        raise click.BadParameter(f"{s!r}: want comma-separated numbers, e.g. 1,1,1,1") from None
    from beexgen.core.schema import in_range, range_text
    for x in out:
        if not in_range(x, rule or (-math.inf, math.inf)):
            raise click.BadParameter(f"{x:g} in {s!r}: each must be a finite number"
                                     + (f" in {range_text(rule)}" if rule else ""))
    return out


class Number(click.ParamType):
    """An int or a float within a range rule (beexgen/core/schema.py `in_range`): a value
    that is not a number of the kind, nan, inf, or outside the range is refused when the
    command line is parsed, before any file is read or any training step runs."""

    def __init__(self, kind: type, rule: tuple | None = None):
        from beexgen.core.schema import range_text
        self.kind, self.rule = kind, rule
        self.name = ("integer" if kind is int else "number") + (f" in {range_text(rule)}" if rule else "")

    def convert(self, value, param, ctx):
        from beexgen.core.schema import in_range, range_text
        if isinstance(value, self.kind) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = self.kind(str(value).strip())
            except (ValueError, OverflowError):
                self.fail(f"{str(value)[:40]!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if not in_range(v, self.rule or (-math.inf, math.inf)):
            want = f"in {range_text(self.rule)}" if self.rule else "finite"
            self.fail(f"{str(value)[:40]} is out of range: want a finite {self.name.split(' ')[0]} {want}",
                      param, ctx)
        return v


def _multiple(v, k: int):
    if v is not None and v % k:
        raise click.BadParameter(f"{v} is not a multiple of {k}")
    return v


PREFIX_MAX = 32      # characters of an export-c --prefix (it starts every C name and file name)


def _prefix(v: str) -> str:
    """export-c --prefix: a lower-case C identifier (codegen/project.py PREFIX), not too long."""
    from beexgen.codegen.project import PREFIX
    if not PREFIX.fullmatch(v or "") or len(v) > PREFIX_MAX:
        raise click.BadParameter(f"prefix {v[:40]!r}: want a lower-case C identifier of at most {PREFIX_MAX} characters "
                                 "such as 'sent' or 'spam2' (letters, digits and single '_', a letter first)")
    return v


def _line_max(v: int) -> int:
    from beexgen.codegen.project import LINE_MAX_MAX, LINE_MAX_MIN
    if not LINE_MAX_MIN <= v <= LINE_MAX_MAX:
        raise click.BadParameter(f"{v} is out of range: want an integer in [{LINE_MAX_MIN}, {LINE_MAX_MAX}]")
    return v


def _board(ctx, param, value):
    """--board: a board of the registry or a board file (my-board.toml), checked when the
    command line is parsed; 'none' (train's: skip the RAM check) passes."""
    if value is None or value == "none" and ctx.command.name == "train":
        return value
    if ctx.get_parameter_source(param.name) == click.core.ParameterSource.DEFAULT:
        return value            # the default is checked where it is used (a host build never needs it)
    try:
        _board_registry.get_board(value)
    except (_board_registry.UnknownBoardError, _board_registry.BoardFileError) as e:
        raise click.BadParameter(str(e)) from None
    return value


def _nonempty(ctx, param, value):
    """A text option given as '' is refused (its default is what leaving it out gives)."""
    if isinstance(value, str) and not value.strip():
        raise click.BadParameter("empty value")
    return value


def _known_errors() -> tuple:
    """Errors that mean bad input (a file, a name, a size), not a bug: one line, no traceback."""
    from beexgen.core.policy import CalibrationError    # pure Python: also on a host-only install
    from beexgen.core.outdir import OutputDirError
    from beexgen.core.validate import ArtifactError
    out = [ArtifactError, CalibrationError, OutputDirError, _board_registry.UnknownBoardError,
           _board_registry.BoardFileError, FileNotFoundError, NotADirectoryError, IsADirectoryError]
    try:
        from beexgen.train.data import DataError
        out.append(DataError)
        from beexgen.codegen import build, emulate, export, firmware, project
        out += [build.BuildError, firmware.FirmwareTooBig, emulate.QemuError,
                export.ExportError, project.ProjectError]
    except ImportError:
        pass
    return tuple(out)


# The extra a command needs (pyproject.toml); every other command needs beexgen[train].
# A module only one extra brings names that extra whatever the command.
_EXTRA = {"build": "build", "export-c": "build", "emulate": "build", "flash": "build", "bench": "bench"}
_EXTRA_OF_MODULE = {"transformers": "teacher", "sklearn": "bench", "unicorn": "bench"}


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as e:     # e.g. `beexgen train` on a host-only install
            if (e.name or "").startswith("beexgen"):
                raise
            cmd = ctx.invoked_subcommand or ""
            extra = _EXTRA_OF_MODULE.get(e.name, _EXTRA.get(cmd, "train"))
            raise click.ClickException(f"beexgen {cmd} needs {e.name}, which is not installed: "
                                       f"pip install 'beexgen[{extra}]'") from None
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
      beexgen build runs/rt/artifact --target cortex-m --board nucleo-f411re
      beexgen emulate runs/rt/artifact --board mps2-an386
    """


def _settings_options(*classes):
    """click options generated from the settings dataclasses (train/config.py): name,
    type, default and help of each come from its field, so a setting is defined once."""
    import dataclasses
    import typing

    from beexgen.train import config

    decorators = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in config.cli_fields(cls):
            m, t = f.metadata, hints[f.name]
            name = "--" + (m.get("flag") or f.name).replace("_", "-")
            base = [a for a in typing.get_args(t) if a is not type(None)] or [t]
            kind = base[0]
            help_ = m["help"] + (f" [{m['show']}]" if m.get("show") else "")
            kw = dict(help=help_, show_default=m.get("show") is None and f.default is not None)
            if kind is bool:
                if f.default is False:
                    decorators.append(click.option(name, f.name, is_flag=True, default=False, help=help_))
                else:
                    decorators.append(click.option(f"{name}/--no-{name[2:]}", f.name, default=f.default, **kw))
            elif typing.get_origin(kind) is list:
                decorators.append(click.option(name, f.name, default=None,
                                               callback=lambda c, p, v, r=m.get("range"): _floats(v, r),
                                               **{**kw, "show_default": False}))
            else:
                dflt = None if f.default is dataclasses.MISSING else f.default
                cb = None
                if m.get("choices"):
                    typ = click.Choice(m["choices"])
                elif kind in (int, float):
                    typ = Number(kind, m.get("range"))
                elif m.get("path"):
                    typ = click.Path(exists=m["path"] != "new", dir_okay=m["path"] != "file", file_okay=True)
                    cb = _nonempty
                else:
                    typ, cb = kind, _nonempty if kind is str else None
                decorators.append(click.option(name, f.name, type=typ, default=dflt, callback=cb, **kw))

    def apply(fn):
        for d in reversed(decorators):
            fn = d(fn)
        return fn
    return apply


def _train_command(fn):
    """`beexgen train`, or where torch and the settings cannot be imported (a host-only
    install), a command that says which extra to install."""
    try:
        from beexgen.train.config import ModelConfig, TrainConfig
    except ModuleNotFoundError as e:
        missing_name = e.name

        def missing(args):       # the group turns this into the install-the-extra message
            raise ModuleNotFoundError(f"No module named {missing_name!r}", name=missing_name)
        return main.command("train", help=fn.__doc__, context_settings={"ignore_unknown_options": True,
                                                                         "allow_extra_args": True})(
            click.argument("args", nargs=-1)(missing))
    return main.command("train")(_settings_options(TrainConfig, ModelConfig)(fn))


@click.argument("dataset")
@click.option("--out", type=click.Path(file_okay=False), callback=_nonempty, help="Run directory [runs/<dataset>].")
@click.option("--with-twin", is_flag=True, help="Also train the full-precision twin into RUN/twin.")
@click.option("--board", callback=_board, default=_board_registry.DEFAULT_BOARD, show_default=True,
              help="Check before training that the model's RAM (seq_max tokens) and flash fit this board, "
                   "and size the wide exit's word tables to its flash (--size-budget overrides) "
                   f"({_board_registry.board_help()}); 'none' skips.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(dataset, out, with_twin, board, quiet, **settings):
    """Train a BEExformer on DATASET, export its artifact and print the eval table.

    DATASET is `rotten_tomatoes`, `sms_spam` or `trec6` (fetched once, offline
    afterwards), a local .csv/.tsv/.jsonl file with text and label columns, or a
    Hugging Face `datasets` name such as `glue/sst2` (needs `pip install beexgen[online]`).
    Every setting below is a field of train/config.py (TrainConfig, ModelConfig)."""
    from beexgen.train import config
    from beexgen.train.trainer import train as run_train, train_twin

    out = Path(out or f"runs/{Path(dataset).stem.replace('/', '_')}")
    model = config.model_overrides(settings)
    rest = {k: v for k, v in settings.items() if k not in {f.name for f in config.cli_fields(config.ModelConfig)}}
    try:
        cfg = config.TrainConfig(dataset=dataset, out=str(out), model=model, **rest)
        mcfg = config.ModelConfig(vocab_size=cfg.vocab_size, n_classes=2, **{**model, "bigram_buckets": 0})
        whole = config.ModelConfig(vocab_size=cfg.vocab_size, n_classes=2, **model)   # every model rule
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not cfg.full_precision:          # what the export will check, checked before training
        from beexgen.core.validate import ArtifactError, check_config
        try:
            check_config(whole.to_dict(), "the model settings")
        except ArtifactError as e:
            raise click.UsageError(str(e).replace("meta.json config.", "")) from None
    if board != "none":
        budget = _ram_check(mcfg, board)
        if cfg.size_budget is None:
            cfg.size_budget = budget
    progress = not quiet
    run_train(cfg, progress=progress)
    if with_twin and not cfg.full_precision:
        click.echo("binarized model done; now its full-precision twin (--with-twin), same split and tokenizer",
                   err=True)
        train_twin(cfg, progress=progress)
    if cfg.full_precision:
        click.echo(f"full-precision run in {out} (not exportable: it is the reference twin)")
        return
    from beexgen.train.export import export_run
    art = export_run(out)
    click.echo(f"artifact: {art.path} (hash {art.hash[:16]}...)")
    twin = out / config.TWIN_DIR
    _print_eval(out, twin=twin if (twin / "checkpoint.pt").exists() else None)


train = _train_command(train)


def _ram_check(mcfg, board: str) -> int | None:
    """Refuse, before any training, a seq_max (or width) whose activations do not fit
    the board's RAM, or blocks that leave no flash; print what the model will need
    (codegen/fit.py measures it). Returns the model's flash budget on the board."""
    from beexgen.codegen import fit
    from beexgen.codegen.build import BuildError
    from beexgen.codegen.firmware import FirmwareTooBig, format_size_table
    from beexgen.train.tokenizer import build_empty

    cfg = mcfg.to_dict()
    vocab = fit.placeholder_vocab(cfg["vocab_size"])
    try:
        budget, b = fit.board_budget(cfg, build_empty(vocab).to_str(), sum(len(p) + 1 for p in vocab), board)
    except FirmwareTooBig as e:
        raise click.ClickException(
            f"--seq-max {cfg['seq_max']} with d_model {cfg['d_model']} needs {e.build.ram_used / 1024:.1f} KB "
            f"of RAM on {board} ({e.build.ram_total / 1024:.0f} KB there): lower --seq-max or --d-model, or "
            f"pick another --board (checked before training)\n{format_size_table(e.build)}") from None
    except fit.BudgetError as e:
        raise click.ClickException(str(e)) from None
    except BuildError as e:
        click.echo(f"RAM check for {board} skipped: {e}", err=True)
        return None
    click.echo(f"RAM on {board}: {b.ram_used / 1024:.1f} of {b.ram_total / 1024:.0f} KB "
               f"(seq_max {cfg['seq_max']}, d_model {cfg['d_model']}, stack and line buffers included); "
               f"flash budget of the model {budget / 1024:.1f} KB of {b.flash_total / 1024:.0f} KB", err=True)
    return budget


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


def _policy_options(fn):
    """--policy and the calibration options, one set for `export` and `calibrate`: the
    policies and each option's default come from beexgen/core/policy.py POLICY_OPTIONS."""
    from beexgen.core.policy import DEFAULT_POLICY, OPTION_RANGES, POLICY_OPTIONS   # pure Python

    def num(option: str) -> Number:
        return Number(float, OPTION_RANGES[option])

    def dflt(option: str) -> str:
        d = [f"{p} {o[option]}" for p, o in POLICY_OPTIONS.items() if o.get(option) is not None]
        return f" [{'; '.join(d)}]" if d else ""
    opts = [
        click.option("--policy", "policy_name", type=click.Choice(list(POLICY_OPTIONS)),
                     default=DEFAULT_POLICY, show_default=True, help="Exit policy to calibrate on the validation split."),
        click.option("--tolerance", type=num("tolerance"), help="Accuracy the early leavers may give up against the last exit "
                     "(confidence: bounded with probability 1-delta; the others: on the validation split)."
                     + dflt("tolerance")),
        click.option("--delta", type=num("delta"), help="confidence: the bound holds with probability 1-delta." + dflt("delta")),
        click.option("--ceiling", type=num("ceiling"), help="entropy: compute ceiling (fraction of full depth)." + dflt("ceiling")),
        click.option("--budget", type=num("budget"), help="budget: mean compute allowed, fraction of full depth (0..1]."),
        click.option("--unit", type=click.Choice(["depth", "compute"]),
                     help="budget: the budget in blocks run or in operations (bmacs/64 + flops)." + dflt("unit")),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), callback=_nonempty, help="Artifact directory [RUN_DIR/artifact].")
@_policy_options
def export(run_dir, out, policy_name, **options):
    """Freeze a trained run into a deployable artifact (packed bits, calibrated exits)."""
    from beexgen.train.export import export_run
    art = export_run(run_dir, out, policy_name=policy_name, **options)
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
    from beexgen.train.config import TWIN_DIR
    if twin is None and (run_dir / TWIN_DIR / "checkpoint.pt").exists():
        twin = run_dir / TWIN_DIR
    _print_eval(run_dir, Path(twin) if twin else None, as_json)


def _deploy_split(run, art, part):
    from beexgen.train import deploy
    import numpy as np
    ids, y, _ = run.part(part)
    return deploy.run(deploy.DeployModel(art), ids, run.all_part(part)), y, np.array([len(s) for s in ids])


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@_policy_options
@click.option("--out", type=click.Path(file_okay=False), callback=_nonempty, help="Artifact directory [RUN_DIR/artifact].")
def calibrate(run_dir, policy_name, out, **options):
    """Choose an exit policy's thresholds on the validation split and re-export the artifact.

    The test split is never looked at. Every calibrated policy is also kept in
    RUN_DIR/policies.json for `beexgen report`. The policies (beexgen/core/policy.py):"""
    from beexgen.core import artifact
    from beexgen.train import policies
    from beexgen.train.export import export_run
    from beexgen.train.trainer import load_run

    policies.calibration_options(policy_name, **options)      # bad options: refused before the slow loading
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    art_dir = Path(out) if out else run_dir / "artifact"
    if not (art_dir / "meta.json").exists():
        export_run(run_dir, art_dir, policy={"name": "none", "thresholds": []})   # weights only; re-exported below
    art = artifact.load(art_dir)
    before = dict(art.policy)
    res, y, lengths = _deploy_split(run, art, "val")
    pol = policies.calibrate(policy_name, res, y, lengths, art.config, **options)
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


def _policy_summary() -> str:
    import textwrap
    from beexgen.core.policy import SUMMARY
    return "\n\n\b\n" + "\n".join(textwrap.fill(text, 88, initial_indent=f"{name:<12}", subsequent_indent=" " * 12)
                                   for name, text in SUMMARY.items())


calibrate.help = inspect.cleandoc(calibrate.help or "") + _policy_summary()


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), callback=_nonempty, help="Report directory [RUN_DIR/report].")
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
    from beexgen.train.config import TWIN_DIR
    from beexgen.train.evaluate import twin_exit_accuracy
    twin = run_dir / TWIN_DIR
    twin_acc = twin_exit_accuracy(twin) if (twin / "checkpoint.pt").exists() else None
    from beexgen.train.policies import Split
    md = rep_mod.make_report(Split.of(res_t, y_t, len_t), art.config, pols, out, val=Split.of(res_v, y_v, len_v),
                             title=f"{run.config.dataset} ({run_dir})", twin_acc=twin_acc)
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
    return art_dir.parent / "build" / (_board_registry.board_name(board) if board else target)


BUILD_TARGETS = ("host", "cortex-m")
TARGET_ALIASES = {"cortex-m4": "cortex-m"}      # the older name, accepted and never shown


def _build_target(ctx, param, value):
    value = TARGET_ALIASES.get(value, value)
    if value not in BUILD_TARGETS:
        raise click.BadParameter(f"{value!r}: want {' or '.join(BUILD_TARGETS)}")
    return value


@main.command()
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--target", default="cortex-m", show_default=True, metavar="[host|cortex-m]", callback=_build_target,
              help="host: the x86 emulator of the board (speaks the protocol on stdin/stdout); "
                   "cortex-m: firmware for --board, whatever its core.")
@click.option("--board", callback=_board, default=_board_registry.DEFAULT_BOARD, show_default=True,
              help="Board for --target cortex-m (the board names its core; "
                   f"codegen/boards/<board>.toml): {_board_registry.board_help()}.")
@click.option("--out", type=click.Path(file_okay=False), callback=_nonempty, help="Build directory [ARTIFACT/../build/<board>].")
@click.option("--dsp", is_flag=True, help="Use the DSP-extension path of the kernels (cores with DSP: M4, M7, M33, M55).")
@click.option("--cmsis", "cmsis_include", type=click.Path(exists=True, file_okay=False),
              help="A CMSIS-Core include directory to take core register definitions from.")
@click.option("--sanitize", is_flag=True, help="host: build with AddressSanitizer + UndefinedBehaviorSanitizer.")
@click.option("--stack", "stack_bytes", type=Number(int, (1024, 1 << 24)), callback=lambda c, p, v: _multiple(v, 8),
              help="Stack bytes the linker reserves (cortex-m), a multiple of 8 [the board's].")
@click.option("--isa", callback=_nonempty, help="host: the x86 kernel path to compile, portable, popcnt, avx2 or avx512 "
                             "(each gives the same replies) [the fastest this machine has].")
def build(artifact_dir, target, board, out, dsp, cmsis_include, sanitize, stack_bytes, isa):
    """Generate the C for an artifact and compile it.

    ARTIFACT_DIR is an artifact (or a run directory holding one). For cortex-m, prints
    the size table against the board's flash, RAM and stack, and fails when it does not fit."""
    from beexgen.core import artifact
    from beexgen.codegen import build as build_mod

    art_dir = _artifact_arg(artifact_dir)
    art = artifact.load(art_dir)
    out_dir = Path(out) if out else _build_dir(art_dir, target, "host" if target == "host" else board)
    cmd = "beexgen build " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "beexgen build"
    if isa and target != "host":
        raise click.UsageError("--isa is for --target host (a Cortex-M build has its own --dsp)")
    from beexgen.codegen import boards, firmware
    from beexgen.core import outdir
    outdir.prepare(out_dir, command="beexgen build", reuse=True)     # the --out rule (core/outdir.py)
    if target == "host":
        exe = build_mod.build_host(art, out_dir, sanitize=sanitize, command=cmd, isa=isa)
        click.echo(f"host emulator: {exe}")
        click.echo(f"try: beexgen-infer --emulator {exe} --artifact {art_dir}")
        return
    kw = {"stack_bytes": stack_bytes} if stack_bytes else {}
    fw = firmware.build_firmware(art, board, out_dir, dsp=dsp, cmsis_include=cmsis_include, command=cmd, **kw)
    click.echo(firmware.format_size_table(fw))
    click.echo(f"firmware: {fw.elf}\n          {fw.bin}\n          {fw.hex}\n          {fw.map}")
    from beexgen.codegen import latency
    click.echo(latency.bound_message(art, board))
    b = boards.get_board(board)
    if b.emulated:
        click.echo(f"next: beexgen emulate {artifact_dir} --board {board}")
    else:
        click.echo(f"next: beexgen flash {artifact_dir} --board {board}; "
                   f"then beexgen-infer --port /dev/ttyACM0 --artifact {art_dir}")


@main.command("export-c")
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), callback=_nonempty, help="Directory of the library (new or empty).")
@click.option("--prefix", default=_layout.DEFAULT_PREFIX, show_default=True, callback=lambda c, p, v: _prefix(v),
              help="Prefix of every global C name, macro and file (two models with two prefixes link into one image).")
@click.option("--format", "fmt", type=click.Choice(_layout.FORMATS),
              default=_layout.FORMATS[0], show_default=True,
              help="Layout: CMakeLists.txt and Makefile always; zephyr adds zephyr/module.yml + Kconfig, "
                   "platformio library.json, arduino library.properties.")
@click.option("--target", default="portable", show_default=True,
              help="Kernel files and core flags: portable (any C11 compiler and core), host (with the x86 paths) "
                   "or a board name (its core's kernels and -mcpu/-mfpu/-mfloat-abi).")
@click.option("--line-max", default=_protocol.LINE_MAX, show_default=True, type=Number(int),
              callback=lambda c, p, v: _line_max(v), help="Longest command line in bytes (BX_LINE_MAX); texts of any length are classified.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out that beexgen created (marked by a "
              ".beexgen-output file); never the current directory, a run, an artifact or another directory.")
def export_c(artifact_dir, out, prefix, fmt, target, line_max, force):
    """Export the C of an artifact as a library for your own firmware.

    One public header (<prefix>_classifier.h, C and C++: classify a UTF-8 text, the result
    struct, labels, the exit-policy switch, the self-test), one C file to compile
    (src/<prefix>_classifier.c, whose only global symbols are that API), a CMakeLists.txt
    and a Makefile, a toolchain file for arm-none-eabi, and a README (integration, the
    self-test, exactness). Prints the library's flash and RAM. The sources stay exact
    whatever the build's flags; golden sentences for the self-test come from the training
    run's test split when the artifact sits in its run directory."""
    from beexgen.codegen import export

    art_dir = _artifact_arg(artifact_dir)
    files = export.export_c(art_dir, out, prefix=prefix, fmt=fmt, target=target, line_max=line_max, force=force,
                            report=click.echo)
    click.echo(f"{len(files)} files in {out}: #include \"{prefix}_classifier.h\", call {prefix}_classify()")
    click.echo(f"build: cmake -S {out} -B {out}/build && cmake --build {out}/build   (or: make -C {out})")


@main.command()
@click.argument("artifact_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--board", callback=_board, default="mps2-an386", show_default=True,
              help=f"An emulated board: {_board_registry.board_help(emulated_only=True)}.")
@click.option("--serial", "serial_kind", type=click.Choice(["tcp", "pty"]), default="tcp", show_default=True)
@click.option("--port-file", type=click.Path(dir_okay=False), callback=_nonempty, help="Also write the --port value to this file.")
@click.option("--rebuild/--no-rebuild", default=True, show_default=True, help="Build the firmware first.")
def emulate(artifact_dir, board, serial_kind, port_file, rebuild):
    """Run the firmware in QEMU and serve its UART on a TCP socket or a pty.

    Prints the --port value for `beexgen-infer`; runs until Ctrl-C. On-device cost is
    counted in instructions (QEMU -icount)."""
    import signal
    import time

    from beexgen.codegen import boards, emulate as emu, firmware

    art_dir = _artifact_arg(artifact_dir)
    b = boards.get_board(board)
    if not b.emulated:
        raise click.ClickException(f"{board} is a real board: use `beexgen flash` (QEMU boards: "
                                   f"{', '.join(n for n in boards.BOARDS if boards.get_board(n).emulated)})")
    out_dir = _build_dir(art_dir, "cortex-m", board)
    elf = out_dir / "fw.elf"
    if rebuild or not elf.exists():
        from beexgen.core import outdir
        outdir.prepare(out_dir, command="beexgen emulate", reuse=True)
        elf = firmware.build_firmware(art_dir, board, out_dir).elf
    h = emu.start_qemu(elf, board, serial=serial_kind, log=out_dir / "qemu.log")
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
@click.option("--board", callback=_board, default=_board_registry.DEFAULT_BOARD, show_default=True,
              help=f"A real board: {', '.join(n for n, b in sorted(_board_registry.BOARDS.items()) if not b.emulated)}.")
def flash(artifact_dir, board):
    """Program a real board with openocd, st-flash or pyocd (whichever is installed),
    or say how to copy fw.bin to the board's USB drive."""
    from beexgen.codegen import boards, flash as flash_mod

    art_dir = _artifact_arg(artifact_dir)
    out_dir = _build_dir(art_dir, "cortex-m", board)
    boards.get_board(board)
    if not (out_dir / "fw.bin").exists():
        raise click.ClickException(f"{out_dir}/fw.bin not found: run `beexgen build {artifact_dir} --board {board}` first")
    sys.exit(flash_mod.flash(board, out_dir))


@main.command()
@click.argument("names", nargs=-1)
def fetch(names):
    """Download the offline data sets once into the cache (checksums verified).

    NAMES are some of rotten_tomatoes, sms_spam and trec6 [all three]; afterwards
    `beexgen train NAME` runs offline."""
    from beexgen.train import data

    for n in names or data.OFFLINE:
        if n not in data.OFFLINE:
            raise click.BadParameter(f"unknown data set {n!r} (offline sets: {', '.join(data.OFFLINE)})",
                                     param_hint="NAMES")
        click.echo(f"{n}: {data.fetch(n)}")


@main.command("boards")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False),
              help="Write the boards table into this README between its <!-- boards:begin/end --> markers.")
def boards_cmd(readme):
    """List the boards (codegen/boards/*.toml): core, float ABI, flash, RAM, QEMU machine.

    A new board of a known family is one more file there, a board of a new vendor that
    file and its driver C files (docs/INTERNALS.md). Broken board files are listed as
    warnings; the other boards work."""
    if readme:
        changed = _board_registry.write_readme(readme)
        click.echo(f"{readme}: boards table {'updated' if changed else 'unchanged'}")
        return
    click.echo(_board_registry.board_table())


_EXTRA["tune"] = _EXTRA_OF_MODULE["optuna"] = "tune"       # beexgen tune needs beexgen[tune]


@main.command("tune")
@click.argument("dataset")
@click.option("--board", callback=_board, default=_board_registry.DEFAULT_BOARD, show_default=True,
              help=f"The board the model must fit and run on: {_board_registry.board_help()}.")
@click.option("--max-ms", type=Number(float, (0.0, 1e6, "open_lo")), help="Latency budget in milliseconds per sentence on the board "
              "(M4 instructions from QEMU x the README's cycles per instruction / the board's clock) [none].")
@click.option("--latency", type=click.Choice(["mean", "p95"]), default="mean", show_default=True,
              help="Which latency --max-ms bounds and the search minimises: the mean or the 95th "
                   "percentile over the validation sentences.")
@click.option("--trials", type=Number(int, (1, 10**6)), help="Finished trials the study should hold (all workers "
              "together) [20 unless --minutes].")
@click.option("--minutes", type=Number(float, (0.0, 1e6, "open_lo")), help="Start no trial after this many minutes.")
@click.option("--study", "study_name", help="Study name in the storage [tune-DATASET-BOARD].")
@click.option("--storage", help="Optuna storage URL shared by several machines, e.g. "
              "postgresql://user:pw@host/db [sqlite:///OUT/study.db].")
@click.option("--jobs", type=Number(int, (1, 64)), default=1, show_default=True,
              help="Trials run side by side on this machine (processes, one torch thread each).")
@click.option("--space", type=click.Path(exists=True, dir_okay=False),
              help="Search space TOML (format: beexgen/tune_space.toml) [the shipped one].")
@click.option("--pick", "how", default="accuracy", show_default=True,
              help="The model exported to OUT/best: accuracy (the most accurate within --max-ms; among those "
                   "within its 95 % interval, the fastest), flash (... the smallest) or a trial number.")
@click.option("--seed", type=Number(int, (0, 2**32 - 1)), help="Seed of the sampler (the trials' own seeds come from the space).")
@click.option("--out", required=True, type=click.Path(file_okay=False), callback=_nonempty,
              help="Directory of the study, the trials, report.md and best/ (an existing one resumes).")
@click.option("--quiet", is_flag=True, help="No line per trial.")
def tune_cmd(dataset, board, max_ms, latency, trials, minutes, study_name, storage, jobs, space, how, seed, out,
             quiet):
    """Search the most accurate model that fits BOARD and a latency budget (Optuna).

    Each trial samples settings from the search space (beexgen/tune_space.toml or
    --space), is pruned before training if its model cannot fit the board's RAM or
    flash or is slower than --max-ms even leaving at its first exit, trains (pruned early when its validation accuracy falls behind), exports with
    its calibrated exit policy, builds the firmware for the board, and measures the
    validation accuracy and the M4 instructions of every validation sentence in QEMU.
    The test split is never read. Resumable: run the same command again after Ctrl-C or a
    crash. Writes OUT/report.md (Pareto front, importances, trials) and OUT/best/, a run
    directory for `beexgen build`/`flash`."""
    if how not in ("accuracy", "flash") and not how.isdigit():
        raise click.BadParameter(f"{how!r}: accuracy, flash or a trial number", param_hint="--pick")
    if trials and minutes:
        raise click.UsageError("--trials or --minutes, not both")
    from beexgen import tune as tune_mod
    out_p = Path(out)
    opt = tune_mod.Options(dataset=dataset, board=board, out=str(out_p),
                           storage=tune_mod.storage_url(storage, out_p.resolve()),
                           study=study_name or f"tune-{Path(dataset).stem}-{board}",
                           trials=trials or (None if minutes else tune_mod.DEFAULT_TRIALS), minutes=minutes,
                           max_ms=max_ms, space=space, latency=latency, seed=seed)
    try:
        res = tune_mod.tune(opt, jobs=jobs, how=how, quiet=quiet)
    except tune_mod.TuneError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted: the finished trials are kept in {opt.storage}; "
                                   "run the same command again to resume") from None
    click.echo(f"report: {res['report']}")
    c = res["chosen"]
    if c is None and how.isdigit():
        raise click.ClickException(f"--pick {how}: trial {how} is not a measured trial that fits {board}"
                                   + (f" within {max_ms:g} ms" if max_ms else "") + f" (see {res['report']})")
    if c is None:
        raise click.ClickException(f"no measured trial fits {board}" + (f" within {max_ms:g} ms" if max_ms else "")
                                   + f": see {res['report']}; try more trials, a larger --max-ms or --space")
    a = c.user_attrs
    click.echo(f"chosen: trial #{c.number}, validation accuracy {a['accuracy']:.4f} "
               f"[{a['accuracy_low']:.4f}, {a['accuracy_high']:.4f}], {a['ms_mean']:.2f} ms mean "
               f"({a['ms_p95']:.2f} p95), flash {a['flash']:,} B, RAM {a['ram']:,} B")
    click.echo(f"run directory: {res['best']}\nnext: beexgen build {res['best']}/artifact --board {board}")


@main.command("bench")
@click.option("--dataset", "datasets", multiple=True, help="An offline data set to run (repeat for more) [all of them].")
@click.option("--out", default="runs/bench", show_default=True, type=click.Path(file_okay=False), callback=_nonempty,
              help="Directory of the runs, bench.md and bench.json.")
@click.option("--reuse/--retrain", default=True, show_default=True, help="Reuse trained runs found in --out.")
@click.option("--epochs", type=Number(int, (1, 100_000)), help="Override the default epochs (quick looks only).")
@click.option("--qemu-n", type=Number(int, (1, 10**9)), help="Send only this many test sentences to QEMU [all].")
@click.option("--jobs", default=2, show_default=True, type=Number(int, (1, 64)),
              help="Trainings run side by side (one torch thread each).")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False), help="Write the summary table into this README "
              "between its <!-- bench:begin/end --> markers (and docs/bench.json beside it).")
def bench_cmd(datasets, out, reuse, epochs, qemu_n, jobs, readme):
    """The results table: accuracy, compute, size, M4 instructions and speed, side by side.

    Trains (or reuses) on each offline data set the default model (seeds 0, 1, 2), its
    full-precision twin and the paper's architecture (--no-wide), fits the two linear
    baselines (binary bag-of-words LR, TF-IDF uni+bigram LR), builds the host emulator and
    the firmware, runs the test split through PyTorch, the host emulator and QEMU, and
    writes OUT/bench.md and OUT/bench.json (and docs/bench.json with --readme)."""
    import importlib.util
    missing = [m for m in ("torch", "sklearn", "unicorn") if importlib.util.find_spec(m) is None]
    if missing:                       # before anything trains: the baselines need scikit-learn
        raise click.ClickException(f"beexgen bench needs {', '.join(missing)}, not installed: "
                                   "pip install 'beexgen[bench]'")
    from beexgen import bench
    from beexgen.train.data import OFFLINE
    for d in datasets:
        if d not in OFFLINE:
            raise click.BadParameter(f"{d!r} is not an offline data set ({', '.join(OFFLINE)})", param_hint="--dataset")
    bench.main(list(datasets or OFFLINE), out, reuse=reuse, epochs=epochs, qemu_n=qemu_n, readme=readme,
               jobs=jobs, json_out=str(Path(readme).parent / "docs" / "bench.json") if readme else None)


if __name__ == "__main__":
    sys.exit(main())
