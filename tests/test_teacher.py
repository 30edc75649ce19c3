"""The teacher (train/teacher.py): loading, embedding, cache, transfer set, distillation,
and that a teacher-trained model exports exactly the tensors of one trained without.

No test downloads anything: the teacher is a tiny BERT that `transformers` builds from a
config and saves to a temporary directory, loaded by the same code as all-MiniLM-L6-v2."""
import json
from collections import Counter
import zipfile

import numpy as np
import pytest
import torch

import transformers  # noqa: F401,E402  the `teacher` extra (also in `dev`, which set-up installs)

from beexgen.core import artifact
from beexgen.train import export, teacher
from beexgen.train.model import BEExformer, ModelConfig
from beexgen.train.trainer import TrainConfig, train
from conftest import TINY_TRAIN

WORDS = ("the a film movie is was good bad great awful what who where when how many "
         "city country name person year funny dull story actor plot not very").split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast
    d = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [c for c in "abcdefghijklmnopqrstuvwxyz?.,'"]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(d / "vocab.txt"), do_lower_case=True).save_pretrained(str(d))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=40, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(str(d))
    return d


TEXTS = ["the film was good", "What city ?", "a very very dull story , not funny at all and bad", "", "x"]


def test_loads_offline_and_embeds_mean_pooled_unit_vectors(tiny_bert):
    t = teacher.Teacher(tiny_bert)
    assert t.dim == 24
    e = t.embed(TEXTS, batch_size=2, progress=False)
    assert e.shape == (len(TEXTS), 24) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # mean pooling over the real tokens only: a text's embedding does not depend on the batch's padding
    alone = np.stack([t.embed([s], progress=False)[0] for s in TEXTS])
    assert np.abs(alone - e).max() < 1e-5
    # and it is what the definition says: mean of last hidden states over the mask, L2-normalised
    enc = t.tokenizer([TEXTS[0]], return_tensors="pt")
    with torch.no_grad():
        h = t.model(**enc).last_hidden_state[0]
    ref = h.mean(0) / h.mean(0).norm()
    assert np.abs(ref.numpy() - e[0]).max() < 1e-5


def test_model_dir_from_a_zip_like_the_wheels(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(teacher, "cache_dir", lambda: tmp_path / "cache")
    z = tmp_path / "model.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in tiny_bert.iterdir():
            zf.write(f, f.name)
    d = teacher.model_dir(z)
    assert (d / "config.json").is_file()
    e1 = teacher.Teacher(d).embed(TEXTS, progress=False)
    e2 = teacher.Teacher(tiny_bert).embed(TEXTS, progress=False)
    assert np.array_equal(e1, e2)
    with pytest.raises(FileNotFoundError):
        teacher.model_dir(tmp_path / "nothing.bin")


def test_cache_round_trip_computes_only_what_is_missing(tiny_bert, tmp_path, monkeypatch):
    path = tmp_path / "teacher.safetensors"
    c = teacher.Cache(path, tiny_bert)
    e = c.embed(TEXTS[:3], progress=False)
    calls = []
    real = teacher.Teacher.embed
    monkeypatch.setattr(teacher.Teacher, "embed", lambda self, texts, **kw: calls.append(list(texts)) or real(self, texts, **kw))
    c2 = teacher.Cache(path, tiny_bert)          # a fresh reader: from the file only
    assert np.array_equal(c2.embed(TEXTS[:3], progress=False), e)
    assert calls == []
    both = c2.embed(TEXTS[1:] + TEXTS[:1], progress=False)
    assert calls == [TEXTS[3:]]                   # only the two new texts were embedded
    assert np.array_equal(both[-1], e[0]) and np.array_equal(both[:2], e[1:3])
    assert len(teacher.Cache(path, tiny_bert).keys) == len(TEXTS)


def test_transfer_set_is_seeded_and_per_text():
    texts = ["a b c d e f g h", "one two three four five", "single", "x y"]
    a = teacher.transfer_texts(texts, 3, seed=0)
    assert a == teacher.transfer_texts(texts, 3, seed=0)
    assert a != teacher.transfer_texts(texts, 3, seed=1)
    assert len(a) == 3 * len(texts) and all(s.strip() for s in a)
    # a text's copies do not depend on the other texts of the split (so caches are shared)
    sub = teacher.transfer_texts(texts[:1], 3, seed=0)
    assert sub == [a[0], a[4], a[8]]
    # augmentations only drop or reorder words
    for src, aug in zip(texts * 3, a):
        assert not Counter(aug.split()) - Counter(src.split())
    assert any(x != y for x, y in zip(a, texts * 3))


def test_distiller_is_outside_the_model_and_its_loss_learns():
    torch.manual_seed(0)
    model = BEExformer(ModelConfig(vocab_size=50, n_classes=3, d_model=16, n_heads=2, d_ff=16, n_blocks=2, seq_max=8))
    names = set(model.state_dict())
    dist = teacher.Distiller(model, 12)
    assert set(model.state_dict()) == names      # no new parameters inside the BEExformer
    ids = torch.randint(3, 50, (32, 8))
    lengths = torch.full((32,), 8)
    feats = torch.randint(0, 50, (32 * 8,))
    offsets = torch.arange(0, 32 * 8, 8)
    target = torch.nn.functional.normalize(torch.randn(32, 12), dim=-1)
    opt = torch.optim.Adam(list(model.parameters()) + list(dist.parameters()), lr=1e-2)
    losses = []
    for _ in range(40):
        model(ids, lengths, (feats, offsets))
        loss = dist.loss(target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    with torch.no_grad():                         # evaluation keeps no states
        model(ids, lengths, (feats, offsets))
    assert all(s is None for s in dist.states)


@pytest.fixture(scope="module")
def teacher_runs(tiny_bert, tmp_path_factory, trained):
    """The plain run is the test session's trec6 run (conftest TINY_TRAIN, the same
    config: trained once per session); the two teacher runs differ from it only by
    their teacher options."""
    base = tmp_path_factory.mktemp("teacher_runs")
    runs = {"none": trained("trec6")}
    for name, over in {"distill": {"distill": 1.0}, "transfer": {"distill": 0.5, "transfer": 2}}.items():
        over = {**over, "teacher": str(tiny_bert)}
        out = base / name
        train(TrainConfig(dataset="trec6", out=str(out), **TINY_TRAIN, **over), progress=False)
        export.export_run(out)
        runs[name] = out
    return runs


def test_distillation_loss_decreases_in_a_tiny_run(teacher_runs):
    hist = [json.loads(l) for l in (teacher_runs["distill"] / "history.jsonl").read_text().splitlines()]
    rep = [h["distill_loss"] for h in hist]
    assert rep[-1] < rep[0], rep
    assert (teacher_runs["distill"] / teacher.CACHE_FILE).is_file()
    assert "distill_loss" not in (teacher_runs["none"] / "history.jsonl").read_text()


def test_teacher_trained_artifacts_have_the_same_tensors(teacher_runs):
    arts = {k: artifact.load(v / "artifact") for k, v in teacher_runs.items()}
    ref = arts["none"]
    for name, art in arts.items():
        assert sorted(art.tensors) == sorted(ref.tensors), name
        assert {k: (t.shape, t.dtype) for k, t in art.tensors.items()} == \
               {k: (t.shape, t.dtype) for k, t in ref.tensors.items()}, name
    assert not any("proj" in k or "distill" in k for k in ref.tensors)
    # the transfer run trained on more rows than the plain run
    cfg = json.loads((teacher_runs["transfer"] / "config.json").read_text())["train"]
    assert cfg["transfer"] == 2 and cfg["teacher"]
