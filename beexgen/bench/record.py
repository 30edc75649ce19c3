"""The bench's result: one dataclass per stage, and docs/bench.json written from them
(and read back into them) with no other source. A data set's entry in the JSON is the
union of its stages' fields (the names are unique across stages: test_bench checks)."""
from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from beexgen.bench.accuracy import Accuracy
from beexgen.bench.common import from_json, stage_keys, to_json
from beexgen.bench.cores import CoreResult
from beexgen.bench.kernels import Kernel
from beexgen.bench.latency import Latency
from beexgen.bench.m4 import M4
from beexgen.bench.parity import Parity
from beexgen.bench.policies import Policies
from beexgen.bench.size import Size
from beexgen.bench.tune import TuneBench
from beexgen.bench.speed import HostSpeed


@dataclass
class DatasetBench:
    """Every per-data-set stage (a new stage: one field here, its module beside the others)."""
    accuracy: Accuracy = field(default_factory=Accuracy)
    policies: Policies = field(default_factory=Policies)
    size: Size = field(default_factory=Size)
    m4: M4 = field(default_factory=M4)
    speed: HostSpeed = field(default_factory=HostSpeed)
    parity: Parity = field(default_factory=Parity)
    latency: Latency = field(default_factory=Latency)

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            out.update(to_json(getattr(self, f.name)))
        return out

    @classmethod
    def from_json(cls, d: dict) -> "DatasetBench":
        return cls(**{name: from_json(st, {k: d[k] for k in stage_keys(st) if k in d})
                      for name, st in stages().items()})


def stages() -> dict[str, type]:
    """The per-data-set stage classes by DatasetBench field."""
    hints = typing.get_type_hints(DatasetBench)
    return {f.name: hints[f.name] for f in fields(DatasetBench)}


@dataclass
class Meta:
    command: str = "beexgen bench"
    machine: str = ""
    date: str = ""
    minutes: float = 0.0
    commit: str = ""
    train_seconds: dict[str, float] = field(default_factory=dict)   # run -> seconds, the runs trained this time


@dataclass
class Bench:
    meta: Meta = field(default_factory=Meta)
    datasets: dict[str, DatasetBench] = field(default_factory=dict)
    kernel: Kernel = field(default_factory=Kernel)
    cores: dict[str, CoreResult] = field(default_factory=dict)
    tune: TuneBench | None = None          # the fixed-budget `beexgen tune` (bench/tune.py)

    def to_json(self) -> dict:
        out = {"meta": to_json(self.meta), "datasets": {k: v.to_json() for k, v in self.datasets.items()},
               "kernel": to_json(self.kernel), "cores": {k: to_json(v) for k, v in self.cores.items()}}
        if self.tune is not None:
            out["tune"] = self.tune.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Bench":
        return cls(meta=from_json(Meta, d.get("meta", {})),
                   datasets={k: DatasetBench.from_json(v) for k, v in d.get("datasets", {}).items()},
                   kernel=from_json(Kernel, d.get("kernel", {})),
                   cores={k: from_json(CoreResult, v) for k, v in d.get("cores", {}).items()},
                   tune=TuneBench.from_json(d["tune"]) if d.get("tune") else None)

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "Bench":
        return cls.from_json(json.loads(Path(path).read_text()))
