"""The generated C project of an artifact: sources, kernel files by ISA, and the build files.

    proj = write_project(art, "build/host", target="host", board_name="host", cost_unit="ns")

writes, into the project directory:
- src/: the rendered model (`bx_numerics.h bx_model.h bx_model_data.c bx_forward.c`),
  `bx_status.h`, the vocabulary (codegen/vocab.py), `bx_board.h`, the public header
  `bx_classifier.h`, the portable engine and tokenizer, the kernel files of the target
  (KERNEL_FILES) and the application files the caller names (the protocol loop and a
  platform: beexgen's host emulator and firmware; none for an exported library);
- bx_flags.cmake and bx_flags.mk: the compile flags (codegen/cflags.py) and the source
  lists, one Python definition written in the two syntaxes;
- CMakeLists.txt and Makefile, which read them: a static library named after the prefix
  and, when the project has application files, the program.

beexgen's own builds (codegen/build.py build_host, codegen/firmware.py build_firmware)
run `make` on this Makefile, so they compile what a user's CMake or Make build compiles.
`export_c` (codegen/export.py) writes the same tree with a symbol prefix and the
metadata of a Zephyr module, a PlatformIO or an Arduino library.

Kernel files by ISA. KERNEL_FILES maps an instruction-set family to its hand-written
kernel files; target_isas lists a target's families, and only those files are written
into a tree. An ISA family's header (bx_kernels_x86.h, bx_kernels_arm.h) defines
BX_HAVE_<KERNEL> for each engine-facing kernel its .c file defines; bx_kernels.h includes
the ISA headers present in the tree (__has_include) and bx_kernels.c defines every other
kernel from its portable path. No weak symbols: a kernel defined twice or never is a
build error. Adding a kernel path is one file (and its header) and one entry in
KERNEL_FILES.

Everything here is numpy + jinja2: never torch. Same artifact and arguments =>
byte-identical files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import cflags, render, vocab
from beexgen.core.protocol import LINE_MAX

# Hand-written C of the library on every target (kernels: KERNEL_FILES).
ENGINE_SOURCES = ["bx_math.h", "bx_engine.h", "bx_engine.c", "bx_tokenizer.h", "bx_tokenizer.c", "bx_wide.h",
                  "bx_wide.c", "bx_selftest.c"]
# The serial-protocol application: the main loop over a target's bx_platform.h.
PROTOCOL_SOURCES = ["bx_platform.h", "bx_protocol.h", "bx_protocol.c", "main.c"]
PUBLIC_HEADER = "bx_classifier.h"
BOARD_HEADER = "bx_board.h"
GOLDEN_HEADER = "bx_golden.h"
KERNEL_FILES = {
    "portable": ["bx_internal.h", "bx_kernels.h", "bx_kernels.c"],   # bx_internal.h: every private header's
    "x86": ["bx_kernels_x86.h", "bx_kernels_x86.c"],
    "arm_thumb2": ["bx_kernels_arm.h", "bx_kernels_arm.c"],     # Thumb-2 + VFP cores (codegen/cores.toml)
    "arm_dsp": ["bx_kernels_arm_dsp.c"],                         # cores with the DSP extension (--dsp)
}
# The kernel family whose bx_binlinear reads the slices layout (its header defines
# BX_BINLINEAR_SLICES; beexgen/core/slices.py): its targets' weights are written so.
SLICES_ISA = "arm_thumb2"
HOST, PORTABLE = "host", "portable"
SRC = "src"
FLAGS_CMAKE, FLAGS_MK = "bx_flags.cmake", "bx_flags.mk"
LINE_MAX_MIN = 16            # room for every command and its arguments
LINE_MAX_MAX = 1 << 16
C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PREFIX = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
from beexgen.codegen.layout import DEFAULT_PREFIX  # noqa: E402  (defined once, with the formats)


def target_isas(target: str) -> list[str]:
    """The kernel families of a target: "host" (x86 emulator), "portable" (any C11
    compiler, any core) or a board name (its core's families)."""
    if target == HOST:
        return [PORTABLE, "x86"]
    if target == PORTABLE:
        return [PORTABLE]
    from beexgen.codegen import boards
    return [PORTABLE, *boards.get_board(target).cpu.kernels]    # UnknownBoardError lists the known ones


def binlinear_slices(target: str) -> bool:
    """Whether target's binary linear layers are written in the slices layout."""
    return SLICES_ISA in target_isas(target)


def kernel_files(target: str) -> list[str]:
    return [f for isa in target_isas(target) for f in KERNEL_FILES[isa]]


def arch_flags(target: str) -> list[str]:
    if target in (HOST, PORTABLE):
        return []
    from beexgen.codegen import boards
    return boards.get_board(target).arch_flags()


class ProjectError(ValueError):
    """Bad arguments for a generated project (board name, line length, defines, prefix)."""


def _check_defines(defines) -> list[tuple[str, str]]:
    pairs = list((defines or {}).items()) if isinstance(defines, dict) else list(defines or [])
    out = []
    for name, value in pairs:
        if not C_IDENT.fullmatch(str(name)):
            raise ProjectError(f"board define {name!r} is not a C identifier")
        value = str(value)
        if "\n" in value:
            raise ProjectError(f"board define {name} has a multi-line value {value!r}")
        out.append((str(name), value))
    return out


def render_board(out_dir: Path, banner: dict, *, board_name: str, cost_unit: str,
                 line_max: int, defines=None, library: bool = False) -> Path:
    """bx_board.h: BX_BOARD_NAME, BX_COST_UNIT, BX_LINE_MAX, the flow-control sizes and the
    board's own macros; library: BX_LINE_MAX alone (no serial or board setting)."""
    for what, s in (("board name", board_name), ("cost unit", cost_unit)):
        if not s or not all(33 <= ord(ch) < 127 and ch not in ",=" for ch in s):
            raise ProjectError(f"{what} {s!r} must be non-empty printable ASCII without spaces, ',' or '=' "
                               "(it is sent as a protocol field)")
    if not isinstance(line_max, int) or not LINE_MAX_MIN <= line_max <= LINE_MAX_MAX:
        raise ProjectError(f"line_max {line_max!r} must be an integer in [{LINE_MAX_MIN}, {LINE_MAX_MAX}]")
    defines = _check_defines(defines)
    from beexgen.core.protocol import link_defines    # flow-control sizes (issue 14); defines override
    link = [] if library else [d for d in link_defines(line_max) if d[0] not in {n for n, _ in defines}]
    return render.render_to(render.environment(), "bx_board.h.j2", Path(out_dir) / BOARD_HEADER,
                            banner=banner, board_name=board_name, cost_unit=cost_unit,
                            line_max=line_max, defines=defines, link=link, library=library)


def write_sources(art: art_mod.Artifact | str | Path, src_dir: str | Path, *, board_name: str,
                  cost_unit: str, line_max: int = LINE_MAX, defines=None, target: str = HOST,
                  app: list[str] = tuple(PROTOCOL_SOURCES), command: str = "beexgen build",
                  golden: list[dict] = ()) -> list[Path]:
    """Write the C sources of `art` for `target` into src_dir; return the files written.

    board_name, cost_unit: BX_BOARD_NAME, BX_COST_UNIT ("ns", "instr", "cycles").
    line_max: BX_LINE_MAX, the longest arguments of a buffered command (texts of any length
    are streamed); it also sizes the receive ring (protocol.ring_for). defines: extra (name, value) pairs (or a dict) emitted as
    `#define name value` in bx_board.h. app: hand-written application files to copy
    (default: the protocol loop; a platform file is the caller's to add). golden: the
    self-test's sentences and answers (codegen/selftest.py; none: bx_selftest returns -1)."""
    art = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    src = Path(src_dir)
    src.mkdir(parents=True, exist_ok=True)
    banner = render.banner(art, command)
    kernels = kernel_files(target)
    rendered = [*render.render_model(art, src, command, slices=binlinear_slices(target)),
                render.render_status(src), *vocab.render_vocab(art.tokenizer_json, src, banner),
                render_board(src, banner, board_name=board_name, cost_unit=cost_unit,
                             line_max=line_max, defines=defines, library=not app),
                render.render_to(render.environment(), PUBLIC_HEADER + ".j2", src / PUBLIC_HEADER,
                                 banner=banner),
                render.render_to(render.environment(), GOLDEN_HEADER + ".j2", src / GOLDEN_HEADER,
                                 banner=banner, golden=list(golden))]
    copied = ENGINE_SOURCES + kernels + list(app)
    clash = {p.name for p in rendered} & set(copied)
    if clash:
        raise RuntimeError(f"{sorted(clash)} are both rendered and copied: fix project.ENGINE_SOURCES")
    return rendered + render.copy_sources(copied, src)


# --------------------------------------------------------------------------- build files

@dataclass
class Flags:
    """The variables of bx_flags.cmake / bx_flags.mk. Paths are relative to the project
    directory; `{root}` in a flag is the project directory."""
    name: str
    arch: list[str]
    opt: list[str]
    warn: list[str]
    extra: list[str] = field(default_factory=list)       # target -D flags, stack usage
    lib_sources: list[str] = field(default_factory=list)
    app_sources: list[str] = field(default_factory=list)
    app_name: str = ""
    ldflags: list[str] = field(default_factory=list)
    ldlibs: list[str] = field(default_factory=list)

    def variables(self) -> list[tuple[str, list[str], str]]:
        """(variable, values, comment), in the order both files list them."""
        return [
            ("BX_NAME", [self.name], "library (and symbol prefix) name"),
            ("BX_ARCH_FLAGS", self.arch, "the core: CPU, FPU, float ABI (boards.Board.arch_flags)"),
            ("BX_STD_FLAGS", cflags.STD, "language"),
            ("BX_EXACT_FLAGS", cflags.EXACT, "C == PyTorch bit for bit needs these: keep them"),
            ("BX_OPT_FLAGS", self.opt, "optimisation (speed only, never results)"),
            ("BX_WARN_FLAGS", self.warn, "warnings"),
            ("BX_EXTRA_FLAGS", self.extra, "target defines"),
            ("BX_LIB_SOURCES", self.lib_sources, "the library"),
            ("BX_APP_SOURCES", self.app_sources, "the program (empty: a library only)"),
            ("BX_APP_NAME", [self.app_name] if self.app_name else [], "the program's file name"),
            ("BX_LDFLAGS", self.ldflags, "the program's link flags"),
            ("BX_LDLIBS", self.ldlibs, "the program's libraries"),
        ]


def render_build_files(out_dir: Path, flags: Flags, banner: dict) -> list[Path]:
    """bx_flags.cmake, bx_flags.mk, CMakeLists.txt and Makefile of the project in out_dir."""
    env = render.environment()
    cmake_vars = [(n, [v.replace("{root}", "${BX_DIR}") for v in vals], c) for n, vals, c in flags.variables()]
    mk_vars = [(n, [v.replace("{root}", "$(BX_DIR)") for v in vals], c) for n, vals, c in flags.variables()]
    ctx = dict(banner=banner, name=flags.name)
    return [render.render_to(env, "bx_flags.cmake.j2", out_dir / FLAGS_CMAKE, variables=cmake_vars, **ctx),
            render.render_to(env, "bx_flags.mk.j2", out_dir / FLAGS_MK, variables=mk_vars, **ctx),
            render.render_to(env, "CMakeLists.txt.j2", out_dir / "CMakeLists.txt", **ctx),
            render.render_to(env, "Makefile.j2", out_dir / "Makefile", **ctx)]


@dataclass
class Project:
    dir: Path
    files: list[Path]                  # every file written (sources and build files)
    flags: Flags

    @property
    def src(self) -> Path:
        return self.dir / SRC


def write_project(art: art_mod.Artifact | str | Path, out_dir: str | Path, *, target: str,
                  board_name: str, cost_unit: str, line_max: int = LINE_MAX, defines=None,
                  app: list[str] = (), opt: list[str] | None = None, werror: bool = True,
                  extra: list[str] = (), app_name: str = "", ldflags: list[str] = (),
                  ldlibs: list[str] = (), name: str = DEFAULT_PREFIX, command: str = "beexgen build",
                  golden: list[dict] = ()) -> Project:
    """The sources (write_sources) in out_dir/src and the build files in out_dir.

    target: "host", "portable" or a board name (kernel files and arch flags). app:
    application files to copy beside the library (protocol loop, platform); their .c
    files make the program app_name, linked with ldflags/ldlibs. opt: optimisation
    flags (default: the target's). extra: further compile flags of the target."""
    art = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    out = Path(out_dir)
    src = out / SRC
    files = write_sources(art, src, board_name=board_name, cost_unit=cost_unit, line_max=line_max,
                          defines=defines, target=target, app=app, command=command, golden=golden)
    app_names = set(app)
    rel = lambda ps: [f"{SRC}/{p.name}" for p in sorted(ps) if p.suffix == ".c"]
    if opt is None:
        opt = cflags.HOST_OPT if target == HOST else ["-O2"] if target == PORTABLE else cflags.ARM_OPT
    flags = Flags(name=name, arch=arch_flags(target), opt=list(opt),
                  warn=cflags.WARN + (cflags.WERROR if werror else []), extra=list(extra),
                  lib_sources=rel(p for p in files if p.name not in app_names),
                  app_sources=rel(p for p in files if p.name in app_names),
                  app_name=app_name if app_names else "", ldflags=list(ldflags), ldlibs=list(ldlibs))
    banner = render.banner(art, command)
    files += render_build_files(out, flags, banner)
    return Project(out, files, flags)
