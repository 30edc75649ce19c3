"""The bench's writers (beexgen/bench): docs/bench.json and the README's results are
rendered from the stages' dataclasses only, so they cannot disagree.

- the committed docs/bench.json, read back into the dataclasses, renders exactly the
  README's three bench blocks (table, per-core table, prose);
- every number of the README's results prose is checked against docs/bench.json by an
  independent reading (regular expressions over the prose, figures recomputed here);
- a bench made here from the dataclasses survives JSON and back unchanged and renders
  the same; every stage's fields are unique JSON keys; the Results section has no
  figure outside the generated blocks.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from beexgen.bench import readme
from beexgen.bench.common import stage_keys, wilson_pct
from beexgen.bench.cores import CoreResult
from beexgen.bench.record import Bench, DatasetBench, Meta, stages

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOC = json.loads((ROOT / "docs" / "bench.json").read_text())


@pytest.mark.parametrize("tag", readme.TAGS)
def test_the_committed_bench_json_renders_the_readme(tag):
    assert readme.blocks(Bench.from_json(DOC))[tag] == readme.read_block(README, tag)


def test_the_committed_bench_json_is_the_dataclasses_fields():
    b = Bench.from_json(DOC)
    assert b.to_json() == DOC                       # nothing in the file the dataclasses do not hold
    keys = [k for st in stages().values() for k in stage_keys(st)]
    assert len(keys) == len(set(keys)), "two stages write the same key"
    for ds in DOC["datasets"].values():
        assert set(ds) == set(keys)


def _synthetic() -> Bench:
    """Two data sets with awkward figures (an exit never taken, a core that does not fit)."""
    out = {}
    for name, n, k in (("a", 31, 30), ("b", 65, 33)):
        d = DatasetBench()
        a = d.accuracy
        a.test_sentences = n
        for f in ("default_policy", "full_depth", "paper_model", "paper_default_policy", "twin", "bow_lr", "tfidf_lr"):
            setattr(a, f"accuracy_{f}", round(100 * k / n, 4))
            a.wilson95[f] = wilson_pct(k / n, n)
        a.accuracy_by_exit = {"0": 50.0, "1": 51.0, "2": 100.0}
        a.seeds = {"0": {"default_policy": 1.0, "full_depth": 2.0, "bow": 3.0, "tfidf": 4.0, "n": n}}
        a.seed_mean = {"default_policy": 1.0, "full_depth": 2.0, "bow": 3.0, "tfidf": 4.0}
        d.policies.default_policy.name, d.policies.default_policy.thresholds = "confidence", [0.5, 1.0]
        d.policies.exit_histogram = {"0": n - 1, "1": 0, "2": 1}
        d.policies.compute_saved_default_policy = 0.5
        d.size.artifact_bytes, d.size.twin_bytes, d.size.bow_lr_int8_bytes = 1024, 16384, 2048
        d.size.board = "nucleo-f411re"
        d.m4.m4_instructions_mean, d.m4.m4_by_exit, d.m4.m4_profile = 123456, {"0": 1000, "2": 999999}, {"x": 7, "y": 8}
        d.m4.m4_profile_cost_mean, d.m4.m4_profile_sentences = 15, n
        d.speed.host_us_per_sentence, d.speed.host_speedup_by_isa = 1.5, {"portable": 3.0}
        d.parity.c_equals_pytorch = d.parity.qemu_equals_host = [n, n]
        out[name] = d
    b = Bench(meta=Meta(machine="m", date="d", minutes=1.25), datasets=out)
    b.kernel.binary_instr_per_32_macs = {"1x1": 1.0}
    for f in ("dsp_instr_per_32_macs", "portable_instr_per_32_macs", "q7_over_binary"):
        setattr(b.kernel, f, {"1x1": 2.0})
    b.kernel.binary_instr, b.kernel.cmsis_dsp_q7_instr = {"1x1": 1}, {"1x1": 2}
    b.cores = {"cortex-m0": CoreResult(board="microbit", fits=False, reason="RAM", flash_bytes=2048, ram_bytes=1024,
                                       dataset="a")}
    return b


def test_a_bench_made_from_the_dataclasses_survives_json_and_renders_the_same(tmp_path):
    b = _synthetic()
    b.write(tmp_path / "bench.json")
    back = Bench.read(tmp_path / "bench.json")
    assert back.to_json() == b.to_json()
    assert readme.blocks(back) == readme.blocks(b)
    md = readme.table(b)
    assert "| accuracy by exit (0 (wide), 1, 2) | 50.0 / 51.0 / 100.0 |" in md
    assert f"**{100 * 30 / 31:.1f} [" in md and "| **total (= mean cost=)** | **15** | **15** |" in md
    assert "| mean cost= over the same sentences | 15 | 15 |" in md
    assert "does not fit: RAM" in readme.cores_table(b)
    fm = tmp_path / "README.md"
    fm.write_text("x\n" + "".join(f"<!-- {t}:begin -->\nold\n<!-- {t}:end -->\n" for t in readme.TAGS))
    readme.write(fm, b)
    assert all(readme.read_block(fm.read_text(), t) == md_ for t, md_ in readme.blocks(b).items())


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def test_every_number_of_the_results_prose_is_in_bench_json():
    """An independent reading of the prose: each figure found by its sentence, recomputed
    from docs/bench.json here (not by the renderer)."""
    prose = readme.read_block(README, "bench-prose")
    ds = DOC["datasets"]
    bullets = re.findall(r"^- \*\*(\w+)\*\*: (.*)$", prose, re.M)
    assert {name for name, _ in bullets} == set(ds)
    checked = 0
    for name, text in bullets:
        d = ds[name]
        m = re.fullmatch(r"the shipped model \(([\d.]+) %, 3-seed mean ([\d.]+) %\) is .* LR \(([\d.]+) %, mean ([\d.]+) %\)"
                         r" and .* LR \(([\d.]+) %, mean ([\d.]+) %\); the paper's architecture \(--no-wide\) reaches "
                         r"([\d.]+) % at full depth, and (\d+) % of the test sentences leave at exit 0\.", text)
        assert m, text
        want = [d["accuracy_default_policy"], d["seed_mean"]["default_policy"], d["accuracy_bow_lr"], d["seed_mean"]["bow"],
                d["accuracy_tfidf_lr"], d["seed_mean"]["tfidf"], d["accuracy_paper_model"]]
        for got, w in zip(m.groups(), want):
            assert abs(_num(got) - w) <= 0.05, (name, got, w)
        h = d["exit_histogram"]
        assert abs(_num(m[8]) - 100 * h["0"] / sum(h.values())) <= 0.5
        for word, mine, other in (("bag-of-words", d["accuracy_default_policy"], d["accuracy_bow_lr"]),
                                  ("TF-IDF", d["accuracy_default_policy"], d["accuracy_tfidf_lr"])):
            rel = re.search(r"(above|\*\*below\*\*|level with) the (binary )?" + word, text)[1]
            assert rel == ("above" if mine > other else "**below**" if mine < other else "level with")
        checked += 8
    last = re.search(r"^- What the model does give: (.*)$", prose, re.M)[1]
    words = re.sub(r"\b(M4|int8)\b", "", last)     # names, not figures
    nums = [_num(x) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", words)]
    v = list(ds.values())
    share = [100 * d["exit_histogram"]["0"] / sum(d["exit_histogram"].values()) for d in v]
    mean = [d["m4_instructions_mean"] / 1e6 for d in v]
    first = next(iter(ds))
    want = [min(share), max(share), 0, min(mean), max(mean), min(mean) * 10, max(mean) * 14,
            min(d["int8_peer_instructions_estimate"] for d in v) / 1e6, max(d["int8_peer_instructions_estimate"] for d in v) / 1e6,
            min(d["int8_peer_flash_bytes"] for d in v) / 1024, max(d["int8_peer_flash_bytes"] for d in v) / 1024,
            ds[first]["artifact_bytes"] / 1024, ds[first]["bow_lr_int8_bytes"] / 1024]
    # the exit-0 share, "exit 0", M instructions, ms at 100 MHz (instructions / 1e5 x 1.0-1.4), int8 M and KB, KB
    got = [x for x in nums if x != 100]             # the clock (100 MHz) is the cycle note's assumption
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert abs(g - w) <= max(0.5, 0.01 * abs(w)), (g, w, last)
    checked += len(got)
    assert f"the whole bench took {DOC['meta']['minutes']:.1f} min" in prose
    assert checked > 30


def test_the_results_section_has_no_figure_outside_the_generated_blocks():
    sec = README.split("## Results", 1)[1].split("\n## ", 1)[0]
    for tag in readme.TAGS:
        a, z = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
        sec = sec.split(a)[0] + sec.split(z)[1]
    assert not re.search(r"\d", sec), sec


def test_no_bench_module_is_over_300_lines():
    for f in (ROOT / "beexgen" / "bench").glob("*.py"):
        assert len(f.read_text().splitlines()) <= 300, f
    assert not (ROOT / "beexgen" / "bench.py").exists()
