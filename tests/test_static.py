"""Static checks of the C: cppcheck, warning-free Cortex-M4 builds, the stack budget.

- cppcheck (--enable=warning,portability,performance, --std=c11, --inline-suppr,
  --error-exitcode=1) over firmware_templates/*.c (with the generated headers of a
  rendered mps2-an386 project on the include path) and over every rendered project of a
  tiny artifact: the host emulator's (platform_host.c) and each board's firmware (start-up,
  board drivers, platform_cortexm.c; checked as a 32-bit platform, in the configuration that is
  compiled: build_firmware's -D flags). Must be clean, except for
  the suppressions in SUPPRESS, each a reviewed false positive of cppcheck 2.10 in a file
  this test does not own (the owners may move them inline as `// cppcheck-suppress`).
- Compile flags written once (codegen/cflags.py, boards.Board.arch_flags), no x86 code in an
  M4 tree, the kernel table (codegen/project.py KERNEL_FILES), no CPU probe at import.
- The firmware of every board in codegen/boards/ builds (a smaller model with
  the board's own BX_LINE_MAX on boards with less than 64 KiB of RAM: the micro:bit) with arm-none-eabi-gcc
  -Wall -Wextra -Werror (build_firmware's flags), fits, and the worst-case stack that
  build_firmware computes from -fstack-usage / -fcallgraph-info is known (no recursion,
  no unbounded frame) and within the stack the linker reserves.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from beexgen.codegen import boards, build as build_mod, cflags, firmware, project, render

from conftest import needs
from fixtures import tiny_artifact

TEMPLATES = Path(render.__file__).resolve().parent.parent / "firmware_templates"
CPPCHECK = ["cppcheck", "-q", "--enable=warning,portability,performance", "--error-exitcode=1",
            "--inline-suppr", "--std=c11"]
# (cppcheck id, file pattern, why it is a false positive)
SUPPRESS = [
    ("comparePointers", "*startup_cortexm.c",
     "the .data/.bss copy loops compare addresses of linker-script symbols (__data_start .. "
     "__data_end): one region to the linker, distinct objects to cppcheck"),
    ("comparePointers", "*platform_cortexm.c",
     "_sbrk compares the heap pointer with the linker symbols __heap_start / __heap_end"),
    ("toomanyconfigs", "*",
     "bx_kernels.c has one `#if !defined(BX_HAVE_<KERNEL>)` per kernel (the kernel selection): an "
     "information that cppcheck checks 12 of its configurations, not a finding"),
]

need_cppcheck = needs("cppcheck")
need_arm = needs(firmware.CC)
BOARDS = sorted(boards.BOARDS)


def cppcheck(files: list[Path], include: Path, extra: list[str] = ()) -> None:
    cmd = [*CPPCHECK, *extra, *[f"--suppress={i}:{pat}" for i, pat, _ in SUPPRESS], f"-I{include}",
           *map(str, sorted(files))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and not r.stderr.strip(), \
        f"cppcheck findings (exit {r.returncode}):\n{' '.join(cmd)}\n{r.stderr[-8000:]}{r.stdout[-2000:]}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("static")
    return {"dir": d, "art": tiny_artifact(d / "art"), "fw": {}}


def firmware_build(work, board: str) -> firmware.FirmwareBuild:
    """build_firmware of a board, once per module (it raises on any warning: -Werror)."""
    if board not in work["fw"]:
        if boards.get_board(board).ram.length < 64 * 1024:
            work.setdefault("small", tiny_artifact(work["dir"] / "small", d_model=32, d_ff=32, n_blocks=2,
                                                   seq_max=16, vocab_size=150, wide=False))
            work["fw"][board] = firmware.build_firmware(work["small"], board, work["dir"] / board)
        else:
            work["fw"][board] = firmware.build_firmware(work["art"], board, work["dir"] / board)
    return work["fw"][board]


@need_cppcheck
@need_arm
def test_cppcheck_firmware_templates(work):
    """The hand-written sources themselves; generated headers from an mps2-an386 project."""
    inc = firmware_build(work, "mps2-an386").out_dir / "src"
    cppcheck(list(TEMPLATES.glob("*.c")), inc)


def compiled_defines(cc: str, flags: list[str], src: Path) -> list[str]:
    """-D flags for the configuration a build compiles: the macros the compiler predefines
    under its flags (gcc -dM -E) that the sources test in #if / #ifdef / defined()."""
    tested = set()
    for p in src.iterdir():
        for ln in p.read_text(errors="replace").splitlines():
            if re.match(r"\s*#\s*(if|elif|ifdef|ifndef)\b", ln):
                tested |= set(re.findall(r"\b[A-Za-z_]\w*\b", ln))
    r = subprocess.run([cc, *flags, "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True, text=True, check=True)
    pre = dict(m.groups() for m in re.finditer(r"^#define (\w+) ?(.*)$", r.stdout, re.M))
    return [f"-D{k}={v}" if v else f"-D{k}" for k, v in sorted(pre.items()) if k in tested]


@need_cppcheck
def test_cppcheck_rendered_host_project(work):
    """The configuration that is compiled (the default x86 path's predefined macros, as
    -D flags: cppcheck then checks that configuration only, not every #if it can guess)."""
    import json
    exe = build_mod.build_host(work["art"], work["dir"] / "host")
    src = exe.parent / "src"
    files = list(src.glob("*.c"))
    assert {"platform_host.c", "main.c", "bx_model_data.c", "bx_vocab_data.c", "bx_forward.c"} <= {p.name for p in files}
    manifest = json.loads((exe.parent / build_mod.MANIFEST).read_text())
    defines = compiled_defines(manifest["cc"], manifest["cflags"], src)
    assert defines or manifest["isa"] == "portable", manifest["isa"]    # x86 paths test __POPCNT__, __AVX2__ ...
    cppcheck(files, src, defines or ["-D__STDC__"])


@need_cppcheck
@need_arm
@pytest.mark.parametrize("board", BOARDS)
def test_cppcheck_rendered_firmware_project(work, board):
    """The configuration that is compiled: the board header plus build_firmware's -D flags
    (with a -D, cppcheck checks only that configuration instead of guessing others: other
    boards' #if branches with this board's addresses are not a configuration that exists)."""
    b = firmware_build(work, board)
    src = b.out_dir / "src"
    files = list(src.glob("*.c"))
    assert {"startup_cortexm.c", "platform_cortexm.c", "main.c"} <= {p.name for p in files}
    defines = [f for f in b.cflags if f.startswith("-D")]
    assert defines
    cppcheck(files, src, ["--platform=unix32", *defines])


@need_arm
@pytest.mark.parametrize("board", BOARDS)
def test_firmware_builds_with_werror_and_stack_fits(work, board):
    b = firmware_build(work, board)
    print("\n" + firmware.format_size_table(b))
    assert {"-Wall", "-Wextra", "-Werror"} <= set(b.cflags)
    assert b.fits and b.elf.is_file(), b.problems()
    s = b.stack
    assert s.worst is not None, f"{board}: stack bound unknown: {s.notes}"
    assert 0 < s.main_bytes and s.worst <= b.stack_reserved, \
        f"{board}: worst-case stack {s.worst} B > {b.stack_reserved} B reserved (path {' > '.join(s.main_path)})"
    assert not any("recursion" in n or "unbounded" in n for n in s.notes), s.notes


@need_cppcheck
def test_cppcheck_fuzz_targets(work):
    """The fuzz targets and their platform (tests/fuzz/*.c), against a rendered project."""
    exe = build_mod.build_host(work["art"], work["dir"] / "host_fuzz")
    fuzz = Path(__file__).parent / "fuzz"
    cppcheck(list(fuzz.glob("*.c")), exe.parent / "src", [f"-I{fuzz}"])


# --------------------------------------------------------------------------- flags and kernel files

ROOT = TEMPLATES.parent
SCANNED = ("beexgen", "codegen", "firmware_templates", "host", "train", "tests", "examples", "scripts")
CODE_SUFFIXES = {".py", ".c", ".h", ".j2", ".ld", ".cmake", ".mk", ".sh"}
CODE_NAMES = {"Makefile", "CMakeLists.txt"}


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(number, line) of a file's lines that are not comment lines (prose about a flag is
    allowed; writing the flag is not)."""
    out = []
    for k, ln in enumerate(path.read_text(errors="replace").splitlines(), 1):
        s = ln.strip()
        if not s.startswith(("#", "*", "/*", "//")):
            out.append((k, ln))
    return out


def project_code_files() -> list[Path]:
    files = [ROOT / "Makefile"]
    for top in SCANNED:
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and (p.suffix in CODE_SUFFIXES or p.name in CODE_NAMES)]
    return sorted(files)


def test_exactness_and_core_flags_are_written_once(work):
    """The flags C == PyTorch needs are written in codegen/cflags.py only (the generated
    build files and every build of beexgen's read them from there), the core's flags in
    codegen/boards.py only (Board.arch_flags)."""
    exact = {f.split("=")[0] for f in cflags.EXACT} | {"-f" + "fast-math"}
    arch = {"-m" + "float-abi=", "-m" + "fpu=", "-m" + "cpu="}
    homes = {ROOT / "codegen" / "cflags.py": exact, ROOT / "codegen" / "boards.py": arch}
    bad = []
    for p in project_code_files():
        for flags in (exact, arch):
            if homes.get(p) is flags:
                continue
            bad += [f"{p.relative_to(ROOT)}:{k}: {ln.strip()}" for k, ln in code_lines(p)
                    if any(f in ln for f in flags)]
    assert not bad, "compile flags written outside codegen/cflags.py / codegen/boards.py:\n" + "\n".join(bad)
    # and the generated build files carry them (rendered, not the templates' text)
    out = work["dir"] / "flags_project"
    project.write_project(work["art"], out, target=project.HOST, board_name="host", cost_unit="ns")
    for name in (project.FLAGS_MK, project.FLAGS_CMAKE):
        text = (out / name).read_text()
        missing = [f for f in cflags.EXACT if f not in text]
        assert not missing, f"{name} lacks {missing}"


# Constants written once (issue 23): (what, pattern of its definition or literal, its one home).
CONSTANTS = [
    ("special token names", re.compile(r"""["']\[(PAD|UNK|CLS)\]["']"""), "beexgen/core/wordpiece.py"),
    ("special token ids", re.compile(r"""["'](pad|unk|cls)["']\s*:\s*\d"""), "beexgen/core/wordpiece.py"),
    ("export-c formats", re.compile(r"""["']make["'],\s*["']zephyr["']"""), "codegen/layout.py"),
    ("the default C prefix", re.compile(r"""(DEFAULT_PREFIX\s*=|default=["']bx["'])"""), "codegen/layout.py"),
    ("float32's largest value", re.compile(r"F32_MAX\s*=|3\.40282346"), "beexgen/core/policy.py"),
    ("the core -> QEMU board table", re.compile(r"CORE_BOARDS\s*=|\"cortex-m0\":\s*\"microbit\""),
     "beexgen/bench/cores.py"),
    ("the kernel bench's shapes", re.compile(r"MODEL_SHAPES\s*=\s*\(\("), None),    # derived (m4bench.model_shapes)
]


def test_each_constant_is_written_once():
    """Each constant of CONSTANTS is written in its home only (comments aside) in the
    package's code; the rest import it. None: written nowhere (derived). (Tests spell
    special tokens on purpose, as input.)"""
    bad = []
    for p in project_code_files():
        if p.suffix != ".py" or p.relative_to(ROOT).parts[0] in ("tests", "scripts", "examples"):
            continue
        rel = p.relative_to(ROOT).as_posix()
        for what, pat, home in CONSTANTS:
            bad += [f"{rel}:{k}: {what}: {ln.strip()}" for k, ln in code_lines(p) if rel != home and pat.search(ln)]
    assert not bad, "constants written outside their home:\n" + "\n".join(bad)
    for what, pat, home in CONSTANTS:       # and the pattern does find the definition at home
        if home:
            assert any(pat.search(ln) for _, ln in code_lines(ROOT / home)), (what, home)


EXIT_NAMES = {"first_exit", "e0"}      # a model's first exit number (0 with a wide exit)


def test_exit_numbers_and_columns_are_converted_in_one_place():
    """Exit numbers e and tensor columns k are converted by core.policy.exit_of_column /
    column_of_exit only (issue 23): no other `+ first_exit` / `- first_exit` arithmetic
    in the package's code, scripts included (an AST walk, so comments and strings are
    free to explain the rule)."""
    import ast
    bad = []
    for p in project_code_files():
        if p.suffix != ".py" or p.relative_to(ROOT).parts[0] in ("tests", "examples"):
            continue
        rel = p.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(p.read_text(), rel)):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
                names = {n.id if isinstance(n, ast.Name) else n.attr for n in (node.left, node.right)
                         if isinstance(n, (ast.Name, ast.Attribute))}
                if names & EXIT_NAMES and rel != "beexgen/core/policy.py":
                    bad.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "exit/column arithmetic outside core/policy.py:\n" + "\n".join(bad)


X86_CODE = re.compile(r"immintrin|__AVX|__SSE|__POPCNT__|_mm(256|512)?_\w+\(|__x86_64__")


@need_arm
def test_cortex_m4_tree_has_no_x86_code_and_host_tree_no_arm_code(work):
    fw = firmware_build(work, "mps2-an386").out_dir / "src"
    found = [f"{p.name}: {m.group(0)}" for p in sorted(fw.iterdir()) for m in [X86_CODE.search(p.read_text())] if m]
    assert not found, found
    assert not list(fw.glob("*x86*"))
    host = build_mod.build_host(work["art"], work["dir"] / "host_isa").parent / "src"
    assert (host / "bx_kernels_x86.c").is_file() and not list(host.glob("*arm*"))


def test_kernel_files_by_isa_are_one_file_and_one_table_entry():
    """Every kernel file of project.KERNEL_FILES exists; bx_kernels.c holds no ISA code;
    no weak symbol or alias anywhere: every BX_HAVE_<KERNEL> an ISA header selects is one
    `#if !defined(BX_HAVE_<KERNEL>)` of bx_kernels.c (bx_kernels.h, "Kernel selection"),
    and bx_kernels.h includes each ISA header, so adding a path is its files and its entry."""
    portable = set(project.KERNEL_FILES[project.PORTABLE])
    for isa, names in project.KERNEL_FILES.items():
        for n in names:
            assert (TEMPLATES / n).is_file(), f"{isa}: {n} missing"
    guarded = set(re.findall(r"^#if !defined\((BX_HAVE_\w+)\)", (TEMPLATES / "bx_kernels.c").read_text(), re.M))
    kh = (TEMPLATES / "bx_kernels.h").read_text()
    for n in {f for fs in project.KERNEL_FILES.values() for f in fs if f.endswith(".h")} - portable:
        have = set(re.findall(r"^#define (BX_HAVE_\w+)", (TEMPLATES / n).read_text(), re.M))
        assert have and have <= guarded, (n, have - guarded)
        assert f'__has_include("{n}")' in kh, n
    for p in TEMPLATES.iterdir():
        if p.suffix in (".c", ".h", ".j2"):
            assert not re.search(r"__attribute__\s*\(\(\s*(weak|alias)", p.read_text()), p.name
    for n in portable:
        text = (TEMPLATES / n).read_text()
        assert not X86_CODE.search(text) and "__ARM_FEATURE" not in text and "__asm__" not in text, n
    assert not X86_CODE.search((TEMPLATES / "bx_math.h").read_text())
    assert not X86_CODE.search((TEMPLATES / "bx_engine.c").read_text())


def test_importing_the_builds_reads_no_cpu_flags():
    """codegen/build.py (and cflags) read /proc/cpuinfo on the first host build, not at import."""
    probe = ("import pathlib\n"
             "real = pathlib.Path.read_text\n"
             "def guard(self, *a, **k):\n"
             "    assert 'cpuinfo' not in str(self), 'read at import'\n"
             "    return real(self, *a, **k)\n"
             "pathlib.Path.read_text = guard\n"
             "import builtins\n"
             "real_open = builtins.open\n"
             "def guard_open(f, *a, **k):\n"
             "    assert 'cpuinfo' not in str(f), 'opened at import'\n"
             "    return real_open(f, *a, **k)\n"
             "builtins.open = guard_open\n"
             "import beexgen.codegen.build, beexgen.codegen.firmware, beexgen.codegen.export\n")
    import sys
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from beexgen.codegen import cflags as cf
    assert "popcnt" in cf.host_isa_levels({"popcnt"}) and list(cf.host_isa_levels(set())) == ["portable"]


# --------------------------------------------------------------------------- the C API's status type

STATUS_PROGRAM = """#include <stdio.h>
#include <string.h>
#include "bx_classifier.h"
int main(void)
{
    bx_status s;                                   /* the type exists and holds every code */
    for (int v = 0; v <= %(max)d; v++) { s = (bx_status)v; printf("%%d %%s\\n", (int)s, bx_status_name(s)); }
    printf("unknown %%d\\n", (int)bx_policy_from_name("no-such-policy", 14));
    for (int p = 0; p < BX_N_POLICIES; p++)
        printf("%%s %%d\\n", bx_policy_name(p), (int)bx_policy_from_name(bx_policy_name(p), strlen(bx_policy_name(p))));
    return 0;
}
"""


def test_the_c_status_is_one_typed_enum_of_the_protocol_table(work):
    """bx_status.h is a typed enum generated from core/protocol.py Status (names, values);
    bx_policy_from_name answers a negative bx_status for an unknown name, each policy's
    number (core/policy.py) for a known one. Compiled -Werror against the host project."""
    from beexgen.core.policy import Policy
    from beexgen.core.protocol import Status
    exe = build_mod.build_host(work["art"], work["dir"] / "host_status")
    src = exe.parent / "src"
    assert "typedef enum bx_status {" in (src / "bx_status.h").read_text()
    assert not re.search(r"#define BX_STATUS_(?!H\b)", (src / "bx_status.h").read_text())    # no bare #define codes
    prog = work["dir"] / "status.c"
    prog.write_text(STATUS_PROGRAM % {"max": max(Status)})
    objs = [p for p in (exe.parent / "obj").glob("*.o") if p.stem != "main"]
    out = work["dir"] / "status"
    subprocess.run(["gcc", *cflags.STD, "-Wall", "-Wextra", "-Werror", f"-I{src}", str(prog), *map(str, objs), "-lm",
                    "-o", str(out)], check=True, capture_output=True, text=True)
    got = subprocess.run([str(out)], capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()
    want = [f"{int(s)} {s.name}" for s in Status] + [f"unknown {-int(Status.BAD_ARGUMENT)}"]
    want += [f"{p.name.lower()} {int(p)}" for p in Policy]
    assert got == want
