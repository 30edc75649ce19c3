"""The Cortex-M firmware build: generated project + start-up + board drivers + platform,
compiled with arm-none-eabi-gcc, checked against the board's flash, RAM and stack.

    build = build_firmware("runs/art", "nucleo-f411re", "build/f411")
    print(format_size_table(build))

Output in out_dir: src/ (the C project and the rendered linker script cortexm.ld), obj/
(objects, .su stack-usage and .ci call-graph files), fw.elf, fw.bin, fw.hex, fw.map and
build.json. Raises FirmwareTooBig (its message is the size table) when the image does not
fit the flash, the statics plus the reserved stack do not fit the RAM, or the worst-case
stack exceeds the reserved stack.

Worst-case stack. gcc's -fstack-usage gives each function's frame and
-fcallgraph-info=su its direct callees; the worst case is the deepest path from the reset
handler, plus the UART interrupt preempting it at its deepest point, plus a fault handler
on top (every exception pushes an extended frame of 26 words = 104 bytes with the FPU
context, plus 4 bytes of alignment). Functions without a frame size (the C library:
memcpy, memset, memcmp, strlen, ...) count LIBRARY_FRAME_BOUND bytes each; an indirect
call counts as the deepest path of any function in the firmware. A recursive cycle makes
the bound unknown (reported, not an error). `stack_bytes` is what the linker reserves.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import selftest
from beexgen.codegen import boards as boards_mod
from beexgen.codegen import build as build_mod
from beexgen.codegen import cflags, project, render

CC = "arm-none-eabi-gcc"
OBJCOPY = "arm-none-eabi-objcopy"
READELF = "arm-none-eabi-readelf"
NM = "arm-none-eabi-nm"
# The firmware's platform: start-up, core registers and the generic Cortex-M platform
# (the board's UART, counter and clock drivers are added by kind: board.driver_files();
# the kernel files come from codegen/project.py by the core's kernel families).
CM4_SOURCES = ["startup_cortexm.c", "platform_cortexm.c", "bx_cortexm.h"]
LINKER_TEMPLATE = "cortexm.ld.j2"
DEFAULT_STACK = 8192
EXCEPTION_FRAME = 104 + 4          # FP-extended exception frame + alignment (the core record's exception_frame)
LIBRARY_FRAME_BOUND = 64           # newlib string functions are leaves with small frames
FW = "fw"


class FirmwareTooBig(RuntimeError):
    """The firmware does not fit the board: the message is the size table."""

    def __init__(self, message: str, build: "FirmwareBuild"):
        super().__init__(message)
        self.build = build


@dataclass
class StackReport:
    worst: int | None                 # bytes, None when unbounded (recursion, dynamic alloca)
    main_path: list[str]              # deepest call chain from the reset handler
    main_bytes: int
    isr_bytes: int                    # UART interrupt handler path
    fault_bytes: int                  # fault handler path
    notes: list[str] = field(default_factory=list)


@dataclass
class FirmwareBuild:
    board: str
    out_dir: Path
    elf: Path
    bin: Path
    hex: Path
    map: Path
    flash_used: int
    flash_total: int
    flash_parts: dict                 # "code+rodata", "data image", "vectors"
    ram_used: int                     # everything the linker reserves in RAM
    ram_total: int
    ram_parts: dict                   # "stack (reserved)", "data", "bss", "heap (min)"
    stack_reserved: int
    stack: StackReport
    semihosting: bool
    dsp: bool
    cflags: list[str]
    largest: dict = field(default_factory=dict)   # "flash"/"RAM" -> [(symbol, bytes)], biggest first

    @property
    def fits(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        if self.flash_used > self.flash_total:
            out.append(f"flash: {self.flash_used} B used > {self.flash_total} B")
        if self.ram_used > self.ram_total:
            out.append(f"RAM: {self.ram_used} B (statics + reserved stack) > {self.ram_total} B")
        if self.stack.worst is not None and self.stack.worst > self.stack_reserved:
            out.append(f"stack: worst case {self.stack.worst} B > {self.stack_reserved} B reserved")
        return out


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f}%" if b else "  -  "


def format_size_table(b: FirmwareBuild) -> str:
    """Flash, RAM and stack of a build against the board's budget, one row each."""
    board = boards_mod.get_board(b.board)
    parts = lambda d: ", ".join(f"{k} {v:,}" for k, v in d.items())
    s = b.stack
    worst = f"{s.worst:,} B" if s.worst is not None else "unbounded"
    rows = [
        f"board {b.board}: {board.description}",
        f"  {'':6} {'used':>12} {'total':>12}  {'use':>6}",
        f"  {'flash':6} {b.flash_used:>10,} B {b.flash_total:>10,} B  {_pct(b.flash_used, b.flash_total)}"
        f"   ({parts(b.flash_parts)})",
        f"  {'RAM':6} {b.ram_used:>10,} B {b.ram_total:>10,} B  {_pct(b.ram_used, b.ram_total)}"
        f"   ({parts(b.ram_parts)})",
        f"  {'stack':6} {worst:>12} {b.stack_reserved:>10,} B  "
        f"{_pct(s.worst, b.stack_reserved) if s.worst is not None else '  ?   '}"
        f"   (worst case: main path {s.main_bytes:,} + UART interrupt {s.isr_bytes:,} + fault {s.fault_bytes:,}"
        f" + 2 exception frames {2 * board.cpu.exception_frame})",
        f"  deepest path: {' > '.join(s.main_path)}",
    ]
    rows += [f"  note: {n}" for n in s.notes]
    for region, syms in b.largest.items():
        if syms:
            rows.append(f"  largest in {region}: " + ", ".join(f"{n} {v:,}" for n, v in syms))
    probs = b.problems()
    rows.append("  DOES NOT FIT: " + "; ".join(probs) if probs else "  fits")
    return "\n".join(rows)


# --------------------------------------------------------------------------- build steps

def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise build_mod.BuildError(f"{what} failed (exit {r.returncode}):\n{' '.join(cmd)}\n{r.stderr[-8000:]}")
    return r


def check_toolchain() -> None:
    if shutil.which(CC) is None:
        raise build_mod.BuildError(
            f"{CC} not found: install the Cortex-M toolchain (Debian: apt-get install -y "
            "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi)")


def render_linker_script(board: boards_mod.Board, out: Path, stack_bytes: int, heap_bytes: int = 0) -> Path:
    return render.render_to(render.environment(), LINKER_TEMPLATE, out, board=board,
                            stack_bytes=stack_bytes, heap_bytes=heap_bytes)


_SECTION = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*)")


def elf_sections(elf: Path) -> list[tuple[str, str, int, int]]:
    """Allocated sections of an ELF: (name, type, address, size)."""
    r = _run([READELF, "-S", "-W", str(elf)], "readelf")
    out = []
    for line in r.stdout.splitlines():
        m = _SECTION.match(line)
        if m and "A" in m.group(5) and int(m.group(4), 16):
            out.append((m.group(1), m.group(2), int(m.group(3), 16), int(m.group(4), 16)))
    return out


def memory_use(board: boards_mod.Board, sections) -> tuple[dict, dict]:
    flash = {"vectors": 0, "code+rodata": 0, "data image": 0}
    ram = {"stack (reserved)": 0, "data": 0, "bss": 0, "heap (min)": 0}
    for name, typ, addr, size in sections:
        if board.flash.origin <= addr < board.flash.origin + (1 << 28) and addr < board.ram.origin:
            flash["vectors" if name == ".isr_vector" else "code+rodata"] += size
        else:
            key = {".stack": "stack (reserved)", ".heap": "heap (min)"}.get(name)
            if key is None:
                key = "bss" if typ == "NOBITS" else "data"
            ram[key] += size
            if typ != "NOBITS":
                flash["data image"] += size
    return flash, ram


def largest_symbols(board: boards_mod.Board, elf: Path, n: int = 4) -> dict:
    """The n biggest symbols in flash and in RAM (nm --size-sort), to say what to shrink."""
    r = _run([NM, "-S", "--size-sort", "-r", str(elf)], "nm")
    out = {"flash": [], "RAM": []}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[3].startswith("__"):
            continue
        addr, size, name = int(parts[0], 16), int(parts[1], 16), parts[3]
        region = "RAM" if board.ram.origin <= addr < board.ram.origin + (1 << 28) else "flash"
        if len(out[region]) < n:
            out[region].append((name, size))
    return out


# --------------------------------------------------------------------------- stack analysis

_CI_NODE = re.compile(r'^node: \{ title: "([^"]+)" label: "([^"]*)"')
_CI_EDGE = re.compile(r'^edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_CI_BYTES = re.compile(r"\\n(\d+) bytes \(([^)]*)\)")


def read_callgraph(obj_dir: Path) -> tuple[dict[str, tuple[int, str]], dict[str, set[str]]]:
    """Frames {function: (bytes, qualifier)} and edges {caller: {callees}} from gcc's .ci files."""
    frames, edges = {}, {}
    for ci in sorted(obj_dir.glob("*.ci")):
        for line in ci.read_text().splitlines():
            m = _CI_NODE.match(line)
            if m:
                b = _CI_BYTES.search(m.group(2))
                if b:
                    frames[m.group(1)] = (int(b.group(1)), b.group(2))
                continue
            m = _CI_EDGE.match(line)
            if m:
                edges.setdefault(m.group(1), set()).add(m.group(2))
    return frames, edges


ROOTS = {"bx_reset_handler", "main", "bx_uart_irq_entry", "bx_uart_irq_handler", "bx_default_handler",
         "bx_fault_report"}


def _short(fn: str) -> str:
    """'/abs/src/bx_engine.c:norm_binlinear.constprop.0' -> 'bx_engine.c:norm_binlinear'."""
    file, sep, name = fn.rpartition(":")
    name = name.split(".")[0]
    return f"{Path(file).name}:{name}" if sep else name


def stack_analysis(obj_dir: Path, exception_frame: int = EXCEPTION_FRAME) -> StackReport:
    frames, edges = read_callgraph(obj_dir)
    notes, library, unbounded = [], set(), []
    memo: dict[str, tuple[int, list[str]]] = {}
    on_path: list[str] = []
    recursion: list[str] = []

    def deepest(fn: str) -> tuple[int, list[str]]:
        if fn in memo:
            return memo[fn]
        if fn in on_path:
            recursion.append(" > ".join(on_path[on_path.index(fn):] + [fn]))
            return 0, [fn + " (recursion)"]
        if fn == "__indirect_call":      # any function but the roots and the callers on the path
            cands = [f for f in frames if f not in ROOTS and f not in on_path]
            best = max((deepest(f) for f in cands), default=(0, []), key=lambda t: t[0])
            return best[0], ["(indirect)"] + best[1]
        if fn not in frames:
            # A weak kernel of bx_kernels.c ("src/bx_kernels.c:bx_layernorm", an alias
            # without a frame of its own) runs the strong definition of an ISA file when
            # the build has one, else the portable path it aliases.
            base = fn.rpartition(":")[2]
            for cand in (base, base + "_portable", base + "_ref"):
                if cand != fn and cand in frames:
                    return deepest(cand)
            library.add(fn)
            return LIBRARY_FRAME_BOUND, [fn]
        own, qual = frames[fn]
        if qual.startswith("dynamic") and "bounded" not in qual:
            unbounded.append(fn)
        on_path.append(fn)
        sub = max((deepest(c) for c in sorted(edges.get(fn, ()))), default=(0, []), key=lambda t: t[0])
        on_path.pop()
        memo[fn] = (own + sub[0], [fn] + sub[1])
        return memo[fn]

    main_bytes, main_path = deepest("bx_reset_handler")
    isr_bytes, _ = deepest("bx_uart_irq_entry")          # the vector: it calls the driver's handler
    fault_bytes = max(deepest("bx_fault_report")[0], deepest("bx_default_handler")[0])
    worst = main_bytes + isr_bytes + fault_bytes + 2 * exception_frame
    if library:
        notes.append(f"library functions counted as {LIBRARY_FRAME_BOUND} B each: {', '.join(sorted(library))}")
    if recursion:
        notes.append("recursion, stack bound unknown: " + "; ".join(sorted(set(recursion))))
    if unbounded:
        notes.append("unbounded dynamic frames: " + ", ".join(sorted(set(unbounded))))
    if "bx_reset_handler" not in frames:
        notes.append("no call graph for the reset handler (gcc without -fcallgraph-info?)")
    main_path = [_short(f) if not f.startswith("(") else f for f in main_path]
    return StackReport(None if recursion or unbounded else worst, main_path, main_bytes, isr_bytes,
                       fault_bytes, notes)


# --------------------------------------------------------------------------- the build

def build_firmware(art_or_dir: art_mod.Artifact | str | Path, board_name: str, out_dir: str | Path, *,
                   dsp: bool = False, cmsis_include: str | Path | None = None,
                   semihosting: bool | None = None, stack_bytes: int | None = None,
                   heap_bytes: int = 0, line_max: int | None = None, defines=None,
                   command: str | None = None, golden: list[dict] | None = None) -> FirmwareBuild:
    """Generate, compile and link the firmware of an artifact for a board.

    dsp: compile the kernels' Cortex-M4 DSP path (-DBX_USE_DSP). cmsis_include: a CMSIS
    Core include dir (core_cm4.h) to take the core register definitions from.
    semihosting: build in semihosting exit/fault reporting (default: on for the QEMU
    boards, off for real boards, where a semihosting call without a debugger faults).
    stack_bytes: stack the linker reserves. defines: extra (name, value) pairs or a dict
    for bx_board.h (e.g. {"BX_RX_RING": 256}, the receive ring's entries). golden: the
    self-test's sentences (codegen/selftest.py; None: from the training run's test split
    beside the artifact, if any; `!selftest` answers -1 without them).
    Raises FirmwareTooBig when it does not fit, build.BuildError when compiling fails,
    boards.UnknownBoardError for an unknown board."""
    board = boards_mod.get_board(board_name)
    stack_bytes = stack_bytes or board.default_stack or DEFAULT_STACK
    line_max = line_max or board.line_max or project.LINE_MAX      # request bytes per line (BX_LINE_MAX)
    check_toolchain()
    if stack_bytes < 1024 or stack_bytes % 8:
        raise ValueError(f"stack_bytes {stack_bytes}: want a multiple of 8, at least 1024")
    art = art_mod.load(art_or_dir) if not isinstance(art_or_dir, art_mod.Artifact) else art_or_dir
    if isinstance(art_or_dir, art_mod.Artifact):      # load() validated the other case
        art_mod.validate(art.meta, art.tensors, art.tokenizer_json, where=str(art.path or "artifact"))
    semihosting = board.emulated if semihosting is None else bool(semihosting)
    command = command or f"beexgen build --target cortex-m --board {board.name}" + (" --dsp" if dsp else "")
    out = Path(out_dir)
    src, obj = out / "src", out / "obj"
    for d in (src, obj):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    if dsp and "arm_dsp" not in board.cpu.kernels:
        raise build_mod.BuildError(f"--dsp: {board.name}'s core {board.core} has no DSP kernel path")
    extra = [f"-DBX_SEMIHOSTING={int(semihosting)}"] + (["-DBX_USE_DSP"] if dsp else []) + cflags.ARM_STACK
    if cmsis_include:
        extra += ["-DBX_USE_CMSIS", f"-I{Path(cmsis_include).resolve()}"]
    elf, mapf = out / f"{FW}.elf", out / f"{FW}.map"

    def ldflags(script: str, root: str) -> list[str]:
        return cflags.ARM_LDFLAGS + [f"-T{script}", f"-Wl,-Map={root}/{mapf.name}"]

    proj = project.write_project(
        art, out, target=board.name, board_name=board.name, cost_unit=board.cost_unit, line_max=line_max,
        defines=board.c_defines() + list(dict(defines or {}).items()),
        app=project.PROTOCOL_SOURCES + CM4_SOURCES + board.driver_files(), extra=extra, app_name=elf.name,
        ldflags=ldflags("{root}/src/cortexm.ld", "{root}"), ldlibs=["-lm"],   # -lm: soft-float sqrtf
        command=command, golden=selftest.default_golden(art, line_max) if golden is None else golden)
    files = [p for p in proj.files if p.parent == src]
    ld = render_linker_script(board, src / "cortexm.ld", stack_bytes, heap_bytes)
    files.append(ld)
    cflags_used = proj.flags.arch + cflags.STD + proj.flags.opt + proj.flags.warn + extra + cflags.EXACT
    build_mod.run_make(out, "objects", jobs=1, cc=CC, what="compiling the firmware")  # one job: 2-core CI

    def link(script: Path) -> subprocess.CompletedProcess:
        """`make app` with the linker script `script` (the flags file names src/cortexm.ld)."""
        elf.unlink(missing_ok=True)
        flags = " ".join(ldflags(str(script.resolve()), str(out.resolve())))
        try:
            return build_mod.run_make(out, "app", jobs=1, cc=CC, what="linking", variables={"BX_LDFLAGS": flags})
        except build_mod.BuildError as e:
            return subprocess.CompletedProcess([], 1, "", str(e))

    r = link(ld)
    overflow = r.returncode != 0 and "overflowed" in r.stderr
    if r.returncode and not overflow:
        raise build_mod.BuildError(r.stderr)
    if overflow:
        # Measure with room to spare, then report against the real budget.
        big = dataclasses.replace(board, flash=boards_mod.Region(board.flash.origin, 1 << 27),
                                  ram=boards_mod.Region(board.ram.origin, 1 << 27))
        r2 = link(render_linker_script(big, obj / "measure.ld", stack_bytes, heap_bytes))
        if r2.returncode:
            raise build_mod.BuildError(r2.stderr)

    flash_parts, ram_parts = memory_use(board, elf_sections(elf))
    fb = FirmwareBuild(
        board=board.name, out_dir=out, elf=elf, bin=out / f"{FW}.bin", hex=out / f"{FW}.hex", map=mapf,
        flash_used=sum(flash_parts.values()), flash_total=board.flash.length, flash_parts=flash_parts,
        ram_used=sum(ram_parts.values()), ram_total=board.ram.length, ram_parts=ram_parts,
        stack_reserved=stack_bytes, stack=stack_analysis(obj, board.cpu.exception_frame), semihosting=semihosting,
        dsp=dsp, cflags=cflags_used, largest=largest_symbols(board, elf))
    if overflow or not fb.fits:
        elf.unlink(missing_ok=True)
        raise FirmwareTooBig(f"the model does not fit {board.name}:\n{format_size_table(fb)}\n"
                             + (f"{board.name}: {board.note}. " if board.note else "")
                             + "Shrink the model (vocab_size, d_model, d_ff, seq_max, n_blocks) or pick a "
                             "board with more memory (`beexgen boards`).", fb)
    _run([OBJCOPY, "-O", "binary", str(elf), str(fb.bin)], "objcopy -O binary")
    _run([OBJCOPY, "-O", "ihex", str(elf), str(fb.hex)], "objcopy -O ihex")
    manifest = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(fb).items()}
    manifest.update(target="cortex-m4", core=board.core, unit=board.cost_unit, artifact_hash=art.hash,
                    qemu_machine=board.qemu_machine, line_max=line_max,
                    sources=[p.relative_to(out).as_posix() for p in sorted(files)])
    (out / build_mod.MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return fb
