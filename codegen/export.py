"""`beexgen export-c`: the generated C as a library for a user's own firmware.

    export_c("runs/art", "lib/sentiment", prefix="sent", fmt="zephyr", target="mps2-an386")

writes the library tree of codegen/project.py (src/ with the public header
`<prefix>_classifier.h`, bx_flags.cmake + bx_flags.mk, CMakeLists.txt, Makefile) without
any application file (no protocol loop, start-up code, UART driver or linker script), a
README.md naming the artifact hash, and the metadata of the format:

    cmake, make   nothing more (both build files are always written)
    zephyr        zephyr/module.yml, zephyr/Kconfig, zephyr/CMakeLists.txt
    platformio    library.json (srcDir/includeDir src, the flags of bx_flags.*)
    arduino       library.properties (sources in src/, as the Arduino library format wants)

Symbol prefix. Every name of the C (functions, data, types, macros) starts with
`bx_` / `BX_`, and so do its file names; with another prefix every one of them is
renamed (`bx_classify` -> `sent_classify`, `BX_N_CLASSES` -> `SENT_N_CLASSES`,
`bx_model.h` -> `sent_model.h`).

One translation unit. The library compiles as src/<prefix>_classifier.c alone, which
#includes its parts (src/*.c.inc) with BX_UNITY defined: every internal function and
table is static (firmware_templates/bx_internal.h), so the objects' only global symbols
are the public API (PUBLIC_SUFFIXES). No public suffix ends with `_` + another, so the
public names of two legal prefixes P and P_x never meet (P_x_s2 == P_s1 would need
s1 == x_s2), and any two exports link into one image. The sources forbid contraction
and refuse fast math themselves, so no flag of the user's build changes a result.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from beexgen.core import artifact as art_mod, outdir
from beexgen.codegen import cflags, project, render

from beexgen.codegen.layout import FORMATS  # noqa: E402  (defined once, with the prefix)
# The global symbols of an exported library: <prefix>_<suffix> (bx_classifier.h, bx_model.h).
PUBLIC_SUFFIXES = ("classify", "engine_set_policy", "engine_get_policy", "policy_name", "policy_from_name",
                   "model_ids", "selftest", "labels", "stream_begin", "stream_byte", "stream_bytes", "stream_end",
                   "stream_ids")
UNITY = "bx_classifier.c"
TOOLCHAIN_FILE = "toolchain-arm-none-eabi.cmake"     # copied into <out>/cmake/
PART_SUFFIX = ".inc"        # bx_engine.c -> bx_engine.c.inc: compiled only through UNITY
LIBRARY_VERSION = "0.1.0"
# bx_ / BX_ at the start of a word, and BX_ after -D (a define in a flag)
_LOWER = re.compile(r"\bbx_")
_UPPER = re.compile(r"(?<=-D)BX_|\bBX_")


class ExportError(ValueError):
    """Bad export arguments (prefix, format, target, output directory)."""


def check_prefix(prefix: str) -> str:
    if not project.PREFIX.fullmatch(prefix or ""):
        raise ExportError(f"prefix {prefix!r}: want a lower-case C identifier such as 'sent' or 'spam2' "
                          "(letters, digits and single '_' between them, a letter first)")
    return prefix


def apply_prefix(root: Path, prefix: str) -> list[Path]:
    """Rename bx_/BX_ to prefix_/PREFIX_ in the names and contents of every file under root."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if prefix == project.DEFAULT_PREFIX:
        return files
    out = []
    for p in files:
        text = _UPPER.sub(prefix.upper() + "_", _LOWER.sub(prefix + "_", p.read_text()))
        q = p.with_name(_LOWER.sub(prefix + "_", p.name))
        q.write_text(text)
        if q != p:
            p.unlink()
        out.append(q)
    return sorted(out)


def footprint(proj: project.Project, target: str) -> tuple[dict | None, str]:
    """Flash and static RAM of the library's one unit, compiled as the export's CMake
    recipe compiles it (arm-none-eabi-gcc for a board, the host cc otherwise):
    ({"flash", "ram", "compiler", "flags"}, "") or (None, why not)."""
    import shutil
    import subprocess
    import tempfile

    arm = bool(proj.flags.arch)
    cc, size = ("arm-none-eabi-gcc", "arm-none-eabi-size") if arm else ("cc", "size")
    if not shutil.which(cc) or not shutil.which(size):
        return None, f"{cc} not found"
    flags = proj.flags.arch + cflags.STD + [f for f in proj.flags.opt if f != "-g"] + cflags.EXACT
    with tempfile.TemporaryDirectory(prefix="beexgen-size-") as d:
        obj = Path(d) / "lib.o"
        r = subprocess.run([cc, *flags, f"-I{proj.src}", "-c", "-o", str(obj), str(proj.src / UNITY)],
                           capture_output=True, text=True)
        if r.returncode:
            raise ExportError(f"the exported library does not compile with {cc}:\n{r.stderr[-3000:]}")
        r = subprocess.run([size, "-A", str(obj)], capture_output=True, text=True)
    flash = ram = 0
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) < 2 or not f[1].isdigit():
            continue
        name, n = f[0], int(f[1])
        if re.match(r"\.(text|rodata|data\.rel\.ro)", name):
            flash += n
        elif re.match(r"\.data", name):
            flash += n
            ram += n
        elif re.match(r"\.bss|COMMON", name):
            ram += n
    return {"flash": flash, "ram": ram, "compiler": cc, "flags": flags}, ""


def export_c(art: art_mod.Artifact | str | Path, out_dir: str | Path, *, prefix: str = project.DEFAULT_PREFIX,
             fmt: str = "cmake", target: str = project.PORTABLE, line_max: int = project.LINE_MAX,
             command: str | None = None, force: bool = False, golden: list[dict] | None = None,
             report=None) -> list[Path]:
    """Write the library of `art` into out_dir; return the files written.

    target: the kernel files and core flags ("portable", "host" or a board name).
    line_max: BX_LINE_MAX (the protocol's command lines; a library classifies texts of any length).
    force: replace a non-empty out_dir that beexgen created (core/outdir.py). golden: the self-test's
    sentences and answers (codegen/selftest.py golden_set; None: from the test split of
    the training run beside the artifact, if there is one). report: called with each line
    of the summary (the measured flash and RAM, the self-test's sentences)."""
    check_prefix(prefix)
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: want one of {', '.join(FORMATS)}")
    isas = project.target_isas(target)           # UnknownBoardError for a bad board
    art = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    if golden is None:
        from beexgen.codegen import selftest
        golden = selftest.default_golden(art, line_max)
    out = outdir.prepare(out_dir, force=force, command="beexgen export-c")   # the --force rule (core/outdir.py)
    command = command or (f"beexgen export-c {art.path or 'ARTIFACT'} --out {out} --prefix {prefix} "
                          f"--format {fmt} --target {target}")
    proj = project.write_project(art, out, target=target, board_name="library", cost_unit="none",
                                 line_max=line_max, app=[], werror=False, name=prefix, command=command,
                                 golden=golden)
    env = render.environment()
    banner = render.banner(art, command)
    parts = []
    for f in proj.flags.lib_sources:                 # src/bx_engine.c -> src/bx_engine.c.inc
        (out / f).rename(out / (f + PART_SUFFIX))
        parts.append(Path(f).name + PART_SUFFIX)
    portable = project.KERNEL_FILES[project.PORTABLE]
    isa_headers = [f for f in project.kernel_files(target) if f.endswith(".h") and f not in portable]
    render.render_to(env, "bx_unity.c.j2", proj.src / UNITY, banner=banner, parts=parts, isa_headers=isa_headers)
    proj.flags.lib_sources = [f"{project.SRC}/{UNITY}"]
    project.render_build_files(out, proj.flags, banner)
    ctx = dict(banner=banner, name=prefix, NAME=prefix.upper(), version=LIBRARY_VERSION)
    (out / "cmake").mkdir()
    render.copy_sources([TOOLCHAIN_FILE], out / "cmake")
    size, size_why = footprint(proj, target)
    if report:
        report(f"size: {size['flash']} B flash, {size['ram']} B static RAM ({size['compiler']} "
               f"{' '.join(size['flags'])})" if size else f"size: not measured ({size_why})")
        report(f"self-test: {len(golden)} golden sentences" if golden else
               "self-test: no golden sentences (no split.json beside the artifact): <prefix>_selftest() returns -1")
    render.render_to(env, "export_README.md.j2", out / "README.md", classes=list(art.classes), isas=isas,
                     exact=cflags.EXACT, fast_math=cflags.FAST_MATH, arch=proj.flags.arch, target=target, size=size, size_why=size_why,
                     n_golden=len(golden), dsp="arm_dsp" in isas, line_max=line_max, **ctx)
    if fmt == "zephyr":
        (out / "zephyr").mkdir()
        for t, name in (("zephyr_module.yml.j2", "module.yml"), ("zephyr_Kconfig.j2", "Kconfig"),
                        ("zephyr_CMakeLists.txt.j2", "CMakeLists.txt")):
            render.render_to(env, t, out / "zephyr" / name, **ctx)
    elif fmt == "platformio":
        render.render_to(env, "library.json.j2", out / "library.json",
                         flags=proj.flags.arch + cflags.STD + cflags.EXACT, **ctx)
    elif fmt == "arduino":
        render.render_to(env, "library.properties.j2", out / "library.properties", **ctx)
    return apply_prefix(out, prefix)
