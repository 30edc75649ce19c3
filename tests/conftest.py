"""Shared fixtures: tiny models trained on the real offline data sets (fetched in set-up)."""
from __future__ import annotations

import shutil
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
                  model=dict(d_model=32, n_heads=2, d_ff=48, n_blocks=3, seq_max=48, bigram_buckets=1024))


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


# --------------------------------------------------------------------------- tools

def needs(*tools):
    """Mark a test (or a module, via pytestmark) as needing these programs, or callables
    returning True when a tool is there. scripts/setup.sh installs all of them, so a
    missing one FAILS the test: a skip would hide a broken set-up on CI."""
    return pytest.mark.needs_tools.with_args(*tools)   # with_args: a lone callable is an argument


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_tools(*tools): programs the test needs (missing = failure)")


@pytest.fixture(autouse=True)
def _check_tools(request):
    for mark in request.node.iter_markers("needs_tools"):
        missing = [getattr(t, "__doc__", None) or getattr(t, "__name__", str(t)) if callable(t) else t
                   for t in mark.args if not (t() if callable(t) else shutil.which(t))]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: run `make setup` (scripts/setup.sh installs it)")
