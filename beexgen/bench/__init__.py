"""`beexgen bench`: the results table, measured side by side in one run, as stages.

Each stage is a module with a dataclass and a `measure` function returning it:
  accuracy  the shipped model, its peers (paper's architecture, twin) and two linear
            baselines, with Wilson intervals, by exit and over 3 seeds (accuracy.py);
  policies  each exit policy calibrated on validation, measured on test (policies.py);
  size      artifact, twin and baseline bytes; flash / RAM / stack on the default board (size.py);
  m4        M4 instructions per sentence under QEMU -icount, by exit, per stage (m4.py);
  speed     host emulator vs PyTorch eager batch 1, per x86 kernel path (speed.py);
  parity    C == PyTorch (class, exit, logit bits) and QEMU == host (parity.py);
  cores     the default model on every Cortex-M core QEMU emulates (cores.py);
  kernels   the binary linear kernel per 32 MACs beside CMSIS-DSP's q7 peer (kernels.py).
record.py gathers them (Bench) and is the only writer of docs/bench.json; readme.py
renders the README's table, per-core table and prose from a Bench only; run.py drives
it all. Adding a stage: docs/INTERNALS.md, "Where to add".
"""
from beexgen.bench.run import cores_main, main  # noqa: F401
