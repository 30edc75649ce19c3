"""One table reader (beexgen/core/textfile.py) for training and for beexgen-infer: both read
the two TSV dialects (a header naming the columns; label<TAB>text lines without one) and
CSV the same way, and say which line of which file is wrong."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from beexgen.core import textfile
from beexgen.host import cli
from beexgen.train import data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "rotten_tomatoes.tsv"


def train_rows(path: Path) -> list[tuple[str, str]]:
    ds = data.load_file(path)
    return list(zip(ds.texts, ds.labels))


def infer_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        items = cli.read_items(fh, "auto", str(path), None, None)
    return [(it.text, it.gold) for it in items]


def example_rows() -> list[tuple[str, str]]:
    """examples/rotten_tomatoes.tsv read by hand: label<TAB>text, no header."""
    out = []
    for ln in EXAMPLE.read_text(encoding="utf-8").splitlines():
        label, text = ln.split("\t", 1)
        out.append((text, label))
    return out


def test_the_example_file_reads_the_same_in_training_and_inference():
    want = example_rows()
    assert len(want) >= 4 and {lab for _, lab in want} == {"fresh", "rotten"}
    assert train_rows(EXAMPLE) == want
    assert infer_rows(EXAMPLE) == want


def test_the_header_dialect_reads_the_same_in_training_and_inference(tmp_path):
    want = example_rows()
    f = tmp_path / "with_header.tsv"                  # the other dialect: text first, a header
    f.write_text("Text\tid\tLabel\n" + "".join(f"{t}\t{i}\t{lab}\n" for i, (t, lab) in enumerate(want)),
                 encoding="utf-8")
    assert train_rows(f) == want
    assert infer_rows(f) == want


def test_dialects_kept_apart_where_they_differ():
    # without a header the text is verbatim to the line end: TABs and quotes stay
    rows = textfile.read_table(io.StringIO('pos\t"quoted"\tand a tab\n\nneg\tb\n'), "x.tsv")
    assert [(r.lineno, r.label, r.text) for r in rows] == [(1, "pos", '"quoted"\tand a tab'), (3, "neg", "b")]
    # with one, fields follow the csv module: a quoted field may hold a TAB
    rows = textfile.read_table(io.StringIO('\ntext\tlabel\n"a\tb"\tpos\n'), "y.tsv")
    assert [(r.lineno, r.label, r.text) for r in rows] == [(3, "pos", "a\tb")]
    # a column option means a header; a 0-based index names a column too
    rows = textfile.read_table(io.StringIO("body\ty\nhi\t1\n"), "z.tsv", text_column="0", label_column="y")
    assert [(r.text, r.label) for r in rows] == [("hi", "1")]


@pytest.mark.parametrize("content, match", [
    ("fresh\tgood\nno tab on this line\n", r"bad\.tsv:2: no TAB in a label<TAB>text line"),
    ("text\tlabel\na\tx\nb\ty\textra\n", r"bad\.tsv:3: 3 fields, the header has 2"),
    ("text\tlabel\ttext\na\tx\tb\n", r"bad\.tsv: column 'text' appears 2 times"),
])
def test_malformed_lines_are_named_in_both(tmp_path, content, match):
    f = tmp_path / "bad.tsv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(data.DataError, match=match):
        data.load_file(f)
    with pytest.raises(cli.InputError, match=match):
        infer_rows(f)


def test_inference_reads_unlabelled_tables(tmp_path):
    f = tmp_path / "u.csv"
    f.write_text("text\nthe film\nq\n", encoding="utf-8")
    assert infer_rows(f) == [("the film", None), ("q", None)]
    with pytest.raises(data.DataError, match=r"u\.csv: cannot find a label column among text"):
        data.load_file(f)
