"""Settings defined once (train/config.py) and the frictions a new user hit with
`beexgen train`: --device, --test-file, --with-twin, errors printed once."""
import dataclasses
import json
import typing

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from beexgen.cli import main
from beexgen.core import artifact
from beexgen.train import config, deploy
from beexgen.train.trainer import load_run, predict_exits


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r


def test_every_setting_is_an_option_with_its_field_default_and_help():
    params = {p.name: p for p in main.commands["train"].params}
    for cls in (config.TrainConfig, config.ModelConfig):
        hints = typing.get_type_hints(cls)
        for f in config.cli_fields(cls):
            assert f.name in params, f"{cls.__name__}.{f.name} has no option"
            p = params[f.name]
            flag = "--" + (f.metadata.get("flag") or f.name).replace("_", "-")
            assert flag in p.opts, (f.name, p.opts)
            assert p.help.startswith(f.metadata["help"]), f.name
            t = ([a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]])[0]
            want = None if f.default is dataclasses.MISSING or typing.get_origin(t) is list else f.default
            assert p.default == want, (f.name, p.default, want)
    # the settings the program sets (or spells otherwise) are not options
    for name in ("n_classes", "binary", "model", "vocab_size_of_model"):
        assert name not in params
    assert params["dataset"].param_type_name == "argument"
    # and what the CLI would build from its defaults is the dataclasses' defaults
    defaults = {p.name: p.default for p in main.commands["train"].params if p.name in
                {f.name for f in config.cli_fields(config.TrainConfig)}}
    defaults["exit_weights"] = None
    assert config.TrainConfig(dataset="d", out="o", **defaults) == config.TrainConfig(dataset="d", out="o")


def test_a_setting_error_is_a_usage_error_before_anything_runs(tmp_path):
    r = run("train", "rotten_tomatoes", "--d-model", "30", "--heads", "4", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "d_model 30 is not a multiple of n_heads 4" in r.output
    assert not (tmp_path / "r").exists()
    r = run("train", "rotten_tomatoes", "--device", "tpu", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "'tpu' is not one of" in r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_says_so(tmp_path):
    f = _data(tmp_path / "d.csv", 40)
    r = run("train", f, "--device", "cuda", "--board", "none", "--out", tmp_path / "r", "--quiet")
    assert r.exit_code == 1 and "--device cuda: this torch has no CUDA device" in r.output


def _data(path, n, offset=0):
    words = {"pos": ["good", "great", "fine", "lovely"], "neg": ["bad", "awful", "poor", "dull"]}
    rows = []
    for i in range(offset, offset + n):
        lab = "pos" if i % 2 else "neg"
        rows.append(f"the film was {words[lab][i % 4]} and {words[lab][(i // 2) % 4]} number {i},{lab}")
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def test_test_file_device_cpu_and_twin(tmp_path):
    """--test-file keeps the given file as the test split (train and validation come from
    DATASET alone); --device cpu trains there; --with-twin trains the twin on the same
    split and ids; the exported artifact's deploy mirror agrees with the model."""
    train_f, test_f = _data(tmp_path / "train.csv", 120), _data(tmp_path / "test.csv", 31, offset=1000)
    out = tmp_path / "run"
    r = run("train", train_f, "--test-file", test_f, "--device", "cpu", "--with-twin", "--board", "none",
            "--epochs", "2", "--vocab-size", "120", "--d-model", "32", "--heads", "2", "--d-ff", "32",
            "--seq-max", "24", "--bigram-buckets", "256", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    split = json.loads((out / "split.json").read_text())
    assert split["test"] == list(range(120, 151))          # exactly the test file's 31 rows, in order
    assert len(split["train"]) + len(split["val"]) == 120 and split["val"]
    run_ = load_run(out)
    assert [run_.texts[i] for i in split["test"]] == \
        [line.rsplit(",", 1)[0] for line in test_f.read_text().splitlines()[1:]]
    assert json.loads((out / "config.json").read_text())["train"]["device"] == "cpu"
    assert (out / "twin" / "checkpoint.pt").exists()
    for f in ("split.json", "tokenizer.json"):
        assert (out / "twin" / f).read_bytes() == (out / f).read_bytes()
    ids, _, _ = run_.part("test")
    art = artifact.load(out / "artifact")
    ref = predict_exits(run_.model, ids, all_ids=run_.all_part("test"))
    res = deploy.run(deploy.DeployModel(art), ids, run_.all_part("test"))
    assert (ref.argmax(-1) == res.cls).mean() >= 0.95


def test_a_test_file_with_an_unseen_label_is_refused(tmp_path):
    train_f = _data(tmp_path / "train.csv", 40)
    test_f = tmp_path / "test.csv"
    test_f.write_text("text,label\nsomething,neutral\nthe film was good,pos\n")
    r = run("train", train_f, "--test-file", test_f, "--board", "none", "--out", tmp_path / "r", "--quiet")
    assert r.exit_code == 1 and "'neutral'" in r.output and "never occur" in r.output


def test_a_model_too_big_is_said_once(tmp_path):
    from fixtures import tiny_artifact
    big = tiny_artifact(tmp_path / "big", d_model=64, n_heads=2, d_ff=64, seq_max=1024)
    r = run("build", big.path, "--board", "nucleo-f411re", "--out", tmp_path / "b")
    assert r.exit_code == 1 and r.output.count("does not fit nucleo-f411re") == 1, r.output


def test_each_exit_policy_is_named_once_and_calibrated_through_one_registry(tmp_path):
    from beexgen.core import policy
    from beexgen.train import policies
    assert set(policy.POLICY_OPTIONS) == set(policies.CALIBRATORS)
    assert set(policy.POLICY_OPTIONS) == set(policy.NAMES)
    choices = {p.name: p for p in main.commands["calibrate"].params}["policy_name"].type.choices
    assert list(choices) == list(policy.POLICY_OPTIONS)
    with pytest.raises(policies.CalibrationError, match="--budget must be given"):
        policies.calibration_options("budget", budget=1.5)
    assert policies.calibration_options("confidence", delta=0.1) == {"tolerance": 0.01, "delta": 0.1}
