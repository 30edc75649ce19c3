#!/usr/bin/env bash
# Install everything beexgen needs on a fresh Debian/Ubuntu machine; safe to rerun.
#   - Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm (no recommends),
#     clang + libclang-rt-14-dev (libFuzzer) and cppcheck for the tests
#   - Python: this package (editable) with torch==2.13.0 (CPU) and the test tools
#   - unicorn (counts Cortex-M4 instructions per function) and the cmsisdsp 1.10.3 sdist
#     (Apache-2.0: CMSIS-DSP's q7 kernels, the bench's int8 peer), into the cache
#   - the three offline data sets, fetched once into the cache (~/.cache/beexgen)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi)
# newlib (nano.specs) is a separate package: the compiler alone cannot link firmware
case "$(arm-none-eabi-gcc -print-file-name=nano.specs 2>/dev/null)" in
    /*) ;;
    *) need_apt+=(libnewlib-arm-none-eabi) ;;
esac
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
# fuzzing (libFuzzer) and static checks used by the tests
command -v clang >/dev/null || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need_apt+=(libclang-rt-14-dev)
command -v cppcheck >/dev/null || need_apt+=(cppcheck)
# the exported library's CMakeLists.txt and Makefile (tests/test_export.py builds both)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v make >/dev/null || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# installed, and from this checkout (not another clone's editable install)
if ! $PY -c "import os, beexgen.train.model, beexgen.codegen, tokenizers, serial, jinja2, safetensors, pytest, sklearn, transformers, optuna
assert all(os.path.realpath(m.__file__).startswith(os.path.realpath('.') + os.sep) for m in (beexgen.train.model, beexgen.codegen))" 2>/dev/null; then
    echo "setup: installing Python packages (torch==2.13.0 CPU build)"
    $PY -m pip install -q -e '.[dev]'
fi

# the Cortex-M4 instruction counter (codegen/m4emu.py) and the int8 peer's sources
if ! $PY -c "import unicorn, wheel" 2>/dev/null; then
    echo "setup: installing unicorn (M4 instruction counts) and wheel"
    $PY -m pip install -q "unicorn==2.1.4" wheel
fi
echo "setup: CMSIS-DSP sdist (int8 peer of the bench)"
$PY -c "from beexgen.codegen import m4bench; print(m4bench.cmsisdsp_sdist())"

echo "setup: data sets"
$PY -m beexgen.cli fetch
echo "setup: done"
