"""The one reader of labelled text tables (.tsv and .csv), for training and for beexgen-infer.

Two TSV dialects are in use and both are read (docs/INTERNALS.md, "Data files"):

- with a header: the first line names the columns; the text and label columns are
  given (`--text-column`, `--label-column`: a name, or a 0-based index) or guessed from
  TEXT_COLUMNS and LABEL_COLUMNS (case-insensitive). Fields follow the csv module's
  rules (a field in double quotes may hold a TAB or a line end), every row has the
  header's number of fields. This is what `csv.writer(delimiter="\\t")` and pandas write.
- without a header: `label<TAB>text` on each line, the text verbatim up to the line
  end (TABs and quotes in it kept), as examples/rotten_tomatoes.tsv.

The first line is a header when the text and the label columns can both be found in
it (or a column option is given). A CSV file always has a header. Blank lines are
skipped. Every error is a TableError naming the file and, where there is one, the line.
Pure Python: a host-only install reads its files with it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Iterable

TEXT_COLUMNS = ("text", "sentence", "sms", "question", "review", "content")
LABEL_COLUMNS = ("label", "category", "class", "target", "labels", "coarse")


class TableError(ValueError):
    """A table that cannot be read; the message names the file and the line."""


@dataclass
class Row:
    lineno: int               # 1-based line of the record's start
    text: str
    label: str | None         # None: the table has no label column (label optional)


def pick_column(columns: list[str], wanted: str | None, guesses: tuple, what: str, name,
                required: bool = False) -> str | None:
    """The column called `wanted` (a name, or a 0-based index that is not a name), else the
    first of `guesses` present (case-insensitive); None when there is none, or TableError
    when `required`."""
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.isdigit() and int(wanted) < len(columns):
            return columns[int(wanted)]
        raise TableError(f"{name}: no {what} column {wanted!r} (columns: {', '.join(columns)})")
    for g in guesses:
        for c in columns:
            if c.lower() == g:
                return c
    if required:
        raise TableError(f"{name}: cannot find a {what} column among {', '.join(columns) or '(none)'}; "
                         f"name it with --{what}-column")
    return None


def _index(header: list[str], col: str, name) -> int:
    where = [i for i, c in enumerate(header) if c == col]
    if len(where) > 1:
        raise TableError(f"{name}: column {col!r} appears {len(where)} times in the header (columns "
                         f"{', '.join(str(i + 1) for i in where)}); rename the duplicates")
    return where[0]


def read_table(lines: Iterable[str], name, *, delimiter: str = "\t", text_column: str | None = None,
               label_column: str | None = None, label_required: bool = True) -> list[Row]:
    """The rows of a table. `lines`: its text lines, line ends kept (a file object, or
    str.splitlines(keepends=True)); `name`: the file, for messages; `delimiter`: TAB for
    .tsv (both dialects), "," for .csv (a header always). Without label_required a header
    table may lack a label column (Row.label None); a one-column header table is then
    the text. Texts and labels are returned as written (no stripping)."""
    it = iter(lines)
    first, lineno = None, 0
    for first in it:
        lineno += 1
        if first.strip():
            break
    else:
        return []
    if delimiter == "\t" and text_column is None and label_column is None:
        head = first.rstrip("\r\n").split("\t")
        if not (pick_column(head, None, TEXT_COLUMNS, "text", name) and
                pick_column(head, None, LABEL_COLUMNS, "label", name)):
            return _label_tab_text([first], it, lineno, name)
    return _with_header(first, it, lineno, name, delimiter, text_column, label_column, label_required)


def _label_tab_text(head: list[str], rest, lineno: int, name) -> list[Row]:
    rows = []
    for i, ln in enumerate([*head, *rest], lineno):
        ln = ln.rstrip("\r\n")
        if not ln.strip():
            continue
        label, tab, text = ln.partition("\t")
        if not tab:
            raise TableError(f"{name}:{i}: no TAB in a label<TAB>text line (a file without a header "
                             f"holds label<TAB>text lines; a header names a text and a label column)")
        rows.append(Row(i, text, label))
    return rows


def _with_header(first: str, rest, lineno: int, name, delimiter: str, text_column, label_column,
                 label_required: bool) -> list[Row]:
    skipped = lineno - 1                      # blank lines before the header

    def lines():
        yield first
        yield from rest
    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader)
        one = len(header) == 1 and not label_required    # a single column is the text
        tc = pick_column(header, text_column, TEXT_COLUMNS, "text", name, required=not one) or header[0]
        lc = pick_column(header, label_column, LABEL_COLUMNS, "label", name, required=label_required)
        ti = _index(header, tc, name)
        li = _index(header, lc, name) if lc is not None else None
        rows = []
        for row in reader:
            i = reader.line_num + skipped
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise TableError(f"{name}:{i}: {len(row)} fields, the header has {len(header)}")
            rows.append(Row(i, row[ti], row[li] if li is not None else None))
    except csv.Error as e:
        raise TableError(f"{name}:{reader.line_num + skipped}: {e}") from None
    return rows
