"""The training and model settings: each defined once, here, with its help text.

`beexgen train`'s options are generated from these fields (beexgen/cli.py,
`click_options`): a field's `help` metadata is its option's help, its default the
option's default, its type the option's type. A field marked `cli=False` is set by the
program (the data decides n_classes), or spelled another way on the command line
(`--out`, the DATASET argument). `flag` renames an option (n_heads -> --heads).

This module imports neither torch nor the trainer, so `beexgen --help` stays quick and
the settings can be read where torch is not installed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from beexgen.core import cost
from beexgen.core import wide as wide_rules

# Blocks by default: the paper's stack of 4 without the wide exit; beside a wide exit
# the 256 KB budget buys bigram buckets instead of blocks (docs/ABLATIONS.md).
DEFAULT_BLOCKS = {False: 4, True: 2}

DEVICES = ("auto", "cpu", "cuda", "mps")
TWIN_DIR = "twin"           # RUN/twin: the full-precision twin of run RUN (--with-twin, the bench)


def setting(default=dataclasses.MISSING, help: str = "", *, flag: str | None = None, cli: bool = True,
            default_factory=dataclasses.MISSING, show: str | None = None, choices: tuple | None = None):
    """A dataclass field with the metadata its command-line option is generated from.
    show: the default as the help shows it, when the value is computed (e.g. None);
    choices: the values allowed (the option is a click.Choice)."""
    meta = {"help": help, "flag": flag, "cli": cli, "show": show, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    vocab_size: int = setting(help="Tokenizer vocabulary (from the tokenizer).", cli=False)
    n_classes: int = setting(help="Classes (from the data).", cli=False)
    d_model: int = setting(128, "Width of the residual stream.")
    n_heads: int = setting(4, "Attention heads (d_model must be a multiple).", flag="heads")
    d_ff: int = setting(256, "Feed-forward hidden width.")
    n_blocks: int | None = setting(None, "Transformer blocks, each with an exit head.", flag="blocks",
                                   show="2 with the wide exit, 4 without")
    seq_max: int = setting(64, "Maximum tokens per sentence the blocks see, [CLS] included "
                               "(longer texts: head + tail; the wide exit sees every id).")
    binary: bool = setting(True, "Binarized weights and activations (False: the twin).", cli=False)
    slfn: bool = setting(True, "Selective Learn-Forget Network in every block (--no-slfn: the ablation).")
    dropout: float = setting(0.1, "Training-only dropout: embeddings, block branches.")
    wide: bool = setting(True, "Wide exit 0, a bag of ids + hashed bigrams (--no-wide: the paper's model).")
    bigram_buckets: int | None = setting(None, "Hashed bigrams of WordPiece ids in the wide exit (a power of two, "
                                               "0: none).", show="0")
    wide_ids: bool | None = setting(None, "The wide exit's bag of WordPiece ids (--no-wide-ids: words only).",
                                    show="chosen on validation by the pre-fit")
    word_buckets: int | None = setting(None, "Hashed words of the wide exit (0: none).",
                                       show="filled from --size-budget, kept if validation prefers")
    pair_buckets: int | None = setting(None, "Hashed word bigrams of the wide exit, a table of their own "
                                             "(0: none).",
                                       show="twice --word-buckets, kept if validation prefers")

    def __post_init__(self):
        if self.n_blocks is None:
            self.n_blocks = DEFAULT_BLOCKS[bool(self.wide)]
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
    seed: int = setting(0, "Seeds the split, the initialisation and the batches.")
    epochs: int | None = setting(None, "Train this many epochs.", show="derived from --steps")
    steps: int = setting(1500, "Optimizer-step budget, rounded up to whole epochs (ignored with --epochs).")
    batch_size: int = setting(64, "Sentences per optimizer step.")
    lr: float = setting(2e-3, "Peak learning rate (AdamW; linear warm-up, cosine decay).")
    warmup_frac: float = setting(0.05, "Fraction of the steps spent warming the learning rate up.")
    vocab_size: int = setting(3500, "WordPiece vocabulary (lives in flash).")
    min_frequency: int = setting(2, "Tokenizer: minimum count of a piece.")
    weight_decay: float = setting(0.0, "AdamW weight decay on the non-binary matrices.")
    label_smoothing: float = setting(0.0, "Label smoothing of the soft-routing loss.")
    token_dropout: float = setting(0.0, "Training-only: replace each token by [UNK] with this probability.")
    attn_dropout: float = setting(0.0, "Training-only dropout on the attention weights.")
    grad_clip: float | None = setting(None, "Maximum global gradient norm.", show="no clipping")
    wide_prefit: bool = setting(True, "Fit the wide exit alone first (a convex logistic regression).")
    wide_l2: float | None = setting(None, "L2 on the wide table.", show="tuned on validation by the pre-fit")
    wide_lr: float = setting(0.1, "The wide exit's learning rate after the pre-fit, relative to --lr.")
    self_distill: float = setting(0.0, "Weight of each early exit's loss against the last exit's predictions "
                                       "(LAMA's self-supervised exits, arXiv 2407.21082); 0: off.")
    deep_alone: float = setting(0.0, "Weight of each deep head's own loss, without the wide logits.")
    size_budget: int | None = setting(None, "Bytes of flash the model may use: the default word buckets fill "
                                            "the artifact up to this.",
                                      show="--board's flash - firmware code - a margin (codegen/fit.py); "
                                           f"{cost.ARTIFACT_BUDGET // 1024} KB with --board none")
    threads: int = setting(1, "Torch threads: the small model gains little from more, and two processes at "
                              "the default thread count slow each other about tenfold.")
    device: str = setting("auto", f"Where to train: {', '.join(DEVICES)} (auto: cuda, then mps, then cpu). "
                                  "The export and its deploy mirror always run on the CPU.", choices=DEVICES)
    exit_weights: list[float] | None = setting(None, "Soft-routing loss weight of each exit, comma-separated, "
                                                     "e.g. 1,1,2.", show="all 1")
    full_precision: bool = setting(False, "Train the full-precision twin (binarization off; not exportable).")
    text_column: str | None = setting(None, "Text column of a CSV/TSV/JSONL file.")
    label_column: str | None = setting(None, "Label column of a CSV/TSV/JSONL file.")
    test_file: str | None = setting(None, "A file of its own for the test split (same format and columns as "
                                          "DATASET, e.g. a data set's official test split); DATASET then "
                                          "gives train and validation only.")
    val_frac: float = setting(0.1, "Fraction of each class held out for validation.")
    test_frac: float = setting(0.1, "Fraction of each class held out for test (unless --test-file).")
    max_train: int | None = setting(None, "Use at most this many training sentences.", show="all")
    model: dict = setting(help="ModelConfig overrides.", cli=False, default_factory=dict)
    # A pretrained teacher (train/teacher.py, `pip install beexgen[teacher]`); training only, never exported.
    teacher: str | None = setting(None, "Teacher: model dir, model.zip or wheel (needs beexgen[teacher]).",
                                  show="the installed all-MiniLM-L6-v2 wheel")
    teacher_cache: str | None = setting(None, "Teacher embeddings cache file.", show="RUN/teacher.safetensors")
    distill: float = setting(0.0, "Weight of the teacher representation loss (cosine, every deep exit); 0: off.")
    transfer: int = setting(0, "Augmented copies of each training text, teacher-labelled; 0: off.")
    transfer_seed: int = setting(0, "The augmentations' seed (independent of --seed, so caches are shared).")
    transfer_temperature: float = setting(1.0, "Temperature of the teacher's soft labels.")
    transfer_hard: float = setting(1.0, "Training texts' target: this x one-hot + (1 - this) x teacher.")
    transfer_teacher: str = setting("emb+bow", "The soft labeller's features.", choices=("emb", "emb+bow"))

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r}: one of {', '.join(DEVICES)}")


def cli_fields(cls) -> list[dataclasses.Field]:
    """The fields of a settings class that are command-line options."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def model_overrides(values: dict) -> dict:
    """ModelConfig fields given in `values` (None: left to ModelConfig's rule)."""
    names = {f.name for f in cli_fields(ModelConfig)}
    return {k: v for k, v in values.items() if k in names and v is not None}
