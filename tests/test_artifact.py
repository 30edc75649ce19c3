"""Bit packing and the artifact: round trip, version and tamper checks."""
import json

import numpy as np
import pytest

from beexgen.core import artifact


@pytest.mark.parametrize("cols", [1, 31, 32, 33, 63, 64, 65, 127, 128, 129])
def test_pack_unpack_round_trip(cols):
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((7, cols)).astype(np.float32)
    x[0, 0] = 0.0
    x[1, 0] = -0.0
    bits = artifact.pack_signs(x)
    assert bits.dtype == np.uint32 and bits.shape == (7, (cols + 31) // 32)
    back = artifact.unpack_signs(bits, cols)
    assert np.array_equal(back, np.where(x < 0, -1, 1).astype(np.float32))
    # padding bits are zero; bit i of word i // 32 is element i (LSB first)
    full = artifact.pack_signs(-np.ones((1, cols)))[0]
    assert bin(int(full[-1])).count("1") == cols - 32 * (len(full) - 1)
    one = np.ones((1, cols), dtype=np.float32)
    one[0, cols - 1] = -1
    assert artifact.pack_signs(one)[0, (cols - 1) // 32] == 1 << ((cols - 1) % 32)


def test_unpack_rejects_nonzero_padding():
    with pytest.raises(ValueError, match="padding"):
        artifact.unpack_signs(np.array([[1 << 5]], dtype=np.uint32), 5)


def _save(tmp_path):
    """A small but complete artifact (every tensor its config calls for: load validates)."""
    from fixtures import tiny_artifact
    return tiny_artifact(tmp_path / "art", d_model=32, n_heads=1, d_ff=32, n_blocks=1, seq_max=8, n_classes=2,
                         vocab_size=120, policy={"name": "none", "thresholds": []})


def test_artifact_round_trip(tmp_path):
    art = _save(tmp_path)
    back = artifact.load(tmp_path / "art")
    assert back.hash == art.hash and len(back.hash) == 64
    assert set(back.tensors) == set(art.tensors) and "embed.tok.bits" in back.tensors
    assert np.array_equal(back.tensors["embed.tok.bits"], art.tensors["embed.tok.bits"])
    assert back.classes == ["class0", "class1"]


def test_saving_twice_gives_identical_bytes(tmp_path):
    _save(tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "art").iterdir()}
    _save(tmp_path)
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "art").iterdir()}


@pytest.mark.parametrize("victim", ["weights.safetensors", "tokenizer.json", "meta.json"])
def test_tampered_artifact_is_rejected(tmp_path, victim):
    _save(tmp_path)
    p = tmp_path / "art" / victim
    if victim == "meta.json":
        meta = json.loads(p.read_text())
        meta["classes"] = ["b", "a"]
        p.write_text(json.dumps(meta))
    else:
        data = bytearray(p.read_bytes())
        data[-2] ^= 0x01
        p.write_bytes(bytes(data))
    with pytest.raises(artifact.ArtifactError, match="hash mismatch"):
        artifact.load(tmp_path / "art")


def test_other_format_version_is_rejected(tmp_path):
    _save(tmp_path)
    p = tmp_path / "art" / "meta.json"
    meta = json.loads(p.read_text())
    meta["format_version"] = 99
    p.write_text(json.dumps(meta))
    with pytest.raises(artifact.ArtifactError, match="format version 99"):
        artifact.load(tmp_path / "art")


def test_missing_and_garbage_files_are_named(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="not an artifact directory"):
        artifact.load(tmp_path / "nope")
    _save(tmp_path)
    (tmp_path / "art" / "tokenizer.json").unlink()
    with pytest.raises(artifact.ArtifactError, match="tokenizer.json: missing"):
        artifact.load(tmp_path / "art")
    _save(tmp_path)
    (tmp_path / "art" / "meta.json").write_bytes(b"\xff\x00garbage")
    with pytest.raises(artifact.ArtifactError, match="meta.json: not valid JSON"):
        artifact.load(tmp_path / "art")


def test_an_entropy_threshold_may_be_negative_a_confidence_one_may_not():
    """The entropy rule's tau may be negative (calibration's grid reaches below 0: exit only
    when the entropy rose); a confidence threshold is a probability, >= 0."""
    from beexgen.core.validate import ArtifactError, _check_policy
    cfg = {"n_blocks": 2, "wide": True}
    _check_policy({"exit_policy": {"name": "entropy", "thresholds": [-0.0231]}, "h_prior": 0.69}, cfg, "test")
    with pytest.raises(ArtifactError, match="thresholds\\[0\\]"):
        _check_policy({"exit_policy": {"name": "confidence", "thresholds": [-0.1, 0.5]}, "h_prior": 0.69}, cfg, "test")
