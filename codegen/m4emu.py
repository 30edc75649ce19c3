"""Run functions of a Cortex-M4 ELF in unicorn and count the instructions they execute.

    m4 = M4(build.elf)                       # firmware or kernel-bench ELF
    buf = m4.alloc(64)
    ret, n = m4.call("bx_popcount", 0xFF)    # r0 on return, instructions executed

Why unicorn. QEMU has no cycle model; under `-icount` its timer gives instruction counts
for a whole request (the firmware's `cost=`), not per function. unicorn is QEMU's CPU
core as a library: the same Thumb-2 + FPv4 translation, the same translation blocks, so
the same instruction counts, with hooks. Counting is by block: a translation block is
straight-line code that runs to its end once entered, so a block hook adds the number of
instructions between the block's start and end (read once from `objdump -d` of the ELF).
Instructions skipped by an IT condition count, as they do under QEMU -icount.

Memory: the ELF's PT_LOAD segments are copied to their virtual addresses (so `.data` is
initialised and `.bss` zeroed without running the start-up code) and to their load
addresses; flash and RAM regions are those of the board (mps2-an386 by default); the
System Control Space (0xE000E000..) is mapped as plain memory, so start-up code that
writes CPACR does not fault (unicorn's FPU is on from reset). `alloc` hands out scratch
buffers from a heap above the ELF's RAM image, and the stack is the ELF's `__stack_top`
when it has one (the firmware), else the top of RAM.

Attribution (`Trace`): every executed block is charged to the innermost *stage* on a
shadow call stack. A stage is opened when a block starts at the entry of a function the
caller names (its return address is LR at that moment) and closed when a block starts at
that return address with the stack pointer back where it was; a callback per entry may
pick the stage's name from the arguments (e.g. the weight pointer of a layer).
"""
from __future__ import annotations

import bisect
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

OBJDUMP = "arm-none-eabi-objdump"
NM = "arm-none-eabi-nm"
RETURN_PAD = 0x1FFF0000          # a mapped address with no code: LR of an outermost call
SCS = (0xE0000000, 0x00100000)   # private peripheral bus (CPACR, NVIC, SysTick) as RAM
_INSN = re.compile(r"^\s*([0-9a-f]+):\t[0-9a-f]{4}(?: [0-9a-f]{4})?\s*\t")


class M4Error(RuntimeError):
    """The emulated code faulted, ran away or the ELF could not be read."""


def _elf_segments(data: bytes) -> list[tuple[int, int, bytes, int]]:
    """PT_LOAD segments of a 32-bit little-endian ELF: (vaddr, paddr, file bytes, memsz)."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise M4Error("not a 32-bit little-endian ELF")
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    out = []
    for i in range(phnum):
        p_type, off, vaddr, paddr, filesz, memsz, _flags, _align = struct.unpack_from("<8I", data, phoff + i * phentsize)
        if p_type == 1 and memsz:
            out.append((vaddr, paddr, data[off:off + filesz], memsz))
    return out


def elf_symbols(elf: str | Path) -> dict[str, tuple[int, int, str]]:
    """name -> (address, size, nm type) for every sized symbol (Thumb bit cleared)."""
    r = subprocess.run([NM, "-S", str(elf)], capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = (int(parts[0], 16) & ~1, int(parts[1], 16), parts[2])
    return out


def elf_instructions(elf: str | Path) -> list[int]:
    """Sorted start addresses of every instruction in the ELF's code (objdump -d)."""
    r = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(elf)], capture_output=True, text=True, check=True)
    addrs = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\t", line)
        if m and "\t.word" not in line and "\t.short" not in line and "\t.byte" not in line:
            addrs.append(int(m.group(1), 16))
    return sorted(set(addrs))


@dataclass
class Trace:
    """What one traced call executed: instructions per stage, in first-seen order."""
    stages: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.stages.values())


class M4:
    """One Cortex-M4 ELF loaded into unicorn (see the module docstring). core: the CPU model
    (cortex-m4 by default; cortex-m7 and cortex-m33 run their boards' builds), flash and
    ram: the board's regions (for_board)."""

    @classmethod
    def for_board(cls, elf: str | Path, board: str) -> "M4":
        """elf loaded with board's core and memory regions (codegen/boards)."""
        from beexgen.codegen import boards
        b = boards.get_board(board)
        return cls(elf, flash=(b.flash.origin, b.flash.length), ram=(b.ram.origin, b.ram.length), core=b.core)

    def __init__(self, elf: str | Path, *, flash=(0x00000000, 4 << 20), ram=(0x20000000, 4 << 20),
                 core: str = "cortex-m4"):
        from unicorn import UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
        from unicorn import arm_const

        self.elf = Path(elf)
        data = self.elf.read_bytes()
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        model = getattr(arm_const, "UC_CPU_ARM_" + core.upper().replace("-", "_"), None)
        if model is None:
            raise M4Error(f"unicorn has no CPU model for {core}")
        self.uc.ctl_set_cpu_model(model)
        for base, size in (flash, ram, SCS, (RETURN_PAD, 0x1000)):
            self.uc.mem_map(base, size)
        self.uc.mem_write(RETURN_PAD, b"\x00\xbf" * 8)      # nops, never executed
        top = ram[0]
        for vaddr, paddr, blob, memsz in _elf_segments(data):
            image = blob + bytes(memsz - len(blob))
            self.uc.mem_write(vaddr, image)
            if paddr != vaddr and len(blob):
                self.uc.mem_write(paddr, blob)
            if ram[0] <= vaddr < ram[0] + ram[1]:
                top = max(top, vaddr + memsz)
        self.symbols = elf_symbols(self.elf)
        self.insns = elf_instructions(self.elf)
        self._heap0 = (top + 15) & ~15
        self._heap = self._heap0
        self._ram_end = ram[0] + ram[1]
        st = self.symbols.get("__stack_top")
        self.sp0 = st[0] if st else self._ram_end - 16
        self._block_len: dict[tuple[int, int], int] = {}

    # ----------------------------------------------------------------- memory
    def alloc(self, nbytes: int, align: int = 8) -> int:
        """A zeroed scratch buffer in RAM (freed all at once by reset_heap)."""
        addr = (self._heap + align - 1) & ~(align - 1)
        if addr + nbytes > self._ram_end - 65536:
            raise M4Error("emulator heap exhausted")
        self.uc.mem_write(addr, bytes(nbytes))
        self._heap = addr + nbytes
        return addr

    def reset_heap(self) -> None:
        self._heap = self._heap0

    def write(self, addr: int, data: bytes) -> None:
        self.uc.mem_write(addr, bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))

    def put(self, data: bytes, align: int = 8) -> int:
        """alloc + write: the address of a copy of data."""
        addr = self.alloc(max(len(data), 1), align)
        self.write(addr, data)
        return addr

    def addr(self, name: str) -> int:
        try:
            return self.symbols[name][0]
        except KeyError:
            raise M4Error(f"{self.elf.name} has no symbol {name}") from None

    # ----------------------------------------------------------------- counting
    def block_instructions(self, addr: int, size: int) -> int:
        key = (addr, size)
        n = self._block_len.get(key)
        if n is None:
            n = bisect.bisect_left(self.insns, addr + size) - bisect.bisect_left(self.insns, addr)
            self._block_len[key] = n
        return n

    def _setup(self, fn: str | int, args, fargs):
        from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_R0, UC_ARM_REG_S0, UC_ARM_REG_SP

        pc = self.addr(fn) if isinstance(fn, str) else fn
        regs = [int(a) & 0xFFFFFFFF for a in args]
        sp = self.sp0 - 4 * max(0, len(regs) - 4)
        sp &= ~7
        for i, v in enumerate(regs[4:]):
            self.uc.mem_write(sp + 4 * i, struct.pack("<I", v))
        for i, v in enumerate(regs[:4]):
            self.uc.reg_write(UC_ARM_REG_R0 + i, v)
        for i, v in enumerate(fargs):
            self.uc.reg_write(UC_ARM_REG_S0 + i, struct.unpack("<I", struct.pack("<f", float(v)))[0])
        self.uc.reg_write(UC_ARM_REG_SP, sp)
        self.uc.reg_write(UC_ARM_REG_LR, RETURN_PAD | 1)
        return pc

    def _run(self, pc: int, max_instructions: int) -> None:
        from unicorn import UcError

        try:
            self.uc.emu_start(pc | 1, RETURN_PAD, count=max_instructions)
        except UcError as e:
            from unicorn.arm_const import UC_ARM_REG_PC
            raise M4Error(f"emulated code faulted at pc={self.uc.reg_read(UC_ARM_REG_PC):#x}: {e}") from None
        from unicorn.arm_const import UC_ARM_REG_PC
        if self.uc.reg_read(UC_ARM_REG_PC) & ~1 != RETURN_PAD:
            raise M4Error(f"{max_instructions} instructions without returning")

    def call(self, fn: str | int, *args, fargs=(), max_instructions: int = 200_000_000) -> tuple[int, int]:
        """Call fn(args) (ints in r0-r3 then the stack; floats in s0..) to its return.
        Returns (r0, instructions executed, the final return included)."""
        from unicorn import UC_HOOK_BLOCK
        from unicorn.arm_const import UC_ARM_REG_R0

        pc = self._setup(fn, args, fargs)
        counts: dict[tuple[int, int], int] = {}

        def on_block(uc, addr, size, _):
            k = (addr, size)
            counts[k] = counts.get(k, 0) + 1

        h = self.uc.hook_add(UC_HOOK_BLOCK, on_block)
        try:
            self._run(pc, max_instructions)
        finally:
            self.uc.hook_del(h)
        n = sum(c * self.block_instructions(a, s) for (a, s), c in counts.items() if a != RETURN_PAD)
        return self.uc.reg_read(UC_ARM_REG_R0), n

    def ret_float(self) -> float:
        from unicorn.arm_const import UC_ARM_REG_S0
        return struct.unpack("<f", struct.pack("<I", self.uc.reg_read(UC_ARM_REG_S0)))[0]

    def trace(self, fn: str | int, *args, stages: dict, root: str = "other", fargs=(),
              max_instructions: int = 500_000_000) -> tuple[int, Trace]:
        """Call fn like `call`, charging each executed instruction to a stage.

        stages: {function symbol: stage name, or a callable (m4, caller's stage) -> stage
        name evaluated at the function's entry (arguments are in r0-r3 and on the stack),
        returning None to stay in the caller's stage}. Code outside every named function is `root`.
        Returns (r0, Trace)."""
        from unicorn import UC_HOOK_BLOCK
        from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_R0, UC_ARM_REG_SP

        entries = {self.addr(name): how for name, how in stages.items() if name in self.symbols}
        pc = self._setup(fn, args, fargs)
        names = [root]
        index = {root: 0}
        stack = [(0, -1, -1)]                  # (stage index, return address, sp at entry)
        counts: dict[tuple[int, int, int], int] = {}
        uc = self.uc

        def on_block(_uc, addr, size, _):
            top = stack[-1]
            if addr == top[1] and len(stack) > 1:
                sp = uc.reg_read(UC_ARM_REG_SP)
                while len(stack) > 1 and stack[-1][1] == addr and stack[-1][2] == sp:
                    stack.pop()
            how = entries.get(addr)
            if how is not None:
                name = how(self, names[stack[-1][0]]) if callable(how) else how
                if name is not None:
                    if name not in index:
                        index[name] = len(names)
                        names.append(name)
                    stack.append((index[name], uc.reg_read(UC_ARM_REG_LR) & ~1, uc.reg_read(UC_ARM_REG_SP)))
            k = (stack[-1][0], addr, size)
            counts[k] = counts.get(k, 0) + 1

        h = uc.hook_add(UC_HOOK_BLOCK, on_block)
        try:
            self._run(pc, max_instructions)
        finally:
            uc.hook_del(h)
        self.last_blocks = {(names[si], a, s): c for (si, a, s), c in counts.items() if a != RETURN_PAD}
        tr = Trace({n: 0 for n in names})
        for (name, a, s), c in self.last_blocks.items():
            tr.stages[name] += c * self.block_instructions(a, s)
        tr.stages = {k: v for k, v in tr.stages.items() if v}
        return uc.reg_read(UC_ARM_REG_R0), tr

    def block_addresses(self, addr: int, size: int) -> list[int]:
        """The instruction addresses of the block [addr, addr + size)."""
        return self.insns[bisect.bisect_left(self.insns, addr):bisect.bisect_left(self.insns, addr + size)]

    def reg(self, n: int) -> int:
        """Core register rN (0..12)."""
        from unicorn.arm_const import UC_ARM_REG_R0
        return self.uc.reg_read(UC_ARM_REG_R0 + n)

    def stack_arg(self, i: int) -> int:
        """The i-th stack argument (0 = the fifth argument) at a function's entry."""
        from unicorn.arm_const import UC_ARM_REG_SP
        sp = self.uc.reg_read(UC_ARM_REG_SP)
        return struct.unpack("<I", self.read(sp + 4 * i, 4))[0]
