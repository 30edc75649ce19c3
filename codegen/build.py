"""The generated C project of an artifact, and the x86 host-emulator build.

`generate_sources` writes one self-contained C folder (docs/INTERNALS.md, "Generated
project"): the rendered model, status codes, vocabulary and board header, and the
portable hand-written sources. A target adds its platform file and compiles it:
`build_host` adds platform_host.c and builds the host emulator with gcc (the Cortex-M4
build lives in codegen/firmware.py).

Everything here is numpy + jinja2 + subprocess: never torch.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import render, vocab

# -fno-trapping-math lets gcc turn selects into SIMD blends (it only gives up exact FP
# exception flags, which nothing reads); -ffp-contract=off and no -ffast-math keep every
# float operation and its order, so results stay bit-identical to the M4 and PyTorch.
HOST_CFLAGS = ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-math-errno",
               "-fno-trapping-math"]


def _host_cpu_flags() -> set[str]:
    """The feature flags of the build machine's CPU (the emulator runs where it is built)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# Instruction sets the kernels' x86 paths use (bx_kernels.c), each enabled when the build
# machine has every CPU flag it needs: (name, gcc options, /proc/cpuinfo flags). Their
# integer work is exact and their float work is the same IEEE operations in the same
# order, so they change speed, never results. None of them enables FMA, and
# -ffp-contract=off above keeps gcc from fusing a multiply and an add even where AVX-512
# has the instruction. Each level needs the ones before it.
HOST_ISA_LEVELS = (
    ("popcnt", ["-mpopcnt"], {"popcnt"}),
    ("avx2", ["-mavx2"], {"avx2"}),
    ("avx512", ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vpopcntdq"],
     {"avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq"}),
)
HOST_ISA_NAMES = ("portable",) + tuple(name for name, _, _ in HOST_ISA_LEVELS)


def host_isa_levels(cpu_flags: set[str] | None = None) -> dict[str, list[str]]:
    """The x86 kernel paths a CPU (default: this machine's) can run, name -> gcc options:
    "portable" (no x86 extension: the code the Cortex-M4 compiles, with the portable
    popcount), then each level of HOST_ISA_LEVELS it has, in order; the last is the fastest."""
    cpu = _host_cpu_flags() if cpu_flags is None else cpu_flags
    out, opts = {"portable": []}, []
    for name, level_opts, need in HOST_ISA_LEVELS:
        if not need <= cpu:
            break
        opts = opts + level_opts
        out[name] = opts
    return out


HOST_OPT_CFLAGS = list(host_isa_levels().values())[-1]
SANITIZE_CFLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1"]
HOST_PLATFORM = "platform_host.c"
HOST_EXE = "bx_host"
MANIFEST = "build.json"
BOARD_HEADER = "bx_board.h"
LINE_MAX_MIN = 16            # room for every command and its arguments
LINE_MAX_MAX = 1 << 16
C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Sections of an object file that occupy RAM: initialised and zeroed statics. Read-only
# data (.rodata, and .data.rel.ro for the pointer tables of a PIE build) is flash.
RAM_SECTION = re.compile(r"^\.(data|bss)(\.|$)|^COMMON$")
RO_SECTION = re.compile(r"^\.data\.rel\.ro")


class BuildError(RuntimeError):
    """A C build failed; the message carries the compiler command and its stderr."""


def _as_artifact(art: art_mod.Artifact | str | Path) -> art_mod.Artifact:
    return art if isinstance(art, art_mod.Artifact) else art_mod.load(art)


def _check_defines(defines) -> list[tuple[str, str]]:
    pairs = list((defines or {}).items()) if isinstance(defines, dict) else list(defines or [])
    out = []
    for name, value in pairs:
        if not C_IDENT.fullmatch(str(name)):
            raise ValueError(f"board define {name!r} is not a C identifier")
        value = str(value)
        if "\n" in value:
            raise ValueError(f"board define {name} has a multi-line value {value!r}")
        out.append((str(name), value))
    return out


def render_board(out_dir: Path, banner: dict, *, board_name: str, cost_unit: str,
                 line_max: int, defines=None) -> Path:
    """bx_board.h: BX_BOARD_NAME, BX_COST_UNIT, BX_LINE_MAX and the board's own macros."""
    for what, s in (("board name", board_name), ("cost unit", cost_unit)):
        if not s or not all(33 <= ord(ch) < 127 and ch not in ",=" for ch in s):
            raise ValueError(f"{what} {s!r} must be non-empty printable ASCII without spaces, ',' or '=' "
                             "(it is sent as a protocol field)")
    if not isinstance(line_max, int) or not LINE_MAX_MIN <= line_max <= LINE_MAX_MAX:
        raise ValueError(f"line_max {line_max!r} must be an integer in [{LINE_MAX_MIN}, {LINE_MAX_MAX}]")
    defines = _check_defines(defines)
    from beexgen.core.protocol import link_defines    # flow-control sizes (issue 14); defines override
    link = [d for d in link_defines(line_max) if d[0] not in {n for n, _ in defines}]
    return render.render_to(render.environment(), "bx_board.h.j2", Path(out_dir) / BOARD_HEADER,
                            banner=banner, board_name=board_name, cost_unit=cost_unit,
                            line_max=line_max, defines=defines, link=link)


def generate_sources(art: art_mod.Artifact | str | Path, src_dir: str | Path, *, board_name: str,
                     cost_unit: str, line_max: int = 512, defines=None,
                     command: str = "beexgen build") -> list[Path]:
    """Write the portable C project of `art` into src_dir; return the files written.

    board_name, cost_unit: BX_BOARD_NAME, BX_COST_UNIT ("ns", "instr", "cycles").
    line_max: BX_LINE_MAX, request bytes per line. defines: extra (name, value) pairs
    (or a dict) emitted as `#define name value` in bx_board.h. The platform file of the
    target is not included. Same artifact and arguments => byte-identical files."""
    art = _as_artifact(art)
    src = Path(src_dir)
    src.mkdir(parents=True, exist_ok=True)
    banner = {"command": command, "format_version": art.meta["format_version"], "hash": art.hash}
    rendered = [*render.render_model(art, src, command), render.render_status(src),
                *vocab.render_vocab(art.tokenizer_json, src, banner),
                render_board(src, banner, board_name=board_name, cost_unit=cost_unit,
                             line_max=line_max, defines=defines)]
    clash = {p.name for p in rendered} & set(render.ENGINE_SOURCES)
    if clash:
        raise RuntimeError(f"{sorted(clash)} are both rendered and copied: fix render.ENGINE_SOURCES")
    return rendered + render.copy_sources(render.ENGINE_SOURCES, src)


# --------------------------------------------------------------------------- host build

def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{' '.join(cmd)}\n{r.stderr[-8000:]}")


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


def build_host(art_or_dir: art_mod.Artifact | str | Path, out_dir: str | Path, *, sanitize: bool = False,
               line_max: int = 512, command: str = "beexgen build --target host",
               jobs: int = 2, isa: str | None = None) -> Path:
    """Generate the project into out_dir/src, add platform_host.c and compile the host
    emulator out_dir/bx_host with gcc. Returns the executable's path.

    The emulator reads requests on stdin and writes replies on stdout (pipes or a raw
    pty); cost is in ns. sanitize=True builds with ASan + UBSan. isa picks the x86 kernel
    path by name (host_isa_levels(); None: the fastest this machine has). Writes
    out_dir/build.json: sources, artifact hash, flags and the static RAM of the portable
    code (`ram_bytes`: .data + .bss of every object except the platform file).
    Raises BuildError with gcc's stderr when compiling fails."""
    art = _as_artifact(art_or_dir)
    levels = host_isa_levels()
    if isa is not None and isa not in levels:
        raise BuildError(f"x86 path {isa!r} is not available on this machine (it has: {', '.join(levels)}; "
                         f"known: {', '.join(HOST_ISA_NAMES)})")
    isa = isa or list(levels)[-1]
    out = Path(out_dir)
    src, obj = out / "src", out / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    files = generate_sources(art, src, board_name="host", cost_unit="ns", line_max=line_max,
                             command=command)
    files += render.copy_sources([HOST_PLATFORM], src)
    cflags = HOST_CFLAGS + levels[isa] + (SANITIZE_CFLAGS if sanitize else [])
    c_files = sorted(p for p in files if p.suffix == ".c")
    objects = [obj / (p.stem + ".o") for p in c_files]

    def compile_one(pair):
        c, o = pair
        _run(["gcc", *cflags, f"-I{src}", "-c", "-o", str(o), str(c)], f"compiling {c.name}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(compile_one, zip(c_files, objects)))
    exe = out / HOST_EXE
    _run(["gcc", *cflags, "-o", str(exe), *map(str, objects)], "linking the host emulator")

    ram = ram_of_objects([o for o in objects if o.stem != Path(HOST_PLATFORM).stem])
    manifest = {
        "target": "host", "board": "host", "unit": "ns", "line_max": line_max,
        "artifact_hash": art.hash, "artifact": str(art.path) if art.path else None,
        "executable": str(exe), "sanitize": sanitize,
        "isa": isa, "cc": "gcc", "cflags": cflags,
        "sources": [p.relative_to(out).as_posix() for p in sorted(files)],
        "ram_bytes": sum(ram.values()), "ram_by_source": ram,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return exe


def main(argv: list[str] | None = None) -> int:
    """python -m beexgen.codegen.build ARTIFACT OUT_DIR [--sanitize]"""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    exe = build_host(argv[0], argv[1], sanitize="--sanitize" in argv[2:])
    print(exe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
