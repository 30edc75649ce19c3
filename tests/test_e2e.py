"""End to end on the real test splits: PyTorch deploy mirror == host emulator == QEMU.

For tiny models trained (in the test) on rotten_tomatoes, sms_spam and trec6, every
sentence of the test split goes through host/client.py's Client to the host emulator and
(trec6) to both QEMU boards. Token ids must equal `tokenizers`; class, exit depth and the
logits' bit patterns must equal the deploy-mode forward. The margin for "near-ties" is
zero: both sides compute the same float operations in the same order, so any difference
is a bug, and the maximum logit difference is asserted to be exactly 0.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from beexgen.core import artifact
from beexgen.codegen import build as build_mod, emulate, firmware
from beexgen.host.client import Client
from beexgen.core import protocol
from beexgen.core.protocol import DeviceError
from beexgen.host.transport import open_transport
from beexgen.train import data, deploy, policies
from beexgen.train.exits import Policy
from beexgen.train.tokenizer import encode_for_model, from_str
from beexgen.train.trainer import load_run

DATASETS = list(data.OFFLINE)


def split_texts(run_dir, part="test"):
    """Every text of a split (the device streams a text of any length), with their block
    ids, every id, and labels."""
    run = load_run(run_dir)
    ids, y, idx = run.part(part)
    keep = list(range(len(idx)))
    return (run, [run.texts[idx[k]] for k in keep], [ids[k] for k in keep],
            y[keep], [run.all_ids[idx[k]] for k in keep])


def classify_all(port: str, texts, *, policy=None, tok=False):
    with Client(open_transport(port, timeout=30), timeout=60) as c:
        c.handshake(30)
        if policy is not None:
            c.set_policy(policy["name"], policy["thresholds"])
        out, toks = [], []
        for t in texts:
            out.append(c.classify(t))
            if tok:
                try:
                    toks.append(c.tokenize(t))
                except DeviceError as e:     # !tok sends the whole text: too long for the line
                    toks.append(e.status.name)
        return out, toks


def reference(art, ids, all_ids, policy):
    res = deploy.run(deploy.DeployModel(art), ids, all_ids)
    depth = res.depth(Policy[policy["name"].upper()], policy["thresholds"])
    cls, logits = res.at_exit(depth)
    return res, depth, cls, logits


def compare(replies, depth, cls, logits):
    got_logits = np.array([r.logits for r in replies], dtype=np.float32)
    assert [r.exit_depth for r in replies] == depth.tolist()
    assert [r.cls for r in replies] == cls.tolist()
    diff = float(np.abs(got_logits - logits).max())
    bits = [r.logits_hex for r in replies]
    want = [[f"{v:08x}" for v in row.view(np.uint32)] for row in logits.astype(np.float32)]
    mismatched = sum(a != b for a, b in zip(bits, want))
    print(f"\n{len(replies)} sentences: max |logit difference| {diff:g}, {mismatched} not bit-identical")
    assert mismatched == 0 and diff == 0.0


@pytest.mark.parametrize("dataset", DATASETS)
def test_host_emulator_equals_pytorch_on_the_whole_test_split(dataset, trained, tmp_path):
    run_dir = trained(dataset)
    art = artifact.load(run_dir / "artifact")
    run, texts, ids, _, all_ids = split_texts(run_dir)
    exe = build_mod.build_host(art, tmp_path / "host")
    replies, toks = classify_all(f"exec:{exe}", texts, tok=True)
    tok = from_str(art.tokenizer_json)
    seq = art.config["seq_max"]
    # ids: the device's !tok (block ids: [CLS] + head + tail) on the whole text
    want = [encode_for_model(tok, t, seq) for t in texts]
    # `!tok` streams its text as classification does: every text, longer than the line too
    assert all(toks[i] == want[i] for i in range(len(texts)))
    print(f"\n{dataset}: {len(texts)} id sequences identical, "
          f"{sum(len(t.encode()) > protocol.LINE_MAX for t in texts)} of them longer than the {protocol.LINE_MAX}-byte line")
    assert [r.tokens for r in replies] == [len(i) for i in ids]
    compare(replies, *reference(art, ids, all_ids, art.policy)[1:])


def test_sanitized_emulator_whole_test_split(trained, tmp_path):
    """ASan + UBSan build, every rotten_tomatoes test sentence, must exit clean."""
    run_dir = trained("rotten_tomatoes")
    art = artifact.load(run_dir / "artifact")
    _, texts, ids, _, all_ids = split_texts(run_dir)
    exe = build_mod.build_host(art, tmp_path / "asan", sanitize=True)
    replies, _ = classify_all(f"exec:{exe}", texts)
    compare(replies, *reference(art, ids, all_ids, art.policy)[1:])


@pytest.fixture(scope="module")
def trec(trained, tmp_path_factory):
    run_dir = trained("trec6")
    art = artifact.load(run_dir / "artifact")
    out = tmp_path_factory.mktemp("trec_builds")
    exe = build_mod.build_host(art, out / "host")
    fws = {b: firmware.build_firmware(art, b, out / b) for b in ("mps2-an386", "netduinoplus2")}
    return run_dir, art, exe, fws


@pytest.mark.parametrize("board", ["mps2-an386", "netduinoplus2"])
def test_qemu_firmware_equals_host_emulator_and_pytorch(trec, board):
    run_dir, art, exe, fws = trec
    _, texts, ids, _, all_ids = split_texts(run_dir)
    host, _ = classify_all(f"exec:{exe}", texts)
    with emulate.start_qemu(fws[board].elf, board, serial="tcp") as h:
        dev, _ = classify_all(h.url, texts)
    strip = lambda s: re.sub(r" (cost|unit)=\S+", "", s)
    assert [strip(r.line) for r in dev] == [strip(r.line) for r in host]
    assert all(r.unit == "instr" and r.cost > 0 for r in dev)
    compare(dev, *reference(art, ids, all_ids, art.policy)[1:])


def test_every_policy_same_depth_in_pytorch_host_and_qemu(trec):
    """Calibrate each policy on validation, switch it at run time with !policy, and check
    every test sentence's exit depth (and class) in all three implementations."""
    run_dir, art, exe, fws = trec
    run, texts, ids, y, all_ids = split_texts(run_dir)
    _, _, ids_v, y_v, all_v = split_texts(run_dir, "val")
    res_v = deploy.run(deploy.DeployModel(art), ids_v, all_v)
    len_v = np.array([len(s) for s in ids_v])
    # every policy there is (a new one is tested here with no change); the confidence
    # bound loosened so that a tiny model's early exits are taken
    pols = [policies.calibrate(name, res_v, y_v, len_v, art.config, delta=0.1, budget=0.6,
                               tolerance=0.05 if name == "confidence" else None)
            for name in policies.CALIBRATORS if name != "none"]
    with emulate.start_qemu(fws["mps2-an386"].elf, "mps2-an386", serial="tcp") as h:
        for pol in pols:
            _, depth, cls, logits = reference(art, ids, all_ids, pol)
            for port in (f"exec:{exe}", h.url):
                replies, _ = classify_all(port, texts, policy=pol)
                compare(replies, depth, cls, logits)
