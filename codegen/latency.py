"""Worst-case latency on the Cortex-M4: full-depth instruction counts, the default
policy's tail (p95, max), the per-stage profile of a full-depth pass, and a worst-case
bound computed from the model's shapes and per-stage costs measured once (issue 24).

    from beexgen.codegen import latency as bl
    costs = bl.calibrate(art, board="mps2-an386")      # measures, returns ForwardCosts
    bl.store(costs)                                     # into codegen/latency_costs.json
    bl.worst_case_bound(art, "mps2-an386")              # None when no costs are stored
    fig = bl.measure(art, texts)                        # LatencyFigures (unicorn + QEMU)

The bound. The forward pass (bx_forward: the wide exit's check, the embedding, every
block and every exit) has no data-dependent loop: for n tokens each stage of
codegen/m4bench.py's profile costs a + b n + c n^2 instructions (attention is quadratic
in n, everything else linear), except the sigmoid, whose clamps run only for inputs at
or beyond the table's range. calibrate() runs bx_forward at full depth on random ids at
three lengths (2, seq_max / 2, seq_max; three seeds each, the largest count kept), solves
each stage's a, b, c exactly, and measures the sigmoid's extra cost per clamped input;
the bound for seq_max tokens adds that extra for every gate (3 d per token per block).
At seq_max itself the fit is exact (a calibration length); between the lengths it is
within the loops' odd-count steps (a few instructions per loop); the cost grows with n,
so the seq_max figure bounds every shorter text.
The binary linear layers are the exception to "no data-dependent loop" on targets with
the slices kernels (bx_kernels_arm.c): a call's cost grows with |S|, the smaller sign set of
its input (at most n_in / 2), and takes a longer epilogue when a row's Z passes 255. Their
stages are not fitted: calibrate() measures each call of a token (binary_calls) at its
most expensive input (_binlinear_worst) and the bound counts that for every call; the
calibration's random sentences must not exceed it (checked).
The input stage (tokenizer, wide exit sums) depends on the line's bytes, not on the
model, and is outside the bound: the bench compares the bound with the forward part of
the longest measured sentence (its cost minus those two stages).
"""
from __future__ import annotations

import json
import struct
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

COSTS_FILE = Path(__file__).resolve().parent / "latency_costs.json"
INPUT_STAGES = ("tokenizer", "wide exit", "cost counter")


@dataclass
class ForwardCosts:
    """Per-stage instruction costs of bx_forward at full depth, measured once per core and shape."""
    key: str                                   # shape_key(): core and model shape
    stages: dict[str, list[float]]             # stage -> [a, b, c]: a + b n + c n^2 instructions
    sigmoid_clamp_extra: float                 # extra instructions per clamped sigmoid input
    gates_per_token: int                       # sigmoid inputs per token over all blocks (3 d blocks)
    seq_max: int
    measured_at: list[int] = field(default_factory=list)

    def forward(self, n: int) -> float:
        """Instructions of bx_forward for n tokens at full depth, no sigmoid clamped."""
        return float(sum(a + b * n + c * n * n for a, b, c in self.stages.values()))

    def bound(self, n: int | None = None) -> int:
        """Worst case for n tokens (default seq_max): every sigmoid input clamped."""
        n = self.seq_max if n is None else n
        return int(np.ceil(self.forward(n) + self.sigmoid_clamp_extra * self.gates_per_token * n))


@dataclass
class LatencyFigures:
    """What the bench reports (docs/bench.json keys m4_full_depth_mean, m4_instructions_p95,
    m4_instructions_max, m4_worst_case_bound)."""
    core: str
    sentences: int
    full_depth_mean: float                     # cost= of a sentence run through every block (unicorn)
    full_depth_per_token_per_block: float      # (forward part) / tokens / blocks, mean over sentences
    instructions_p95: float                    # default policy, QEMU cost=
    instructions_max: int
    worst_case_bound: int | None               # ForwardCosts.bound() (None: not calibrated)
    longest_forward: int                       # forward part of the full-depth pass of the longest sentence
    bound_holds: bool | None
    stages_full_depth: dict[str, float]        # mean instructions per stage of a full-depth pass


def shape_key(cfg: dict, core: str) -> str:
    return (f"{core}/d{cfg['d_model']}h{cfg['n_heads']}f{cfg['d_ff']}b{cfg['n_blocks']}s{cfg['seq_max']}"
            f"c{cfg['n_classes']}{'-slfn' if cfg.get('slfn', True) else ''}{'-wide' if cfg.get('wide') else ''}")


def _core(board: str) -> str:
    from beexgen.codegen import boards
    return boards.get_board(board).core


def _cfg(art) -> dict:
    from beexgen.core import artifact as art_mod
    a = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    return dict(a.config), a


def _forward_stages(m4, ids: list[int]) -> dict[str, int]:
    from beexgen.codegen import m4bench
    m4.reset_heap()
    pids = m4.put(struct.pack(f"<{len(ids)}i", *ids))
    res = m4.alloc(512)
    _, tr = m4.trace("bx_forward", pids, len(ids), res, stages=m4bench._stage_map(m4), root="engine")
    out = {k: v for k, v in tr.stages.items() if k != "engine"}
    out["residuals and glue"] = out.get("residuals and glue", 0) + tr.stages.get("engine", 0)
    return out


def binary_calls(cfg: dict) -> dict[str, list[tuple[int, int]]]:
    """The bx_binlinear calls (n_in, n_out) of one token in one block, by profile stage, as
    bx_engine.c makes them on a slices target (qkv in two calls when the values start on a
    group of 32 rows, BX_BINLIN_SPLITS)."""
    from beexgen.codegen import render
    from beexgen.core import slices, validate
    calls = {}
    for name, (_, shape) in validate.expected_tensors(cfg).items():
        n_in = render.binary_n_in(cfg, name) if name.startswith("blocks.0.") else None
        if n_in is not None:
            calls[f"binary {name.split('.')[2]}"] = [(n_in, int(shape[0]))]
    d = int(cfg["d_model"])
    if (2 * d) % slices.ROWS == 0:                      # queries and keys, then the values
        calls["binary qkv"] = [(d, 2 * d), (d, d)]
    return calls


def _binlinear_worst(m4, n_in: int, n_out: int) -> int:
    """Instructions of one bx_binlinear call (slices layout) at its most expensive input:
    |S| = n_in // 2 (the first n_in // 2 inputs -1: every list entry and column block), and
    every row -1 on exactly those inputs, so Z = n_in + n_in // 2 in every lane (past 255,
    the epilogue's longer loop, whenever it can be)."""
    from beexgen.core import artifact, slices
    half = n_in // 2
    xf = np.where(np.arange(n_in) < half, -1.0, 1.0).astype(np.float32)
    x = artifact.pack_signs(xf[None])[0]
    w = slices.to_slices(artifact.pack_signs(np.tile(xf, (n_out, 1))), n_in)
    m4.reset_heap()
    py = m4.alloc(4 * n_out)
    px, pw = m4.put(x.tobytes()), m4.put(w.tobytes())
    pa, pb = m4.put(np.ones(n_out, np.float32).tobytes()), m4.put(np.zeros(n_out, np.float32).tobytes())
    _, n = m4.call("bx_binlinear", py, px, pw, pa, pb, n_in, n_out)
    return n


def _binary_worst(m4, cfg: dict) -> dict[str, float]:
    """Per stage, the instructions per token over all blocks at every call's worst."""
    blocks = int(cfg["n_blocks"])
    return {stage: float(blocks * sum(_binlinear_worst(m4, i, o) for i, o in calls))
            for stage, calls in binary_calls(cfg).items()}


def _sigmoid_extra(m4, n: int = 384) -> float:
    """Extra instructions per input of bx_sigmoid_array when every input is clamped."""
    counts = []
    for x in (np.linspace(-15, 15, n, dtype=np.float32), np.full(n, 1e30, np.float32)):
        m4.reset_heap()
        _, c = m4.call("bx_sigmoid_array", m4.put(x.tobytes()), n)
        counts.append(c)
    return (counts[1] - counts[0]) / n


def calibrate(art, board: str = "mps2-an386", work_dir: str | Path | None = None, elf: str | Path | None = None,
              seeds: int = 3) -> ForwardCosts:
    """Measure ForwardCosts for art's shape on board's core (see the module docstring)."""
    from beexgen.codegen import firmware as fw_mod, m4bench
    from beexgen.codegen.m4emu import M4

    cfg, a = _cfg(art)
    tmp = tempfile.TemporaryDirectory(prefix="bx_latency_") if work_dir is None and elf is None else None
    try:
        if elf is None:
            elf = fw_mod.build_firmware(a, board, Path(work_dir or tmp.name) / "fw").elf
        m4 = M4.for_board(elf, board)
        m4bench.force_full_depth(m4)
        seq_max, vocab = int(cfg["seq_max"]), int(cfg["vocab_size"])
        special = a.meta.get("special_ids") or {}
        cls = int(special.get("cls", 2))
        lo = max(special.values(), default=4) + 1
        lengths = sorted({2, max(3, seq_max // 2), seq_max})
        rows = []
        for n in lengths:
            best: dict[str, int] = {}
            for s in range(seeds):
                rng = np.random.default_rng(1000 * n + s)
                ids = [cls] + rng.integers(lo, vocab, n - 1).tolist()
                for k, v in _forward_stages(m4, ids).items():
                    best[k] = max(best.get(k, 0), v)
            rows.append(best)
        names = sorted({k for r in rows for k in r})
        if len(lengths) == 3:
            A = np.array([[1.0, n, n * n] for n in lengths])
        else:                                     # seq_max <= 3: a line through the points
            A = np.array([[1.0, n, 0.0] for n in lengths])
        stages = {}
        for k in names:
            y = np.array([r.get(k, 0) for r in rows], dtype=np.float64)
            coef = np.linalg.lstsq(A, y, rcond=None)[0]
            stages[k] = [round(float(c), 6) for c in coef]
        from beexgen.codegen import project
        if project.binlinear_slices(board):
            for k, per_token in _binary_worst(m4, cfg).items():
                seen = [r.get(k, 0) for r in rows]
                if any(v > per_token * n for v, n in zip(seen, lengths)):
                    raise RuntimeError(f"{k}: a calibration sentence cost {seen} for {lengths} tokens, above the "
                                       f"worst case {per_token:,.0f} per token: the worst-case input is wrong")
                stages[k] = [0.0, per_token, 0.0]
        gates = 3 * int(cfg["d_model"]) * int(cfg["n_blocks"]) if cfg.get("slfn", True) else 0
        return ForwardCosts(shape_key(cfg, _core(board)), stages, round(_sigmoid_extra(m4), 4), gates, seq_max,
                            lengths)
    finally:
        if tmp is not None:
            tmp.cleanup()


def load_costs(path: Path = COSTS_FILE) -> dict[str, ForwardCosts]:
    if not Path(path).exists():
        return {}
    return {k: ForwardCosts(**v) for k, v in json.loads(Path(path).read_text()).items()}


def store(costs: ForwardCosts, path: Path = COSTS_FILE) -> None:
    data = {k: asdict(v) for k, v in load_costs(path).items()}
    data[costs.key] = asdict(costs)
    Path(path).write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def worst_case_bound(art, board: str, path: Path = COSTS_FILE) -> int | None:
    """Instructions of bx_forward for seq_max tokens at full depth on board's core, from the
    stored costs of art's shape; None when that shape and core were never calibrated."""
    cfg, _ = _cfg(art)
    c = load_costs(path).get(shape_key(cfg, _core(board)))
    return None if c is None else c.bound()


def bound_message(art, board: str) -> str:
    """The line `beexgen build --board B` prints."""
    b = worst_case_bound(art, board)
    cfg, _ = _cfg(art)
    if b is None:
        return (f"worst case: no measured stage costs for this model shape on {_core(board)} "
                f"(python -m beexgen.codegen.latency calibrate ARTIFACT --board {board} measures them)")
    return (f"worst case: {b:,} instructions for {cfg['seq_max']} tokens through all {cfg['n_blocks']} blocks "
            f"(forward pass; the tokenizer adds per input byte)")


def measure(art, texts, board: str = "mps2-an386", work_dir: str | Path | None = None,
            costs: ForwardCosts | None = None, elf: str | Path | None = None,
            default_costs=None) -> LatencyFigures:
    """Full-depth profile (unicorn, every sentence through every block) of texts, and the
    default policy's per-sentence cost= (default_costs, e.g. the bench's QEMU run of the
    whole test split; measured here under QEMU on texts when None, which needs a QEMU
    board). The bound from costs (the stored ones for this shape and core when None, else
    calibrated on this ELF)."""
    from beexgen.codegen import firmware as fw_mod, m4bench

    cfg, a = _cfg(art)
    tmp = tempfile.TemporaryDirectory(prefix="bx_latency_") if work_dir is None else None
    wd = Path(work_dir or tmp.name)
    try:
        elf = elf or fw_mod.build_firmware(a, board, wd / "fw").elf
        full = m4bench.profile(elf, texts, board=board, qemu=False, full_depth=True, work_dir=wd / "full")
        if default_costs is None:
            dflt = m4bench.profile(elf, texts, board=board, qemu=True, work_dir=wd / "default")
            default_costs = [r["cost"] for r in dflt["per_sentence"]]
        costs = costs or load_costs().get(shape_key(cfg, _core(board))) or calibrate(a, board, elf=elf)
        per = full["per_sentence"]
        blocks = int(cfg["n_blocks"])
        longest = max(range(len(per)), key=lambda i: per[i]["tokens"])
        fwd = _forward_of(elf, board, texts[longest])
        fwd_mean = full["total"] - sum(full["stages"].get(s, 0.0) for s in INPUT_STAGES)
        bound = costs.bound()
        return LatencyFigures(
            core=_core(board), sentences=len(per),
            full_depth_mean=round(full["total"], 1),
            full_depth_per_token_per_block=round(fwd_mean / float(np.mean([r["tokens"] for r in per])) / blocks, 1),
            instructions_p95=float(np.percentile(default_costs, 95)), instructions_max=int(max(default_costs)),
            worst_case_bound=bound, longest_forward=fwd, bound_holds=bool(fwd <= bound),
            stages_full_depth={k: round(v, 1) for k, v in full["stages"].items()})
    finally:
        if tmp is not None:
            tmp.cleanup()


def json_keys(fig: LatencyFigures) -> dict:
    """docs/bench.json datasets.<d> keys of issue 24 (../shared/BENCH.md)."""
    return {"m4_full_depth_mean": int(round(fig.full_depth_mean)),
            "m4_full_depth_per_token_per_block": round(fig.full_depth_per_token_per_block, 1),
            "m4_instructions_p95": int(round(fig.instructions_p95)),
            "m4_instructions_max": int(fig.instructions_max),
            "m4_worst_case_bound": fig.worst_case_bound,
            "m4_worst_case_bound_holds": fig.bound_holds,
            "m4_full_depth_profile": {k: int(round(v)) for k, v in fig.stages_full_depth.items()}}


def _forward_of(elf, board: str, text) -> int:
    """Instructions of bx_forward at full depth on the ids the firmware makes of text
    (bx_model_ids: [CLS] + the tokenizer's ids, head and tail past seq_max)."""
    from beexgen.codegen import m4bench
    from beexgen.codegen.m4emu import M4

    m4 = M4.for_board(elf, board)
    m4bench.force_full_depth(m4)
    t = (text.encode() if isinstance(text, str) else bytes(text)).replace(b"\r", b" ").replace(b"\n", b" ")
    m4.reset_heap()
    pt, pids = m4.put(t or b"\0"), m4.alloc(4 * 4096)
    n, _ = m4.call("bx_model_ids", pt, len(t), pids)
    if n >> 31 or n == 0:
        raise ValueError(f"bx_model_ids({t[:40]!r}) failed ({n})")
    ids = list(struct.unpack(f"<{n}i", m4.read(pids, 4 * n)))
    return int(sum(_forward_stages(m4, ids).values()))


def main(argv: list[str] | None = None) -> int:
    """python -m beexgen.codegen.latency calibrate ARTIFACT [--board B] | measure RUN [N] [--board B]"""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m beexgen.codegen.latency", description=main.__doc__)
    ap.add_argument("what", choices=("calibrate", "measure"), help="calibrate: measure and store the stage "
                    "costs of ARTIFACT's shape; measure: the latency figures of RUN's first N test sentences")
    ap.add_argument("path", help="an artifact directory (calibrate) or a training run (measure)")
    ap.add_argument("n", nargs="?", type=int, default=100, help="sentences (measure)")
    ap.add_argument("--board", default="mps2-an386", help="board whose core is measured")
    args = ap.parse_args(argv)
    p = Path(args.path)
    if args.what == "calibrate":
        c = calibrate(p, args.board)
        store(c)
        print(json.dumps(asdict(c), indent=1))
        print(f"bound for {c.seq_max} tokens: {c.bound():,} instructions; stored in {COSTS_FILE}")
    else:
        from beexgen.codegen import m4bench
        art = p / "artifact" if (p / "artifact").is_dir() else p
        print(json.dumps(asdict(measure(art, m4bench.test_texts(p, args.n), args.board)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
