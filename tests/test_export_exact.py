"""The exported library exact in anyone's build (issue 21), on the tiny artifact:

- the one translation unit compiles -Wall -Wextra -pedantic -Werror clean with gcc and
  clang (host) and arm-none-eabi-gcc, at -O0/-O2/-O3/-Os, with only the core's flags;
  its C++ consumers (g++, clang++, arm-none-eabi-g++) include two prefixes' headers;
- nm: no weak symbol, no global symbol outside the public API, and no two legal prefixes
  can make the same public name;
- no fused multiply-add in the M4 object built with none of the generated flags;
- fast math stops the build with the reason;
- the self-test: `!selftest` and `beexgen-infer --selftest` pass on every QEMU board and
  count mismatches when one bit of a weight is flipped in the firmware image.
(tests/test_export.py runs the C++ and Arduino-style programs on whole test splits.)
"""
from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from beexgen.codegen import boards, cflags, export, firmware, selftest
from beexgen.codegen.emulate import QEMU, start_qemu

from conftest import needs
from fixtures import tiny_artifact

ARM_GCC, ARM_GXX = "arm-none-eabi-gcc", "arm-none-eabi-g++"
M4 = "mps2-an386"
LEVELS = ("-O0", "-O2", "-O3", "-Os")
PEDANTIC = ["-Wall", "-Wextra", "-pedantic", "-Werror"]
FUSED = ("vfma", "vfms", "vfnma", "vfnms")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# the example's sentences, then every run of 1..6 of their words (short and long texts, awkward lengths)
_SENTENCES = [line.split("\t", 1)[-1] for line in (EXAMPLES / "rotten_tomatoes.tsv").read_text(encoding="utf-8").splitlines()]
_WORDS = " ".join(_SENTENCES).split()
TEXTS = _SENTENCES + [" ".join(_WORDS[i:i + k]) for k in range(1, 7) for i in range(0, len(_WORDS) - k, 5)]


def run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """The tiny artifact, its golden set, and exports: host/sent, host/sent_block, m4/sent, m4/sent_exit."""
    d = tmp_path_factory.mktemp("exact")
    art = tiny_artifact(d / "art")
    golden = selftest.golden_set(art, TEXTS)
    out = {"dir": d, "art": art, "golden": golden}
    for target, prefixes in (("host", ("sent", "sent_block")), (M4, ("sent", "sent_exit"))):
        for p in prefixes:
            export.export_c(art, d / target / p, prefix=p, target=target, golden=golden)
    return out


def unity(lib, target, prefix) -> Path:
    return lib["dir"] / target / prefix / "src" / f"{prefix}_classifier.c"


def test_golden_set_covers_every_exit_and_class_reached(lib):
    answers = selftest.reference_answers(lib["art"], TEXTS)
    reached = {("cls", a[0]) for a in answers if a} | {("exit", a[1]) for a in answers if a}
    got = {("cls", g["cls"]) for g in lib["golden"]} | {("exit", g["exit"]) for g in lib["golden"]}
    assert got == reached and selftest.MIN_GOLDEN <= len(lib["golden"]) <= selftest.MAX_GOLDEN
    assert len({g["exit"] for g in lib["golden"]}) > 1, "the tiny model should reach more than one exit"


def test_public_suffixes_never_collide_across_prefixes():
    """P_x_s2 == P_s1 needs s1 == x_s2: no public suffix ends with `_` + another."""
    s = export.PUBLIC_SUFFIXES
    assert not [(a, b) for a, b in itertools.permutations(s, 2) if a.endswith("_" + b)]
    for p, q in (("sent", "sent_block"), ("sent", "sent_exit"), ("sent", "sent_engine"), ("a", "a_policy")):
        assert not ({f"{p}_{x}" for x in s} & {f"{q}_{x}" for x in s})


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_unit_is_warning_free_at_every_level_and_exports_only_the_api(lib, tmp_path, cc):
    if not shutil.which(cc):
        pytest.fail(f"{cc} missing: run `make setup`")
    for level in LEVELS:
        for p in ("sent", "sent_block"):
            o = tmp_path / f"{p}{level}.o"
            run([cc, "-std=c11", level, *PEDANTIC, "-c", "-o", o, unity(lib, "host", p)])
            assert nm_globals(o, "nm") == {f"{p}_{s}" for s in export.PUBLIC_SUFFIXES}


def nm_globals(obj: Path, nm: str) -> set[str]:
    rows = [ln.split() for ln in run([nm, "--defined-only", obj]).stdout.splitlines() if len(ln.split()) == 3]
    assert not [r for r in rows if r[1] in "VvWw"], f"weak symbols: {rows}"
    return {r[2] for r in rows if r[1].isupper()}


@needs(ARM_GCC)
@pytest.mark.parametrize("dsp", [False, True])
def test_m4_unit_without_generated_flags_is_clean_and_has_no_fused_multiply_add(lib, tmp_path, dsp):
    """Only the core's flags (as an Arduino or PlatformIO build passes them), at every level."""
    arch = boards.get_board(M4).arch_flags()
    for level in LEVELS:
        for p in ("sent", "sent_exit"):
            o = tmp_path / f"{p}{level}.o"
            run([ARM_GCC, *arch, level, *PEDANTIC, *([f"-D{p.upper()}_USE_DSP"] if dsp else []), "-c", "-o", o,
                 unity(lib, M4, p)])
            assert nm_globals(o, "arm-none-eabi-nm") == {f"{p}_{s}" for s in export.PUBLIC_SUFFIXES}
            code = run(["arm-none-eabi-objdump", "-d", o]).stdout.lower()
            fused = [ln for ln in code.splitlines() if any(f"\t{m}" in ln for m in FUSED)]
            assert not fused, f"{level}: {len(fused)} fused multiply-adds, e.g. {fused[:3]}"


def test_fused_multiply_add_check_would_see_one(tmp_path):
    """The objdump check above is not vacuous: the same flags fuse a * b + c in plain C."""
    if not shutil.which(ARM_GCC):
        pytest.fail(f"{ARM_GCC} missing")
    (tmp_path / "f.c").write_text("float f(float a, float b, float c) { return a * b + c; }\n")
    run([ARM_GCC, *boards.get_board(M4).arch_flags(), "-O2", "-c", "-o", tmp_path / "f.o", tmp_path / "f.c"])
    assert "vfma" in run(["arm-none-eabi-objdump", "-d", tmp_path / "f.o"]).stdout


@pytest.mark.parametrize("cc", ["gcc", "clang", ARM_GCC])
def test_fast_math_stops_the_build_with_the_reason(lib, tmp_path, cc):
    target = M4 if cc == ARM_GCC else "host"
    arch = boards.get_board(M4).arch_flags() if cc == ARM_GCC else []
    r = subprocess.run([cc, *arch, "-std=c11", "-O2", *cflags.FAST_MATH, "-c", "-o", str(tmp_path / "x.o"),
                        str(unity(lib, target, "sent"))], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"must not be compiled with {cflags.FAST_MATH[0]}" in r.stderr and "bit for bit" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("cxx", ["g++", "clang++", ARM_GXX])
def test_cpp_consumer_of_two_prefixes_compiles_clean(lib, tmp_path, cxx):
    target, other = (M4, "sent_exit") if cxx == ARM_GXX else ("host", "sent_block")
    arch = boards.get_board(M4).arch_flags() if cxx == ARM_GXX else []
    (tmp_path / "use.cpp").write_text(
        f'#include "sent_classifier.h"\n#include "{other}_classifier.h"\n'
        "int use(const uint8_t *t, size_t n) {\n"
        f"  sent_result a; {other}_result b;\n"
        f"  int x = sent_classify(t, n, &a) + {other}_classify(t, n, &b) + sent_selftest() + {other}_selftest();\n"
        f"  return x + (int)SENT_N_CLASSES + (int){other.upper()}_N_CLASSES + (sent_labels[0] != 0)\n"
        f"         + sent_status_name(x)[0] + {other}_policy_from_name(\"none\", 4);\n}}\n")
    for std in ("-std=c++11", "-std=c++17"):
        run([cxx, *arch, std, "-O2", *PEDANTIC, f"-I{lib['dir'] / target / 'sent' / 'src'}",
             f"-I{lib['dir'] / target / other / 'src'}", "-c", "-o", tmp_path / "use.o", tmp_path / "use.cpp"])


# --------------------------------------------------------------------------- the self-test on every QEMU board

def flip_bit(elf: Path, symbol: str, bit: int, nm: str = "arm-none-eabi-nm") -> None:
    """Flip bit `bit` (0 = the LSB of its first byte) of `symbol` in the ELF's file image (ELF32 LE)."""
    addr = next(int(ln.split()[0], 16) for ln in run([nm, elf]).stdout.splitlines()
                if ln.split()[-1] == symbol)
    data = bytearray(elf.read_bytes())
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    for i in range(shnum):
        _, typ, _, sh_addr, sh_off, sh_size = struct.unpack_from("<IIIIII", data, shoff + i * shentsize)
        if typ == 1 and sh_addr <= addr < sh_addr + sh_size:       # SHT_PROGBITS
            data[sh_off + addr - sh_addr + bit // 8] ^= 1 << (bit % 8)
            elf.write_bytes(bytes(data))
            return
    raise AssertionError(f"{symbol} at {addr:#x} is in no PROGBITS section")


def infer_selftest(elf: Path, board: str, log: Path) -> subprocess.CompletedProcess:
    with start_qemu(elf, board, log=log) as q:
        return subprocess.run([shutil.which("beexgen-infer") or "beexgen-infer", "--port", q.url, "--selftest",
                               "--timeout", "30"], capture_output=True, text=True, timeout=120)


@needs(ARM_GCC, QEMU)
@pytest.mark.parametrize("board", sorted(b.name for b in boards.BOARDS.values() if b.emulated))
def test_selftest_passes_on_every_qemu_board_and_sees_a_flipped_weight_bit(lib, tmp_path, board):
    fw = firmware.build_firmware(lib["art"], board, tmp_path / "fw", golden=lib["golden"])
    r = infer_selftest(fw.elf, board, tmp_path / "qemu.log")
    assert r.returncode == 0 and r.stdout.strip() == "selftest: 0 mismatches (ok)", r.stdout + r.stderr
    # one bit of a weight: the top mantissa bit of the wide exit's bias of class 0 (every
    # exit's logits include it; a low bit could vanish in the rounding of the sum)
    flip_bit(fw.elf, "bx_wide_bias", 22)
    r = infer_selftest(fw.elf, board, tmp_path / "qemu_flipped.log")
    assert r.returncode != 0 and "FAILED" in r.stdout, r.stdout + r.stderr
    n = int(r.stdout.split()[1])
    assert n == len(lib["golden"]), r.stdout        # logits[0] of every golden sentence moved


def test_selftest_on_the_host_emulator(lib, tmp_path):
    """`!selftest` on the host emulator: 0, and -1 for a build without golden sentences."""
    from beexgen.codegen import build
    exe = build.build_host(lib["art"], tmp_path / "host", golden=lib["golden"])
    r = subprocess.run([str(exe)], input="!selftest\n!selftest x\n", capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ["ok selftest mismatches=0", "err 5 BAD_ARGUMENT selftest takes no argument"], \
        r.stdout
    exe = build.build_host(lib["art"], tmp_path / "host0", golden=[])
    r = subprocess.run([str(exe)], input="!selftest\n", capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ["ok selftest mismatches=-1"], r.stdout


# --------------------------------------------------------------------------- three prefixes in one program

THREE = ("sent", "sent_block", "sent_exit")
PROGRAM = """\
#include <stdio.h>
#include <string.h>
%(includes)s
#include "texts.h"

static void put_answer(int rc, int32_t cls, int32_t exit_depth, const float *logits, int n);
%(semihost)s
int main(void)
{
    for (unsigned i = 0; i < n_texts; i++) {
%(calls)s
    }
    say("done\\n");
    finish();
    return 0;
}

static void put_answer(int rc, int32_t cls, int32_t exit_depth, const float *logits, int n)
{
    char line[64 + 9 * 16];
    size_t k;
    if (rc) { snprintf(line, sizeof line, "err %%d\\n", -rc); say(line); return; }
    k = (size_t)snprintf(line, sizeof line, "%%d %%d", (int)cls, (int)exit_depth);
    for (int c = 0; c < n && k < sizeof line; c++) {
        uint32_t b;
        memcpy(&b, &logits[c], sizeof b);
        k += (size_t)snprintf(line + k, sizeof line - k, " %%08lx", (unsigned long)b);
    }
    snprintf(line + k, sizeof line - k, "\\n");
    say(line);
}
"""
HOST_IO = "static void say(const char *s) { fputs(s, stdout); }\nstatic void finish(void) {}\n"
SEMIHOST_IO = """\
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void say(const char *s) { semihost(0x04, s); }
static void finish(void) { semihost(0x18, (const void *)0x20026); }
"""


def three_program(d: Path, semihost: bool) -> Path:
    calls = "".join(
        f"        {{ {p}_result r; int rc = {p}_classify((const uint8_t *)texts[i], text_lens[i], &r);\n"
        f"          put_answer(rc, r.cls, r.exit_depth, r.logits, {p.upper()}_N_CLASSES); }}\n" for p in THREE)
    (d / "three.c").write_text(PROGRAM % {"includes": "".join(f'#include "{p}_classifier.h"\n' for p in THREE),
                                          "semihost": SEMIHOST_IO if semihost else HOST_IO, "calls": calls})
    from beexgen.codegen import render
    data = [t.encode() for t in TEXTS]
    (d / "texts.h").write_text("extern const char *const texts[];\nextern const unsigned text_lens[];\n"
                               "extern const unsigned n_texts;\n")
    (d / "texts.c").write_text('#include "texts.h"\nconst char *const texts[] = {\n'
                               + "".join(f"    {render.c_string(t.decode())},\n" for t in data) + "};\n"
                               "const unsigned text_lens[] = {" + ", ".join(str(len(t)) for t in data) + "};\n"
                               "const unsigned n_texts = sizeof text_lens / sizeof text_lens[0];\n")
    return d / "three.c"


def check_three(lib, got: list[str]) -> None:
    """Each text's answer equals beexgen's reference build's, once per prefix."""
    assert got[-1] == "done", got[-3:]
    want = []
    for a in selftest.reference_answers(lib["art"], TEXTS):
        want += [None if a is None else " ".join([str(a[0]), str(a[1])] + [f"{b:08x}" for b in a[2]])] * len(THREE)
    assert len(got) - 1 == len(want) == 3 * len(TEXTS)
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if (g.startswith("err ") if w is None else g != w)]
    assert not bad, f"{len(bad)} answers differ, first: {got[bad[0]]} != {want[bad[0]]}"


def test_three_prefixes_link_into_one_host_program(lib, tmp_path):
    """sent, sent_block and sent_exit (each the other's start) in one host program: every
    answer equals beexgen's reference build."""
    for p in THREE:
        if not (lib["dir"] / "host" / p).exists():
            export.export_c(lib["art"], lib["dir"] / "host" / p, prefix=p, target="host", golden=lib["golden"])
    src = three_program(tmp_path, semihost=False)
    inc = [f"-I{lib['dir'] / 'host' / p / 'src'}" for p in THREE] + [f"-I{tmp_path}"]
    exe = tmp_path / "three"
    run(["cc", "-std=c11", "-O2", *PEDANTIC, *inc, "-o", exe, src, tmp_path / "texts.c",
         *[unity(lib, "host", p) for p in THREE], "-lm"])
    check_three(lib, run([exe], timeout=120).stdout.splitlines())


@needs(ARM_GCC, QEMU)
def test_three_prefixes_link_into_one_m4_image(lib, tmp_path):
    """The same three libraries, compiled with the core's flags only, in one mps2-an386
    image under QEMU: every answer equals the reference build on x86."""
    for p in THREE:
        if not (lib["dir"] / M4 / p).exists():
            export.export_c(lib["art"], lib["dir"] / M4 / p, prefix=p, target=M4, golden=lib["golden"])
    arch = boards.get_board(M4).arch_flags()
    src = three_program(tmp_path, semihost=True)
    inc = [f"-I{lib['dir'] / M4 / p / 'src'}" for p in THREE] + [f"-I{tmp_path}"]
    elf = tmp_path / "three.elf"
    # (-pedantic for the library units elsewhere: the example's start-up casts its stack address)
    run([ARM_GCC, *arch, "-std=c11", "-O2", "-Wall", "-Wextra", *inc, "-nostartfiles", "--specs=nano.specs",
         "--specs=nosys.specs", f"-T{EXAMPLES / 'bare_metal' / 'mps2_an386.ld'}", "-Wl,--gc-sections", "-o", elf,
         src, tmp_path / "texts.c", EXAMPLES / "bare_metal" / "startup.c",
         *[unity(lib, M4, p) for p in THREE], "-lm"])
    console = tmp_path / "console.txt"
    run([QEMU, "-M", M4, "-display", "none", "-monitor", "none", "-serial", "none",
         "-chardev", f"file,id=con,path={console}", "-semihosting-config", "enable=on,target=native,chardev=con",
         "-kernel", elf], timeout=300)
    check_three(lib, console.read_text().splitlines())
