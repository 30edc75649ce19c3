"""Shared fixtures: tiny models trained on the real offline data sets (fetched in set-up)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# Tiny models gain nothing from threads, and on a shared 2-core machine OpenMP's
# spinning threads slow everything else (QEMU, the emulators) down.
torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))   # tests/fixtures.py, tests/cbuild.py

# Tiny but trained: enough to make exits, ties and policies non-trivial, seconds to train.
TINY_TRAIN = dict(seed=0, epochs=3, batch_size=32, lr=3e-3, vocab_size=800, max_train=1500,
                  model=dict(d_model=32, n_heads=2, d_ff=48, n_blocks=3, seq_max=48))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """trained(dataset) -> run directory with an exported artifact (cached per session)."""
    from beexgen.train import data
    from beexgen.train.export import export_run
    from beexgen.train.trainer import TrainConfig, train

    cache: dict[str, Path] = {}

    def get(dataset: str) -> Path:
        if dataset not in cache:
            if not (data.cache_dir() / f"{dataset}.jsonl").is_file():
                pytest.fail(f"{dataset} is not in {data.cache_dir()}: run `make setup` first")
            out = tmp_path_factory.mktemp(f"run_{dataset}")
            train(TrainConfig(dataset=dataset, out=str(out), **TINY_TRAIN), progress=False)
            export_run(out)
            cache[dataset] = out
        return cache[dataset]
    return get
