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

Symbol prefix. Every global name of the C (functions, data, types, macros) starts with
`bx_` / `BX_`, and so do its file names; with another prefix every one of them is
renamed (`bx_classify` -> `sent_classify`, `BX_N_CLASSES` -> `SENT_N_CLASSES`,
`bx_model.h` -> `sent_model.h`), so two models link into one image.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import cflags, project, render

FORMATS = ("cmake", "make", "zephyr", "platformio", "arduino")
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


def export_c(art: art_mod.Artifact | str | Path, out_dir: str | Path, *, prefix: str = project.DEFAULT_PREFIX,
             fmt: str = "cmake", target: str = project.PORTABLE, line_max: int = project.LINE_MAX,
             command: str | None = None, force: bool = False) -> list[Path]:
    """Write the library of `art` into out_dir; return the files written.

    target: the kernel files and core flags ("portable", "host" or a board name).
    line_max: BX_LINE_MAX (the protocol's command lines; a library classifies texts of any length).
    force: replace a non-empty out_dir (else ExportError)."""
    check_prefix(prefix)
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: want one of {', '.join(FORMATS)}")
    isas = project.target_isas(target)           # UnknownBoardError for a bad board
    art = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ExportError(f"{out} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    command = command or (f"beexgen export-c {art.path or 'ARTIFACT'} --out {out} --prefix {prefix} "
                          f"--format {fmt} --target {target}")
    proj = project.write_project(art, out, target=target, board_name="library", cost_unit="none",
                                 line_max=line_max, app=[], werror=False, name=prefix, command=command)
    env = render.environment()
    banner = render.banner(art, command)
    ctx = dict(banner=banner, name=prefix, NAME=prefix.upper(), version=LIBRARY_VERSION)
    render.render_to(env, "export_README.md.j2", out / "README.md", classes=list(art.classes), isas=isas,
                     exact=cflags.EXACT, arch=proj.flags.arch, **ctx)
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
