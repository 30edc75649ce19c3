"""`beexgen export-c`: the generated C as a library, built as a user would build it.

- every format's layout, the banner hash, the public header on its own, every global
  symbol under the prefix;
- the exported library built with its CMakeLists.txt and with its Makefile, by the host
  cc and by arm-none-eabi-gcc, each compile command carrying the exactness flags;
- two trained tiny models exported with two prefixes (qa: trec6, spam: sms_spam) in one
  program: examples/host built with CMake and with Make by the system cc, and
  examples/bare_metal built with CMake and arm-none-eabi-gcc and run in QEMU
  (mps2-an386); every answer of both models on both whole test splits equals the host
  emulator's reply and the PyTorch deploy mirror (class, exit, logit bits).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from beexgen.core import artifact
from beexgen.core.protocol import LINE_MAX, DeviceError, parse_reply
from beexgen.codegen import build as build_mod, cflags, export, project, render
from beexgen.codegen.emulate import QEMU
from beexgen.train import deploy
from beexgen.train import tokenizer as tok_mod
from beexgen.train.exits import Policy

from conftest import needs
from fixtures import tiny_artifact

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ARM_CC = "arm-none-eabi-gcc"
ANSWER = re.compile(r"^(\w+) (?:err=(\w+)|cls=(\d+) label=\S* exit=(\d+) logits=([0-9a-f,]+))$")
MODELS = {"qa": "trec6", "spam": "sms_spam"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_artifact(tmp_path_factory.mktemp("export") / "art")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


def public_api(prefix: str) -> set[str]:
    return {f"{prefix}_{s}" for s in export.PUBLIC_SUFFIXES}


def global_symbols(obj: Path, nm: str = "nm") -> set[str]:
    """The global symbols an object or archive defines; fails on any weak one."""
    out = run([nm, "--defined-only", obj]).stdout
    rows = [ln.split() for ln in out.splitlines() if len(ln.split()) == 3]
    weak = [r for r in rows if r[1] in "VvWw"]
    assert not weak, f"weak symbols in {obj.name}: {weak}"
    return {r[2] for r in rows if r[1].isupper()}


# --------------------------------------------------------------------------- layout

@pytest.mark.parametrize("fmt", export.FORMATS)
def test_every_format_has_its_layout_and_the_banner(tiny, tmp_path, fmt):
    out = tmp_path / "lib"
    files = {p.relative_to(out).as_posix() for p in export.export_c(tiny, out, prefix="sent", fmt=fmt)}
    assert {"CMakeLists.txt", "Makefile", "sent_flags.cmake", "sent_flags.mk", "README.md", "src/sent_classifier.h",
            "src/sent_classifier.c", "src/sent_engine.c.inc", "src/sent_kernels.c.inc"} <= files
    # one translation unit: src/sent_classifier.c is the only .c an IDE or a build compiles
    assert [f for f in files if f.endswith(".c")] == ["src/sent_classifier.c"]
    assert not any("bx_" in f for f in files), files
    # the library only: no protocol loop, platform, start-up or UART driver, no x86 or Arm code
    assert not any(Path(f).name in {"sent_protocol.c", "main.c", "platform_host.c", "platform_cortexm.c",
                                    "startup_cortexm.c", "sent_kernels_x86.c.inc", "sent_kernels_arm.c.inc"}
               for f in files)
    extra = {"zephyr": {"zephyr/module.yml", "zephyr/Kconfig", "zephyr/CMakeLists.txt"},
             "platformio": {"library.json"}, "arduino": {"library.properties"}}.get(fmt, set())
    assert extra <= files and not (set().union(*[v for k, v in {
        "zephyr": {"zephyr/module.yml"}, "platformio": {"library.json"},
        "arduino": {"library.properties"}}.items() if k != fmt]) & files)
    for f in ("src/sent_classifier.h", "README.md", "sent_flags.mk", "CMakeLists.txt"):
        assert tiny.hash in (out / f).read_text(), f
    readme = (out / "README.md").read_text()
    # the self-test first, then the integration of every format, exactness, the start-up notes
    assert readme.index("sent_selftest()") < readme.index("## 2. Use") < readme.index("## 3.")
    for want in ("add_subdirectory(", "sent_flags.mk", "~/Arduino/libraries", "PlatformIO", "ZEPHYR_EXTRA_MODULES",
                 "CMAKE_TOOLCHAIN_FILE", "sent-core", "CPACR", "startup.c", "-u _printf_float", "Built for real",
                 "bytes of static RAM", "SENT_LINE_MAX"):
        assert want in readme, want
    assert "platform.local.txt" not in readme        # nothing to edit outside the user's project
    assert "CMAKE_SYSTEM_NAME Generic" in (out / "cmake" / "toolchain-arm-none-eabi.cmake").read_text()
    assert "SENT_RX_RING" not in (out / "src" / "sent_board.h").read_text()      # no serial settings
    if fmt == "platformio":
        lib = json.loads((out / "library.json").read_text())
        assert lib["build"]["srcDir"] == "src" and set(cflags.EXACT) <= set(lib["build"]["flags"])
    if fmt == "zephyr":
        assert "CONFIG_SENT_CLASSIFIER" in (out / "zephyr" / "CMakeLists.txt").read_text()
        assert "config SENT_CLASSIFIER" in (out / "zephyr" / "Kconfig").read_text()
    if fmt == "arduino":
        assert "includes=sent_classifier.h" in (out / "library.properties").read_text()


def test_public_header_stands_alone_and_every_global_name_has_the_prefix(tiny, tmp_path):
    out = tmp_path / "lib"
    export.export_c(tiny, out, prefix="sent", target="host")
    (tmp_path / "use.c").write_text('#include "sent_classifier.h"\n'
                                    "int use(const uint8_t *t, size_t n) { sent_result r;\n"
                                    "  int rc = sent_classify(t, n, &r);\n"
                                    "  return rc ? rc : r.cls + (int)SENT_N_CLASSES + (int)SENT_POLICY_NONE; }\n")
    run(["cc", *cflags.STD, *cflags.WARN, *cflags.WERROR, f"-I{out / 'src'}", "-c", "-o", tmp_path / "use.o",
         tmp_path / "use.c"])
    run(["make", "-C", out, "lib", "CFLAGS="])
    assert global_symbols(out / "libsent.a") == public_api("sent")
    text = "".join(p.read_text() for p in (out / "src").iterdir())
    assert not re.search(r"\bbx_|\bBX_", text)
    # the public header declares no weight array, and no private header comes with it
    pub = (out / "src" / "sent_classifier.h").read_text() + (out / "src" / "sent_model.h").read_text()
    assert "_bits[" not in pub and "_weight[" not in pub and "#include \"sent_weights.h\"" not in pub
    assert 'extern "C"' in (out / "src" / "sent_classifier.h").read_text()


def test_export_errors(tiny, tmp_path):
    with pytest.raises(export.ExportError, match="prefix"):
        export.export_c(tiny, tmp_path / "a", prefix="Bad-Name")
    with pytest.raises(export.ExportError, match="format"):
        export.export_c(tiny, tmp_path / "a", fmt="bazel")
    from beexgen.codegen.boards import UnknownBoardError
    with pytest.raises(UnknownBoardError, match="known boards"):
        export.export_c(tiny, tmp_path / "a", target="esp32")
    export.export_c(tiny, tmp_path / "b")
    from beexgen.core.outdir import OutputDirError
    with pytest.raises(OutputDirError, match="not empty"):
        export.export_c(tiny, tmp_path / "b")
    export.export_c(tiny, tmp_path / "b", force=True, prefix="again")
    assert (tmp_path / "b" / "src" / "again_classifier.h").is_file()


def test_cli_export_c(tiny, tmp_path):
    from click.testing import CliRunner

    from beexgen.cli import main
    fmt = next(p for p in main.commands["export-c"].params if p.name == "fmt")
    assert tuple(fmt.type.choices) == export.FORMATS       # the CLI lists the formats export_c knows
    r = CliRunner().invoke(main, ["export-c", str(tiny.path), "--out", str(tmp_path / "z"), "--prefix", "zz",
                                  "--format", "zephyr", "--target", "mps2-an386"])
    assert r.exit_code == 0, r.output
    assert "zz_classifier.h" in r.output and (tmp_path / "z" / "zephyr" / "module.yml").is_file()
    assert (tmp_path / "z" / "src" / "zz_kernels_arm.c.inc").is_file()
    r = CliRunner().invoke(main, ["export-c", str(tiny.path), "--out", str(tmp_path / "y"), "--prefix", "9x"])
    assert r.exit_code != 0 and "prefix '9x'" in r.output and "Traceback" not in r.output


# --------------------------------------------------------------------------- CMake and Make

def compile_commands_cmake(build: Path) -> list[str]:
    return [c["command"] for c in json.loads((build / "compile_commands.json").read_text())]


@pytest.mark.parametrize("cc", ["cc", ARM_CC])
@pytest.mark.parametrize("tool", ["cmake", "make"])
def test_library_builds_with_cmake_and_make(tiny, tmp_path, cc, tool):
    if not shutil.which(cc) or not shutil.which(tool):
        pytest.fail(f"{cc} / {tool} missing: run `make setup`")
    target = "mps2-an386" if cc == ARM_CC else "host"
    out = tmp_path / "lib"
    export.export_c(tiny, out, prefix="m1", target=target)
    if tool == "cmake":
        b = tmp_path / "build"
        cross = ["-DCMAKE_TOOLCHAIN_FILE=" + str(EXAMPLES / "bare_metal" / "toolchain-arm-none-eabi.cmake")] \
            if cc == ARM_CC else []
        run(["cmake", "-S", out, "-B", b, "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *cross])
        run(["cmake", "--build", b, "-j2"])
        lib, commands = b / "libm1.a", compile_commands_cmake(b)
    else:
        ar = "arm-none-eabi-ar" if cc == ARM_CC else "ar"
        r = run(["make", "-C", out, "-j2", f"CC={cc}", f"AR={ar}", f"M1_OUT={tmp_path / 'mk'}", "CFLAGS="])
        lib = tmp_path / "mk" / "libm1.a"
        commands = [ln for ln in r.stdout.splitlines() if ln.startswith(cc + " ") and " -c " in ln]
    assert lib.is_file()
    want = cflags.EXACT + project.arch_flags(target)
    assert len(commands) == 1                   # the one translation unit
    for c in commands:
        assert all(f in c.split() for f in want), c
    assert global_symbols(lib, "arm-none-eabi-nm" if cc == ARM_CC else "nm") == public_api("m1")


# --------------------------------------------------------------------------- two models in one program

@pytest.fixture(scope="module")
def two_models(trained, tmp_path_factory):
    """The qa (trec6) and spam (sms_spam) tiny models, their test splits and references."""
    from test_e2e import split_texts
    d = tmp_path_factory.mktemp("two_models")
    models = {}
    for prefix, dataset in MODELS.items():
        run_dir = trained(dataset)
        art = artifact.load(run_dir / "artifact")
        _, texts, *_ = split_texts(run_dir)
        # sent as bare lines without flow control below: the texts that fit the line
        texts = [t for t in texts if len(t.encode()) < LINE_MAX]
        models[prefix] = {"art": art, "texts": texts, "host": build_mod.build_host(art, d / f"host_{prefix}")}
    texts = models["qa"]["texts"] + models["spam"]["texts"]
    for prefix, m in models.items():
        m["want"] = expected_answers(m["art"], m["host"], texts)
    return {"dir": d, "models": models, "texts": texts}


def expected_answers(art: artifact.Artifact, host_exe: Path, texts: list[str]) -> list[tuple]:
    """(cls, exit, logit bits) or ("err", NAME) per text: the host emulator's replies,
    checked here against the PyTorch deploy mirror."""
    reqs = b"".join((b"!c " + t.encode() if t.startswith("!") else t.encode()) + b"\n" for t in texts)
    r = subprocess.run([str(host_exe)], input=reqs, capture_output=True, timeout=300)
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(texts)
    tok = tok_mod.from_str(art.tokenizer_json)
    every = [tok_mod.encode_all(tok, t) for t in texts]
    ok = [k for k, e in enumerate(every) if e]
    res = deploy.run(deploy.DeployModel(art), [tok_mod.model_ids(every[k], art.config["seq_max"]) for k in ok],
                     [every[k] for k in ok])
    depth = res.depth(Policy[art.policy["name"].upper()], art.policy["thresholds"])
    cls, logits = res.at_exit(depth)
    want = [("err", "EMPTY")] * len(texts)
    for j, k in enumerate(ok):
        want[k] = (int(cls[j]), int(depth[j]), [f"{v:08x}" for v in logits[j].astype(np.float32).view(np.uint32)])
    got = []
    for ln in lines:
        try:
            rep = parse_reply(ln)
            got.append((rep.cls, rep.exit_depth, rep.logits_hex))
        except DeviceError as e:
            got.append(("err", e.status.name))
    assert got == want, "host emulator != PyTorch deploy mirror"
    return want


def check_program_output(stdout: str, two_models) -> None:
    lines = [ln for ln in stdout.splitlines() if ln != "done"]
    texts = two_models["texts"]
    assert len(lines) == 2 * len(texts), (len(lines), len(texts))
    for k, prefix in enumerate(MODELS):
        got = []
        for ln in lines[k::2]:
            m = ANSWER.match(ln)
            assert m and m.group(1) == prefix, ln
            got.append(("err", m.group(2)) if m.group(2) else (int(m.group(3)), int(m.group(4)), m.group(5).split(",")))
        want = two_models["models"][prefix]["want"]
        bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
        assert not bad, (f"{prefix}: {len(bad)} of {len(texts)} differ, first {texts[bad[0]]!r}: "
                         f"{got[bad[0]]} != {want[bad[0]]}")
    print(f"\n{len(texts)} texts x 2 models: every answer equals the host emulator and PyTorch")


def export_both(two_models, out: Path, target: str) -> dict[str, Path]:
    libs = {}
    for prefix, m in two_models["models"].items():
        libs[prefix] = out / prefix
        export.export_c(m["art"], libs[prefix], prefix=prefix, target=target)
    return libs


@pytest.mark.parametrize("tool", ["cmake", "make"])
def test_two_prefixed_models_in_one_host_program(two_models, tmp_path, tool):
    libs = export_both(two_models, tmp_path / "lib", "host")
    if tool == "cmake":
        b = tmp_path / "build"
        run(["cmake", "-S", EXAMPLES / "host", "-B", b, f"-DQA_EXPORT={libs['qa']}", f"-DSPAM_EXPORT={libs['spam']}"])
        run(["cmake", "--build", b, "-j2"])
        exe = b / "classify"
    else:
        run(["make", "-C", EXAMPLES / "host", f"QA_EXPORT={libs['qa']}", f"SPAM_EXPORT={libs['spam']}",
             f"BUILD={tmp_path / 'mk'}", "CFLAGS="])
        exe = tmp_path / "mk" / "classify"
    r = subprocess.run([str(exe)], input="".join(t + "\n" for t in two_models["texts"]), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    check_program_output(r.stdout, two_models)
    # bx_classify streams a text of any length: texts far beyond BX_LINE_MAX are classified too
    r = subprocess.run([str(exe)], input="word " * 103 + "\n" + "word " * 10000 + "\n", capture_output=True, text=True)
    assert len(r.stdout.splitlines()) == 4 and all(ANSWER.match(ln).group(3) for ln in r.stdout.splitlines()), r.stdout


@needs(ARM_CC, QEMU, "cmake")
def test_bare_metal_example_two_models_in_qemu(two_models, tmp_path):
    """examples/bare_metal with the whole test splits as its texts.c, on the M4 under QEMU."""
    libs = export_both(two_models, tmp_path / "lib", "mps2-an386")
    texts = [t.encode() for t in two_models["texts"]]
    (tmp_path / "texts.c").write_text(
        '#include "texts.h"\n\nconst char *const texts[] = {\n'
        + "".join(f"    {render.c_string(t.decode())},\n" for t in texts)
        + "};\nconst unsigned text_lens[] = {" + ", ".join(str(len(t)) for t in texts) + "};\n"
        "const unsigned n_texts = sizeof text_lens / sizeof text_lens[0];\n")
    b = tmp_path / "build"
    run(["cmake", "-S", EXAMPLES / "bare_metal", "-B", b, f"-DQA_EXPORT={libs['qa']}", f"-DSPAM_EXPORT={libs['spam']}",
         f"-DTEXTS_C={tmp_path / 'texts.c'}",
         "-DCMAKE_TOOLCHAIN_FILE=" + str(EXAMPLES / "bare_metal" / "toolchain-arm-none-eabi.cmake")])
    run(["cmake", "--build", b, "-j2"])
    console = tmp_path / "console.txt"       # the semihosting console (QEMU's default is its stderr)
    run([QEMU, "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "none",
         "-chardev", f"file,id=con,path={console}", "-semihosting-config", "enable=on,target=native,chardev=con",
         "-kernel", b / "classify.elf"], timeout=600)
    out = console.read_text()
    assert out.splitlines()[-1] == "done", out[-2000:]
    check_program_output(out, two_models)


# --------------------------------------------------------------------------- C++ callers, any flags (issue 21)

def export_as(two_models, out: Path, target: str, prefixes: dict[str, str], fmt: str = "cmake") -> dict[str, Path]:
    """Export the qa and spam models under other prefixes (golden sentences: each model's
    own training run's test split, found beside its artifact)."""
    libs = {}
    for model, prefix in prefixes.items():
        libs[prefix] = out / prefix
        export.export_c(two_models["models"][model]["art"], libs[prefix], prefix=prefix, target=target, fmt=fmt)
    return libs


@pytest.mark.parametrize("cxx,cc", [("g++", "gcc"), ("clang++", "clang")])
def test_cpp_host_program_with_prefixes_sent_and_sent_block(two_models, tmp_path, cxx, cc):
    """examples/cpp_host (C++, CMake) with `sent` and `sent_block`, one prefix the other's
    start: both self-tests pass and every answer on both test splits equals the host emulator."""
    libs = export_as(two_models, tmp_path / "lib", "host", {"qa": "sent", "spam": "sent_block"})
    b = tmp_path / "build"
    run(["cmake", "-S", EXAMPLES / "cpp_host", "-B", b, f"-DSENT_EXPORT={libs['sent']}",
         f"-DSENT_BLOCK_EXPORT={libs['sent_block']}", f"-DCMAKE_CXX_COMPILER={cxx}", f"-DCMAKE_C_COMPILER={cc}"])
    r = run(["cmake", "--build", b, "-j2"])
    assert "warning" not in r.stdout.lower(), r.stdout
    r = subprocess.run([str(b / "classify")], input="".join(t + "\n" for t in two_models["texts"]),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, _, rest = r.stdout.partition("\n")
    assert first == "selftest 0 0", first
    check_program_output(rest, two_models)


@needs(ARM_CC, QEMU)
def test_arduino_sketch_with_prefixes_sent_and_sent_exit_on_the_m4_in_qemu(two_models, tmp_path):
    """examples/arduino/classify built as the Arduino IDE builds a sketch: the .ino as a C++
    unit with `#include "Arduino.h"` first (arm-none-eabi-g++), each library's
    src/<prefix>_classifier.c as C (arm-none-eabi-gcc) with the core's flags and -O2 only
    (none of the generated flags); no fused multiply-add in the libraries' code; run on
    mps2-an386 in QEMU: both self-tests pass and every answer equals the host emulator."""
    libs = export_as(two_models, tmp_path / "lib", "mps2-an386", {"qa": "sent", "spam": "sent_exit"},
                     fmt="arduino")
    arch = project.arch_flags("mps2-an386")
    texts = [t.encode() for t in two_models["texts"]]
    b = tmp_path / "build"
    b.mkdir()
    ino = EXAMPLES / "arduino" / "classify" / "classify.ino"
    (b / "classify.ino.cpp").write_text('#include "Arduino.h"\n#line 1 "classify.ino"\n' + ino.read_text())
    (b / "texts.cpp").write_text(
        '#include "texts.h"\n\nconst char *const texts[] = {\n'
        + "".join(f"    {render.c_string(t.decode())},\n" for t in texts)
        + "};\nconst unsigned text_lens[] = {" + ", ".join(str(len(t)) for t in texts) + "};\n"
        "const unsigned n_texts = sizeof text_lens / sizeof text_lens[0];\n")
    inc = [f"-I{d}" for d in (EXAMPLES / "arduino" / "qemu", EXAMPLES / "common", EXAMPLES / "bare_metal",
                              libs["sent"] / "src", libs["sent_exit"] / "src")]
    objs = []
    for src in (b / "classify.ino.cpp", EXAMPLES / "arduino" / "qemu" / "core.cpp", b / "texts.cpp"):
        objs.append(b / (src.name + ".o"))
        run(["arm-none-eabi-g++", *arch, "-Os", "-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra",
             *inc, "-c", "-o", objs[-1], src])
    for prefix, d in libs.items():
        objs.append(b / f"{prefix}.o")
        run([ARM_CC, *arch, "-O2", "-std=gnu11", f"-I{d / 'src'}", "-c", "-o", objs[-1], d / "src" / f"{prefix}_classifier.c"])
        code = run(["arm-none-eabi-objdump", "-d", objs[-1]]).stdout.lower()
        assert not re.search(r"\tv(fma|fms|fnma|fnms)\b", code), f"{prefix}: fused multiply-add without the flags"
    objs.append(b / "startup.o")
    run([ARM_CC, *arch, "-O2", "-std=gnu11", "-c", "-o", objs[-1], EXAMPLES / "bare_metal" / "startup.c"])
    elf = b / "classify.elf"
    # linked by gcc: the sketch uses no C++ runtime (no exceptions, RTTI or new), and Debian's
    # arm-none-eabi toolchain here has no libstdc++ for nano.specs
    run([ARM_CC, *arch, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
         f"-T{EXAMPLES / 'bare_metal' / 'mps2_an386.ld'}", "-Wl,--gc-sections", "-o", elf, *objs, "-lm"])
    console = tmp_path / "console.txt"
    run([QEMU, "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "none",
         "-chardev", f"file,id=con,path={console}", "-semihosting-config", "enable=on,target=native,chardev=con",
         "-kernel", elf], timeout=600)
    out = console.read_text()
    first, _, rest = out.partition("\n")
    assert first == "selftest 0 0", out[:2000]
    assert rest.splitlines()[-1] == "done", out[-2000:]
    check_program_output(rest, two_models)
