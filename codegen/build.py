"""The x86 host emulator: the generated project (codegen/project.py) with platform_host.c,
built by its generated Makefile with the system gcc.

Everything here is numpy + jinja2 + subprocess: never torch.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import cflags, project, selftest
from beexgen.codegen.cflags import HOST_ISA_NAMES, host_isa_levels  # noqa: F401  (the CLI and bench use them)

HOST_PLATFORM = "platform_host.c"
HOST_EXE = "bx_host"
MANIFEST = "build.json"
# Sections of an object file that occupy RAM: initialised and zeroed statics. Read-only
# data (.rodata, and .data.rel.ro for the pointer tables of a PIE build) is flash.
RAM_SECTION = re.compile(r"^\.(data|bss)(\.|$)|^COMMON$")
RO_SECTION = re.compile(r"^\.data\.rel\.ro")


class BuildError(RuntimeError):
    """A C build failed; the message carries the compiler command and its stderr."""


def _as_artifact(art: art_mod.Artifact | str | Path) -> art_mod.Artifact:
    return art if isinstance(art, art_mod.Artifact) else art_mod.load(art)


# --------------------------------------------------------------------------- host build

def ram_of_objects(objects: list[Path]) -> dict[str, int]:
    """Bytes of static RAM (.data + .bss) per object file, read with binutils `size -A`."""
    out = {}
    for o in objects:
        r = subprocess.run(["size", "-A", str(o)], capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"size -A {o} failed:\n{r.stderr}")
        total = 0
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit() and RAM_SECTION.search(parts[0]) \
                    and not RO_SECTION.search(parts[0]):
                total += int(parts[1])
        out[o.name.removesuffix(".o") + ".c"] = total
    return out


def run_make(project_dir: Path, target: str, jobs: int = 2, cc: str = "gcc", variables: dict | None = None,
             what: str = "building") -> subprocess.CompletedProcess:
    """`make -C project_dir target` on a generated Makefile, with the environment's
    CFLAGS/LDFLAGS/LDLIBS cleared (beexgen's builds use the generated flags alone).
    Raises BuildError with make's output when it fails."""
    cmd = ["make", "-C", str(project_dir), f"-j{max(1, jobs)}", "--no-print-directory", target,
           f"CC={cc}", "CFLAGS=", "LDFLAGS=", "LDLIBS="]
    cmd += [f"{k}={v}" for k, v in (variables or {}).items()]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{' '.join(cmd)}\n"
                         f"{(r.stdout[-3000:] + r.stderr[-8000:]).strip()}")
    return r


def build_host(art_or_dir: art_mod.Artifact | str | Path, out_dir: str | Path, *, sanitize: bool = False,
               line_max: int = project.LINE_MAX, command: str = "beexgen build --target host",
               jobs: int = 2, isa: str | None = None, golden: list[dict] | None = None) -> Path:
    """Generate the project into out_dir (src/ and the build files: codegen/project.py),
    add platform_host.c and build the host emulator out_dir/bx_host with its Makefile and
    gcc. Returns the executable's path.

    The emulator reads requests on stdin and writes replies on stdout (pipes or a raw
    pty); cost is in ns. sanitize=True builds with ASan + UBSan. isa picks the x86 kernel
    path by name (host_isa_levels(); None: the fastest this machine has). Writes
    out_dir/build.json: sources, artifact hash, flags and the static RAM of the portable
    code (`ram_bytes`: .data + .bss of every object except the platform file).
    golden: the self-test's sentences (codegen/selftest.py; None: the training run's).
    Raises BuildError with gcc's stderr when compiling fails."""
    art = _as_artifact(art_or_dir)
    levels = host_isa_levels()
    if isa is not None and isa not in levels:
        raise BuildError(f"x86 path {isa!r} is not available on this machine (it has: {', '.join(levels)}; "
                         f"known: {', '.join(HOST_ISA_NAMES)})")
    isa = isa or list(levels)[-1]
    out = Path(out_dir)
    opt = cflags.HOST_OPT + levels[isa] + (cflags.SANITIZE if sanitize else [])
    proj = project.write_project(art, out, target=project.HOST, board_name="host", cost_unit="ns",
                                 line_max=line_max, app=project.PROTOCOL_SOURCES + [HOST_PLATFORM],
                                 opt=opt, app_name=HOST_EXE, command=command,
                                 golden=selftest.default_golden(art, line_max) if golden is None else golden)
    exe = out / HOST_EXE
    exe.unlink(missing_ok=True)
    run_make(out, "app", jobs=jobs, what="building the host emulator")
    obj = out / "obj"
    objects = [obj / (Path(p).stem + ".o") for p in proj.flags.lib_sources + proj.flags.app_sources]
    ram = ram_of_objects([o for o in objects if o.stem != Path(HOST_PLATFORM).stem])
    manifest = {
        "target": "host", "board": "host", "unit": "ns", "line_max": line_max,
        "artifact_hash": art.hash, "artifact": str(art.path) if art.path else None,
        "executable": str(exe), "sanitize": sanitize,
        "isa": isa, "cc": "gcc", "cflags": proj.flags.arch + cflags.STD + proj.flags.opt + proj.flags.warn
        + cflags.EXACT,
        "sources": [p.relative_to(out).as_posix() for p in sorted(proj.files)],
        "ram_bytes": sum(ram.values()), "ram_by_source": ram,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return exe
