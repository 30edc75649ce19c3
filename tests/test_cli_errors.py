"""Bad input to the `beexgen` command: a clear one-line error naming the file or value,
a non-zero exit, never a traceback, and nothing lost."""
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from beexgen.core import artifact
from beexgen.cli import main
from fixtures import tiny_artifact


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return tiny_artifact(tmp_path_factory.mktemp("cli") / "artifact")


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r


def copy(art, tmp_path):
    d = tmp_path / "artifact"
    shutil.copytree(art.path, d)
    return d


def test_truncated_weights(art, tmp_path):
    d = copy(art, tmp_path)
    w = d / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    r = run("build", d, "--target", "host", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "content hash mismatch" in r.output and str(d) in r.output


def test_corrupted_meta_and_missing_file(art, tmp_path):
    d = copy(art, tmp_path)
    (d / "meta.json").write_text("{not json")
    r = run("build", d, "--target", "host", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "meta.json: not valid JSON" in r.output
    d2 = copy(art, tmp_path / "x")
    (d2 / "tokenizer.json").unlink()
    r = run("build", d2, "--target", "cortex-m4", "--board", "mps2-an386", "--out", tmp_path / "c")
    assert r.exit_code == 1 and "tokenizer.json: missing" in r.output


def test_wrong_format_version(art, tmp_path):
    d = copy(art, tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    meta["format_version"] = 999
    (d / "meta.json").write_text(json.dumps(meta))
    r = run("build", d, "--target", "host", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "format version 999" in r.output


def test_unknown_board(art, tmp_path):
    r = run("build", art.path, "--board", "arduino-uno", "--out", tmp_path / "b")
    assert r.exit_code == 2 and "unknown board 'arduino-uno'" in r.output   # refused while parsing and "nucleo-f411re" in r.output
    r = run("emulate", art.path, "--board", "nucleo-f411re")
    assert r.exit_code == 1 and "real board" in r.output


def test_unknown_x86_path(art, tmp_path):
    r = run("build", art.path, "--target", "host", "--isa", "neon", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "x86 path 'neon' is not available" in r.output
    r = run("build", art.path, "--target", "cortex-m4", "--isa", "avx2", "--out", tmp_path / "c")
    assert r.exit_code == 2 and "--isa is for --target host" in r.output


def test_model_too_big_for_the_board(tmp_path):
    big = tiny_artifact(tmp_path / "big", d_model=64, n_heads=2, d_ff=64, seq_max=1024)
    r = run("build", big.path, "--board", "nucleo-f411re", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "does not fit nucleo-f411re" in r.output and "RAM" in r.output


@pytest.mark.parametrize("content,match", [
    ("text,label\na,x\nb,x\n", "only one class"),
    ("words,stars\nhello,1\nbye,2\n", "cannot find a text column"),
    (b"text,label\nok,a\ncaf\xe9,b\n", ":3: bytes that are not UTF-8"),
])
def test_malformed_data_file(tmp_path, content, match):
    p = tmp_path / "data.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = run("train", p, "--out", tmp_path / "run", "--quiet")
    assert r.exit_code == 1 and match in r.output and "data.csv" in r.output


def test_not_a_run_directory(tmp_path):
    r = run("eval", tmp_path)
    assert r.exit_code == 1 and "no checkpoint.pt" in r.output


def test_seq_max_too_big_for_the_board_is_refused_before_training(tmp_path):
    """--seq-max is checked against the board's RAM (a real firmware build of an
    untrained model of the same size) before any data is loaded or trained."""
    out = tmp_path / "run"
    r = run("train", "rotten_tomatoes", "--seq-max", "256", "--board", "nucleo-f411re", "--out", out)
    assert r.exit_code == 1
    assert "--seq-max 256" in r.output and "KB of RAM on nucleo-f411re" in r.output
    assert not out.exists()                      # nothing trained, nothing written
    # the same model fits the 4 MB of the QEMU board: the check passes (then training
    # would start: stop it at the data by asking for a file that does not exist)
    r = run("train", str(tmp_path / "missing.csv"), "--seq-max", "256", "--board", "mps2-an386", "--out", out)
    assert "KB of RAM" not in r.output and "missing.csv" in r.output


def test_flash_budget_refuses_blocks_that_do_not_fit_a_small_board_before_training(tmp_path):
    """Blocks, embeddings and vocabulary that leave no flash on nucleo-f401re (512 KB) are
    refused before any data is loaded (24 blocks); the same model passes the check on a 4 MB board."""
    out = tmp_path / "run"
    r = run("train", "rotten_tomatoes", "--blocks", "24", "--board", "nucleo-f401re",
            "--out", out)
    assert r.exit_code == 1 and "flash" in r.output and "budget on nucleo-f401re" in r.output, r.output
    assert not out.exists()
    r = run("train", str(tmp_path / "missing.csv"), "--blocks", "24", "--board", "mps2-an386",
            "--out", out)
    assert "budget on" not in r.output and "missing.csv" in r.output


def test_flash_budget_is_the_board_minus_the_measured_code(tmp_path):
    """fit.flash_budget = board flash - (placeholder build's flash - its artifact bytes) - margin,
    and the trained build of a model filling that budget fits the board."""
    from beexgen.codegen import firmware, fit
    from beexgen.core import cost
    from beexgen.train.tokenizer import build_empty, from_str, vocab_bytes

    art = tiny_artifact(tmp_path / "art", seq_max=40, word_buckets=0, pair_buckets=0)
    cfg = dict(art.config)
    vb = vocab_bytes(from_str(art.tokenizer_json))
    budget, pre = fit.board_budget(cfg, art.tokenizer_json, vb, "nucleo-f411re")
    code = pre.flash_used - cost.artifact_bytes(cfg, vb)
    assert budget == pre.flash_total - code - fit.FLASH_MARGIN
    kw, kp = cost.budget_word_buckets(cfg, vb, budget)
    assert kw and kp and cost.artifact_bytes(dict(cfg, word_buckets=kw, pair_buckets=kp), vb) <= budget
    big = tiny_artifact(tmp_path / "big", seq_max=40, word_buckets=kw, pair_buckets=kp)
    real = firmware.build_firmware(big, "nucleo-f411re", tmp_path / "fw")     # raises FirmwareTooBig if not
    assert real.flash_used <= real.flash_total


def test_ram_check_measures_what_the_trained_build_uses(tmp_path):
    """The RAM the pre-training check reports is the trained model's firmware's, up to
    the alignment padding between .data and .bss (initialised thresholds differ)."""
    from beexgen.codegen import firmware, fit
    from beexgen.train.tokenizer import build_empty

    art = tiny_artifact(tmp_path / "art", seq_max=40)
    cfg = dict(art.config)
    pre = fit.ram_check(cfg, build_empty(fit.placeholder_vocab(cfg["vocab_size"])).to_str(), "nucleo-f411re")
    real = firmware.build_firmware(art, "nucleo-f411re", tmp_path / "fw")
    assert abs(pre.ram_used - real.ram_used) <= 16, (pre.ram_parts, real.ram_parts)


def test_calibrate_budget_needs_budget_before_loading(tmp_path):
    r = run("calibrate", tmp_path, "--policy", "budget")      # an empty directory: never loaded
    assert r.exit_code != 0 and "--budget must be given" in r.output


def test_calibrate_says_what_changed_and_warns_when_no_exit_survives(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained("trec6"), run_dir)
    r = run("calibrate", run_dir, "--policy", "entropy")
    assert r.exit_code == 0 and "default policy of" in r.output
    h = artifact.load(run_dir / "artifact").hash
    r = run("calibrate", run_dir, "--policy", "entropy")              # same thresholds again
    assert r.exit_code == 0 and "unchanged" in r.output
    assert artifact.load(run_dir / "artifact").hash == h            # not rewritten
    r = run("calibrate", run_dir, "--policy", "confidence", "--tolerance", "0.0001", "--delta", "0.0001")
    assert r.exit_code == 0 and "disables every early exit" in r.output


def test_build_of_a_run_without_artifact_says_export(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    r = run("build", tmp_path, "--target", "host")
    assert r.exit_code == 1 and "beexgen export" in r.output


def test_labels_the_wire_cannot_tell_apart_are_refused_before_training(tmp_path):
    f = tmp_path / "d.csv"
    rows = [f"text {i} words here,{'pos itive' if i % 2 else 'pos_itive'}" for i in range(40)]
    f.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    r = run("train", f, "--board", "none", "--out", out, "--quiet")
    assert r.exit_code == 1 and "both sent over the serial line as 'pos_itive'" in r.output
    assert not (out / "checkpoint.pt").exists()
