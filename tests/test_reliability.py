"""Issue 25's red team, items 2-6 of "What failed" (item 1, request integrity, is in
test_redteam.py): one test per failure, named after it, each failing on 3e4f266.

    2 export-c --force deleting what it was not asked to
                                    test_export_c_force_with_empty_out_deletes_the_current_directory,
                                    test_export_c_force_replaces_a_run_directory,
                                    test_force_refuses_what_beexgen_did_not_create
    3 artifacts that still got through
                                    test_vocab_id_stored_as_a_string_gives_a_traceback,
                                    test_deeply_nested_meta_gives_a_recursion_error,
                                    test_vocab_ids_as_booleans_pass_validation,
                                    test_huge_weights_build_firmware_that_replies_nan,
                                    test_safetensors_header_list_or_string_shape_tracebacks,
                                    test_infer_artifact_empty_skips_the_hash_check
    4 board files                   test_one_invalid_board_toml_breaks_every_command,
                                    test_wrong_board_types_and_clocks_give_tracebacks,
                                    test_uart_irq_negative_builds_firmware_that_never_answers,
                                    test_a_board_file_outside_the_package_cannot_be_used
    5 the CLI                       test_bad_arguments_give_tracebacks,
                                    test_bad_values_accepted_or_caught_late,
                                    test_cli_sweep_every_option_of_every_command
    6 data                          test_class_with_one_example_is_accepted_silently
and issue 23's: test_core_has_no_import_cycle,
test_validation_without_numpy_skips_the_overflow_check, test_driver_kinds_come_from_the_driver_files.

Everything real: artifacts exported by the exporter, the CLI in-process (click's
CliRunner) or as a subprocess, gcc and QEMU. The one stand-in: the CLI sweep replaces the
heavy entry points (training, compiling, QEMU, the bench) by a marker that raises
`Reached`, so "refused before any work" is checked by the marker never being reached.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from beexgen.cli import main
from beexgen.codegen import boards
from beexgen.core import artifact, validate
from beexgen.core.outdir import MARKER
from conftest import needs
from fixtures import tiny_artifact

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return tiny_artifact(tmp_path_factory.mktemp("rel") / "artifact")


def run(*args, **kw):
    """The beexgen command in-process: no traceback, whatever the outcome."""
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True, **kw)
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    assert "Traceback" not in r.output
    return r


def listing(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file()}


def rehash(d: Path) -> None:
    """Recompute meta.json's content hash after an edit (an attacker who re-hashes)."""
    meta = json.loads((d / "meta.json").read_text())
    meta["hash"] = validate.content_hash(meta, (d / "weights.safetensors").read_bytes(),
                                         (d / "tokenizer.json").read_bytes())
    (d / "meta.json").write_text(json.dumps(meta))


def copy(art, tmp_path, name="artifact") -> Path:
    d = tmp_path / name
    shutil.copytree(art.path, d)
    return d


def refused_everywhere(d: Path, tmp_path: Path, needle: str) -> None:
    """build, export-c, artifact.load and beexgen-infer's check (check_dir) refuse d in one line."""
    for args in (["build", d, "--target", "host", "--out", tmp_path / "b"],
                 ["export-c", d, "--out", tmp_path / "lib"]):
        r = run(*args)
        assert r.exit_code == 1 and needle in r.output, (args, r.output)
    for check in (artifact.load, validate.check_dir):
        with pytest.raises(validate.ArtifactError, match=needle):
            check(d)


# --------------------------------------------------------------------------- 2. --force

def test_export_c_force_with_empty_out_deletes_the_current_directory(art, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    (work / "sub").mkdir()
    (work / "sub" / "data.csv").write_text("a,b\n")
    monkeypatch.chdir(work)
    before = listing(work)
    r = run("export-c", art.path, "--out", "", "--force")
    assert r.exit_code != 0 and "empty" in r.output
    assert listing(work) == before


@pytest.fixture(scope="module")
def run_dir(trained):
    return trained("trec6")


def test_export_c_force_replaces_a_run_directory(run_dir):
    before = listing(run_dir)
    r = run("export-c", run_dir / "artifact", "--out", run_dir, "--force")
    assert r.exit_code == 1 and "training run" in r.output and "checkpoint.pt" in r.output
    assert listing(run_dir) == before


@pytest.mark.parametrize("what", ["cwd", "run", "artifact", "foreign", "parent"])
def test_force_refuses_what_beexgen_did_not_create(what, art, run_dir, tmp_path, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    cwd = tmp_path / "cwd"
    (cwd / "deep").mkdir(parents=True)
    (cwd / "deep" / "x.txt").write_text("x")
    monkeypatch.chdir(cwd / "deep")
    target = {"cwd": Path("."), "run": run_dir, "artifact": art.path, "foreign": foreign, "parent": Path("..")}[what]
    watched = {"cwd": cwd, "run": run_dir, "artifact": art.path, "foreign": foreign, "parent": cwd}[what]
    before = listing(watched)
    for args in (["export-c", art.path, "--out", target, "--force"],
                 ["build", art.path, "--target", "host", "--out", target]):
        r = run(*args)
        assert r.exit_code == 1 and ("refusing" in r.output or "did not create" in r.output), (what, args, r.output)
        assert listing(watched) == before, (what, args)


def test_force_replaces_a_directory_beexgen_made(art, tmp_path):
    out = tmp_path / "lib"
    assert run("export-c", art.path, "--out", out).exit_code == 0
    assert (out / MARKER).is_file()
    assert run("export-c", art.path, "--out", out).exit_code == 1            # not without --force
    (out / "stale.c").write_text("old")
    assert run("export-c", art.path, "--out", out, "--force", "--prefix", "again").exit_code == 0
    assert not (out / "stale.c").exists() and (out / "src" / "again_classifier.h").is_file()


# --------------------------------------------------------------------------- 3. artifacts

def test_vocab_id_stored_as_a_string_gives_a_traceback(art, tmp_path):
    d = copy(art, tmp_path)
    tok = json.loads((d / "tokenizer.json").read_text())
    piece = next(iter(tok["model"]["vocab"]))
    tok["model"]["vocab"][piece] = str(tok["model"]["vocab"][piece])
    (d / "tokenizer.json").write_text(json.dumps(tok))
    rehash(d)
    refused_everywhere(d, tmp_path, "is not an integer id")


def test_vocab_ids_as_booleans_pass_validation(art, tmp_path):
    d = copy(art, tmp_path)
    tok = json.loads((d / "tokenizer.json").read_text())
    v = tok["model"]["vocab"]
    for piece, i in list(v.items()):
        if i in (0, 1):
            v[piece] = bool(i)            # [PAD] -> false, [UNK] -> true: sorted() still sees 0, 1
    (d / "tokenizer.json").write_text(json.dumps(tok))
    rehash(d)
    refused_everywhere(d, tmp_path, "is not an integer id")


def test_special_ids_without_cls_render_an_empty_define(art, tmp_path):
    d = copy(art, tmp_path)
    meta = json.loads((d / "meta.json").read_text())
    meta["special_ids"] = {"pad": 0, "unk": 1}
    (d / "meta.json").write_text(json.dumps(meta))
    rehash(d)
    refused_everywhere(d, tmp_path, "want exactly pad, unk, cls")


def test_deeply_nested_meta_gives_a_recursion_error(art, tmp_path):
    d = copy(art, tmp_path)
    text = (d / "meta.json").read_text().rstrip().rstrip("}")
    (d / "meta.json").write_text(text + ', "x": ' + "[" * 200_000 + "]" * 200_000 + "}")  # no re-hash needed
    refused_everywhere(d, tmp_path, "nested 200001 levels deep")


def test_huge_weights_build_firmware_that_replies_nan(art, tmp_path):
    from safetensors.numpy import load, save
    d = copy(art, tmp_path)
    t = load((d / "weights.safetensors").read_bytes())
    t["exits.0.fc.weight"] = np.full_like(t["exits.0.fc.weight"], np.float32(3e38))
    (d / "weights.safetensors").write_bytes(save(t))
    rehash(d)
    r = run("build", d, "--target", "host", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "exits.0.fc.weight holds 3e+38" in r.output
    for check in (artifact.load, validate.check_dir):      # check_dir: beexgen-infer --artifact, no numpy
        with pytest.raises(validate.ArtifactError, match="beyond"):
            check(d)
    t["exits.0.fc.weight"][0, 0] = np.float32("nan")
    (d / "weights.safetensors").write_bytes(save(t))
    rehash(d)
    for check in (artifact.load, validate.check_dir):
        with pytest.raises(validate.ArtifactError, match="NaN"):
            check(d)


def _weights_with_header(header) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"\0" * 64


@pytest.mark.parametrize("header, needle", [
    ([1, 2, 3], "header is a JSON list"),
    ({"embed.tok.scale": {"dtype": "F32", "shape": "32", "data_offsets": [0, 128]}}, "shape '32'"),
    ({"embed.tok.scale": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, "shape"),
    ({"embed.tok.scale": [1]}, "not an object"),
    ({"embed.tok.scale": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}, "data_offsets"),
])
def test_safetensors_header_list_or_string_shape_tracebacks(art, tmp_path, header, needle):
    d = copy(art, tmp_path)
    (d / "weights.safetensors").write_bytes(_weights_with_header(header))
    rehash(d)
    refused_everywhere(d, tmp_path, needle)


def test_infer_artifact_empty_skips_the_hash_check(art):
    """beexgen-infer --artifact '' must not mean 'no --artifact' (the hash check skipped)."""
    from beexgen.host.cli import main as infer_main
    r = CliRunner().invoke(infer_main, ["--artifact", "", "--emulator", "/nonexistent/bx_host"])
    assert r.exit_code != 0 and "--artifact" in r.output and "empty path" in r.output, r.output


# --------------------------------------------------------------------------- 4. boards

def _registry(tmp_path: Path, edit: dict[str, callable]) -> Path:
    reg = tmp_path / "boards"
    shutil.copytree(boards.BOARD_DIR, reg)
    for name, fn in edit.items():
        p = reg / f"{name}.toml"
        p.write_text(fn(p.read_text()))
    return reg


def _beexgen(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "beexgen.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@needs("arm-none-eabi-gcc")
def test_one_invalid_board_toml_breaks_every_command(art, tmp_path):
    reg = _registry(tmp_path, {"nucleo-f411re": lambda s: s + "\nbroken = [\n"})
    env = {"BEEXGEN_BOARD_DIR": str(reg)}
    r = _beexgen("boards", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "warning: board nucleo-f411re disabled" in r.stdout and str(reg / "nucleo-f411re.toml") in r.stdout
    assert "mps2-an386" in r.stdout
    r = _beexgen("build", art.path, "--target", "host", "--out", tmp_path / "host", env=env)
    assert r.returncode == 0, r.stderr                                   # the host build needs no board
    r = _beexgen("build", art.path, "--board", "mps2-an386", "--out", tmp_path / "an386", env=env)
    assert r.returncode == 0 and (tmp_path / "an386" / "fw.elf").is_file(), r.stderr
    r = _beexgen("build", art.path, "--board", "nucleo-f411re", "--out", tmp_path / "f411", env=env)
    assert r.returncode == 2 and "disabled" in r.stderr and "not valid TOML" in r.stderr and "Traceback" not in r.stderr


def _last(s: str, old: str, new: str) -> str:
    a, _, b = s.rpartition(old)
    return a + new + b


AN386 = (boards.BOARD_DIR / "mps2-an386.toml").read_text()
F411 = (boards.BOARD_DIR / "nucleo-f411re.toml").read_text()


@pytest.mark.parametrize("text, needle", [
    (AN386.replace("irq = 0", 'irq = "0"'), "irq = '0' is not an integer"),
    (AN386.replace("nvic_irqs = 32", "nvic_irqs = true"), "nvic_irqs = 'True' is not an integer"),
    (_last(AN386, "hz = 25_000_000", "hz = 0"), "counter.hz = 0"),
    (_last(AN386, "hz = 25_000_000", "hz = 3"), "counter.hz = 3"),
    (AN386.replace("clock_hz = 25_000_000", "clock_hz = 2.5e7"), "clock_hz = '25000000.0' is not an integer"),
    ("uart = 3\n" + AN386.replace("[uart]", "[uartx]"), "uart must be a table"),
    (F411.replace('params = { gpio_port = "A", tx_pin = 2, rx_pin = 3, af = 7, rcc_apb1 = 0x20000, rcc_apb2 = 0 }',
                  ""), "missing gpio_port, tx_pin, rx_pin, af, rcc_apb1, rcc_apb2"),
    (F411.replace('gpio_port = "A"', 'gpio_port = "AB"'), "params.gpio_port = 'AB'"),
    (AN386.replace("base = 0x40004000", "base = 0xE000E000"), "uart.base = 0xe000e000"),
    (AN386.replace("length = 0x400000            # 4 MiB", "length = 0x30000000"), "flash: 0x0 + 0x30000000"),
    (AN386.replace("nvic_irqs = 32", "nvic_irqs = 300"), "cortex-m4 NVIC has 1 .. 240"),
    (AN386.replace('core = "cortex-m4"', 'core = "cortex-m0"\ncounter_x = 1'), "unknown key(s) counter_x"),
], ids=lambda x: x if len(x) < 60 else "")
def test_wrong_board_types_and_clocks_give_tracebacks(tmp_path, text, needle):
    p = tmp_path / "my-board.toml"
    p.write_text(text)
    with pytest.raises(boards.BoardFileError) as e:
        boards.load_board(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg, msg


def test_uart_irq_negative_builds_firmware_that_never_answers(art, tmp_path):
    p = tmp_path / "my-board.toml"
    for irq, rule in ((-5, "uart.irq = -5"), (32, "uart.irq = 32: want an interrupt number 0 .. nvic_irqs - 1 = 31")):
        p.write_text(AN386.replace("irq = 0", f"irq = {irq}"))
        r = run("build", art.path, "--board", p, "--out", tmp_path / "b")
        assert r.exit_code == 2 and rule in r.output and "my-board.toml" in r.output, r.output
        assert not (tmp_path / "b").exists()


@needs("arm-none-eabi-gcc", "qemu-system-arm")
def test_a_board_file_outside_the_package_cannot_be_used(art, tmp_path):
    """An external board file (mps2-an386's record under another name) builds and runs in
    QEMU, and answers exactly as the host emulator does."""
    from beexgen.codegen import build as build_mod
    from test_firmware_qemu import host_replies, normalise, qemu_session, request_script

    mine = tmp_path / "elsewhere" / "my-an386.toml"
    mine.parent.mkdir()
    mine.write_text(AN386)
    r = run("build", art.path, "--board", mine, "--out", tmp_path / "fw")
    assert r.exit_code == 0 and "firmware:" in r.output, r.output
    src = (tmp_path / "fw" / "src" / "bx_board.h").read_text()
    assert '"my-an386"' in src
    reqs = request_script(art)[:40]
    want = host_replies(build_mod.build_host(art, tmp_path / "host"), reqs)
    got = qemu_session(tmp_path / "fw" / "fw.elf", str(mine), reqs, tmp_path / "qemu.log")
    assert [normalise(x) for x in got] == [normalise(x) for x in want]
    assert sum(x.startswith("ok cls=") for x in got) >= 15


# --------------------------------------------------------------------------- 5. the CLI

class Reached(Exception):
    """The marker: a heavy step (training, compiling, QEMU, the bench) was reached."""


@pytest.fixture
def marked(monkeypatch):
    """The heavy entry points replaced by the marker."""
    import beexgen.bench
    import beexgen.train.export
    import beexgen.tune
    import beexgen.train.trainer
    from beexgen.codegen import build, emulate, export, firmware, flash

    def reached(*a, **k):
        raise Reached()
    for mod, name in ((beexgen.train.trainer, "train"), (beexgen.train.trainer, "train_twin"),
                      (beexgen.train.export, "export_run"), (build, "build_host"), (firmware, "build_firmware"),
                      (export, "export_c"), (emulate, "start_qemu"), (flash, "flash"), (beexgen.bench, "main"),
                      (beexgen.tune, "tune")):
        monkeypatch.setattr(mod, name, reached, raising=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "tiny.csv"
    p.write_text("text,label\n" + "".join(f"sentence number {i} is {'good' if i % 2 else 'bad'},{i % 2}\n"
                                          for i in range(60)))
    return p


def invoke(args) -> tuple[int, str, bool]:
    """(exit code, output, marker reached) of one in-process invocation; any exception
    other than click's exit and the marker fails the test."""
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if isinstance(r.exception, Reached):
        return 0, r.output, True
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    assert "Traceback" not in r.output, (args, r.output)
    return r.exit_code, r.output, False


@pytest.mark.parametrize("args, needle", [
    (["build", "ART", "--stack", "8"], "--stack"),
    (["calibrate", "RUN", "--delta", "0"], "--delta"),
    (["export", "RUN", "--tolerance", "nan"], "--tolerance"),
    (["bench", "--jobs", "0"], "--jobs"),
    (["train", "DATA", "--batch-size", "0"], "--batch-size"),
    (["train", "DATA", "--heads", "0"], "--heads"),
    (["train", "DATA", "--val-frac", "0"], "--val-frac"),
    (["train", "DATA", "--lr", "nan"], "--lr"),
    (["train", "DATA", "--dropout", "1.5"], "--dropout"),
    (["train", "DATA", "--bigram-buckets", "3"], "power of two"),
    (["export-c", "ART", "--out", "OUT", "--prefix", "p" * 250], "--prefix"),
])
def test_bad_arguments_give_tracebacks(marked, art, run_dir, dataset, tmp_path, args, needle):
    sub = {"ART": art.path, "RUN": run_dir, "DATA": dataset, "OUT": tmp_path / "out"}
    code, out, reached = invoke([sub.get(a, a) for a in args] + (["--board", "none"] if args[0] == "train" else []))
    assert code == 2 and needle in out and not reached, out


@pytest.mark.parametrize("args, needle", [
    (["train", "DATA", "--batch-size", "-1"], "--batch-size"),
    (["train", "DATA", "--blocks", "300"], "--blocks"),
    (["calibrate", "RUN", "--tolerance", "-1"], "--tolerance"),
    (["calibrate", "RUN", "--delta", "1"], "--delta"),
    (["bench", "--readme", "/nonexistent/README.md"], "--readme"),
])
def test_bad_values_accepted_or_caught_late(marked, run_dir, dataset, args, needle):
    sub = {"RUN": run_dir, "DATA": dataset}
    code, out, reached = invoke([sub.get(a, a) for a in args] + (["--board", "none"] if args[0] == "train" else []))
    assert code == 2 and needle in out and not reached, out


BAD = ["0", "-1", "nan", "inf", "-inf", "1e400", "99999999999999999999999", "", "abc", "1.5"]
ALWAYS_BAD = {"nan", "inf", "-inf", "1e400", "99999999999999999999999", "", "abc"}


def test_cli_sweep_every_option_of_every_command(marked, art, dataset, tmp_path, monkeypatch):
    """Every option of every command with 0, negative, nan, inf, huge, empty and
    wrong-type values: never a traceback; a number option refuses the non-finite, huge,
    empty and non-numeric ones before the marker (any heavy step) is reached."""
    import click

    monkeypatch.chdir(tmp_path)
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    positional = {"train": [dataset, "--board", "none"], "export": [empty_run], "eval": [empty_run],
                  "calibrate": [empty_run], "report": [empty_run], "build": [art.path], "export-c": [art.path],
                  "emulate": [art.path], "flash": [art.path], "bench": [], "fetch": [], "boards": [],
                  "tune": [dataset, "--out", tmp_path / "tune"]}
    n = 0
    for name, cmd in main.commands.items():
        base = positional[name]
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or p.name == "help":
                continue
            flag = max(p.opts, key=len)
            extra = ["--out", tmp_path / "o"] if name == "export-c" and flag != "--out" else []
            numeric = isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)) or \
                type(p.type).__name__ == "Number"
            for v in BAD:
                code, out, reached = invoke([name, *base, *extra, flag, v])
                n += 1
                if numeric and v in ALWAYS_BAD:
                    assert code == 2 and not reached, (name, flag, v, out)
    print("sweep:", n, "invocations")
    assert n > 400


def test_every_numeric_setting_has_a_range():
    import dataclasses
    import typing

    from beexgen.train import config
    for cls in (config.TrainConfig, config.ModelConfig):
        hints = typing.get_type_hints(cls)
        for f in config.cli_fields(cls):
            kinds = set(typing.get_args(hints[f.name])) | {hints[f.name]}
            if kinds & {int, float} or typing.get_origin(hints[f.name]) is list or \
                    any(typing.get_origin(k) is list for k in kinds):
                assert f.metadata.get("range"), f"{cls.__name__}.{f.name} has no range"
        assert dataclasses.is_dataclass(cls)


# --------------------------------------------------------------------------- 6. data

def test_class_with_one_example_is_accepted_silently(tmp_path, capsys):
    from beexgen.train import data
    p = tmp_path / "rare.csv"
    p.write_text("text,label\n" + "".join(f"common text {i},{'a' if i % 2 else 'b'}\n" for i in range(40))
                 + "the only one,rare\n")
    ds = data.load_dataset(str(p))
    split = data.split_dataset(ds, seed=0)
    err = capsys.readouterr().err
    assert "class 'rare' has 1 example(s), too few to appear in the validation split" in err
    assert "never tested" in err
    assert any(ds.labels[i] == "rare" for i in split.train)


# --------------------------------------------------------------------------- issue 23: schema, drivers

def test_core_has_no_import_cycle():
    import ast
    core = ROOT / "beexgen" / "core"
    graph = {}
    for f in core.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "beexgen.core":
                    deps |= {a.name for a in node.names}
                elif node.module.startswith("beexgen.core."):
                    deps.add(node.module.split(".")[2])
        graph[f.stem] = deps - {f.stem}

    def reach(a, seen):
        for b in graph.get(a, ()):
            if b not in seen:
                seen.add(b)
                reach(b, seen)
        return seen
    cycles = [m for m in graph if m in reach(m, set())]
    assert not cycles, {m: graph[m] for m in cycles}
    assert "schema" in graph["validate"] and "schema" in graph["cost"]


def test_validation_without_numpy_skips_the_overflow_check():
    """On a host-only install (no numpy) the 32-bit cost check still runs."""
    code = r"""
import sys
sys.modules["numpy"] = None          # import numpy -> ImportError, as without numpy
from beexgen.core import validate
c = dict(vocab_size=100, n_classes=2, d_model=8192, n_heads=8, d_ff=8192, n_blocks=4, seq_max=8192,
         binary=True, slfn=True, dropout=0.1, wide=False, bigram_buckets=0, wide_ids=False, word_buckets=0,
         pair_buckets=0)
try:
    validate.check_config(c, "x")
except validate.ArtifactError as e:
    print("refused:", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in r.stdout and "32-bit counters" in r.stdout, r.stdout + r.stderr


def test_driver_kinds_come_from_the_driver_files(tmp_path):
    d = tmp_path / "templates"
    d.mkdir()
    for f in ("uart_cmsdk.c", "counter_dwt.c", "clock_reset.c"):
        shutil.copy(ROOT / "firmware_templates" / f, d / f)
    (d / "uart_acme.c").write_text("/* bx-driver: uart acme; base: yes; params: fifo_depth */\n")
    drv = boards.discover_drivers(d)
    assert set(drv["uart"]) == {"cmsdk", "acme"} and drv["uart"]["acme"].params == ("fifo_depth",)
    assert drv["counter"]["dwt"].needs == ("thumb2",) and drv["counter"]["dwt"].base is False
    (d / "uart_bad.c").write_text("/* bx-driver: uart bad; colour: blue */\n")
    with pytest.raises(boards.BoardFileError, match="uart_bad.c"):
        boards.discover_drivers(d)
    # the package's tables are generated from the files
    real = boards.discover_drivers()
    assert {k: v.file for k, v in real["uart"].items()} == boards.UART_DRIVERS
    for p in (ROOT / "firmware_templates").glob("*_*.c"):
        if p.name.split("_")[0] in boards.ROLES:
            assert boards.parse_driver(p).file == p.name


def test_readme_boards_table_is_generated(tmp_path):
    """`beexgen boards --readme` writes every board of the registry between the markers."""
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n" + boards.README_BEGIN + "\n| stale |\n" + boards.README_END + "\n\nafter\n")
    r = run("boards", "--readme", readme)
    assert r.exit_code == 0 and "updated" in r.output
    text = readme.read_text()
    assert "stale" not in text and text.endswith("\n\nafter\n")
    for name in boards.BOARDS:
        assert f"| `{name}` |" in text


def test_outdir_rule(tmp_path, monkeypatch):
    """core/outdir.prepare directly: an earlier build (build.json) is reused, a foreign
    directory with a file is not, a marked one is replaced only with force."""
    from beexgen.core import outdir
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old_build"
    (old / "src").mkdir(parents=True)
    (old / "build.json").write_text("{}")
    assert outdir.prepare(old, command="t", reuse=True) == old and (old / "src").is_dir()
    (old / "mine.txt").write_text("x")
    (old / outdir.MARKER).unlink()
    with pytest.raises(outdir.OutputDirError, match="did not create"):   # --force never replaces it
        outdir.prepare(old, command="t", force=True)
    assert (old / "mine.txt").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "fw.elf").write_bytes(b"\x7fELF")
    with pytest.raises(outdir.OutputDirError, match="did not create"):
        outdir.prepare(other, command="t", reuse=True, force=True)
    assert (other / "fw.elf").is_file()
    new = outdir.prepare(tmp_path / "a" / "b", command="t")
    (new / "x").write_text("x")
    with pytest.raises(outdir.OutputDirError, match="--force"):
        outdir.prepare(new, command="t")
    outdir.prepare(new, command="t", force=True)
    assert not (new / "x").exists() and outdir.is_marked(new)
    for bad in ("", " ", ".", "..", str(tmp_path), "~"):
        with pytest.raises(outdir.OutputDirError):
            outdir.prepare(bad, command="t", force=True)


@needs("arm-none-eabi-gcc", "qemu-system-arm")
def test_new_vendor_uart_runs_in_qemu(art, tmp_path):
    """The tiva UART (uart_tiva.c, added with the TM4C123 board as its TOML + that file)
    on QEMU's Stellaris LM3S6965: replies equal the host emulator's, and its SysTick
    cost counts the same instructions as mps2-an385's CMSDK timer (same M3 code)."""
    from beexgen.codegen import build as build_mod, firmware
    from test_firmware_qemu import costs, host_replies, normalise, qemu_session, request_script

    reqs = request_script(art)[:50]                  # !info, 20 !tok, then classifications
    want = host_replies(build_mod.build_host(art, tmp_path / "host"), reqs)
    got = {}
    for b in ("lm3s6965evb", "mps2-an385"):
        fw = firmware.build_firmware(art, b, tmp_path / b)
        got[b] = qemu_session(fw.elf, b, reqs, tmp_path / f"{b}.log")
    assert [normalise(x) for x in got["lm3s6965evb"]] == [normalise(x) for x in want]
    mine, ref = costs(reqs, got["lm3s6965evb"]), costs(reqs, got["mps2-an385"])
    assert len(mine) >= 25 and [m[:2] for m in mine] == [r[:2] for r in ref]
    ratio = sum(m[2] for m in mine) / sum(r[2] for r in ref)
    assert abs(ratio - 1) < 0.01, ratio
