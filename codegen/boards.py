"""Cortex-M cores and boards as data.

A board is one TOML file in codegen/boards/ (`<name>.toml`): its core, memory map, UART
(kind, address, interrupt), cost counter and clock, with no code paths. A core is one
table of codegen/cores.toml: -mcpu, FPU and float ABI, DSP, Thumb-2, VTOR, exception
frame size and the Arm kernel files it can run. Both load here into the dataclasses
below; the firmware's C reads the facts from the generated board header (`bx_board.h`,
through `Board.c_defines()`) and the linker script (`cortexm.ld.j2`, through
`Board.flash` / `Board.ram`), the compiler from `Board.arch_flags()`.

Adding a board of a known family is adding one file to codegen/boards/. Only a new
*kind* of UART, counter or clock needs C: firmware_templates/uart_<kind>.c,
counter_<kind>.c or clock_<kind>.c (the tables UART_DRIVERS, COUNTER_DRIVERS,
CLOCK_DRIVERS). A new core is a table in cores.toml.

Cost counters (what `bx_platform_cost()` counts):
- "cmsdk_timer": CMSDK APB timer0 (mps2, mps3) counting down at `counter.hz`. Under QEMU
  `-icount shift=S,sleep=off` every guest instruction advances virtual time by 2**S ns,
  so instructions = ticks * 1e9 / (hz * 2**S): for 25 MHz and S = 10 that is
  ticks * 40 / 2**10. The ratio is emitted as an integer multiplier and a shift
  (BX_COST_MUL, BX_COST_SHIFT), computed here once.
- "nrf_timer": the nRF51/nRF52 TIMER0 in 32-bit timer mode at 16 MHz (prescaler 0),
  read through a capture task; the same ratio as cmsdk_timer with hz = 16 MHz.
- "stm32_tim": a 32-bit STM32 general-purpose timer (TIM2) counting up. QEMU clocks its
  timers at 1 GHz; a prescaler of 2**S - 1 makes one tick per 2**S ns, i.e. exactly one
  tick per instruction under -icount shift=S.
- "dwt": the DWT cycle counter (CYCCNT). Real silicon only (it reads 0 under QEMU), and
  Armv7-M / Armv8-M Mainline only.
- "systick": SysTick (every Cortex-M): 24 bits at the core clock `hz`, its wrap interrupt
  counting the wraps (counter_systick.c); instructions under QEMU -icount (the same
  ratio as cmsdk_timer), cycles on silicon. mps3-an547 uses it: the SSE-300 has no
  CMSDK timer.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

ICOUNT_SHIFT = 10          # -icount shift=10: one guest instruction = 1024 ns of virtual time
BOARD_DIR = Path(__file__).with_name("boards")
CORES_FILE = Path(__file__).with_name("cores.toml")

# Driver file of each UART, counter and clock kind (firmware_templates/).
UART_DRIVERS = {"cmsdk": "uart_cmsdk.c", "stm32": "uart_stm32.c", "nrf": "uart_nrf.c"}
COUNTER_DRIVERS = {"cmsdk_timer": "counter_cmsdk_timer.c", "stm32_tim": "counter_stm32_tim.c",
                   "dwt": "counter_dwt.c", "nrf_timer": "counter_nrf_timer.c", "systick": "counter_systick.c"}
CLOCK_DRIVERS = {"reset": "clock_reset.c", "stm32f4_hsi_pll": "clock_stm32f4.c"}
COUNTER_UNITS = ("instr", "cycles")


class UnknownBoardError(ValueError):
    """A board name that is not in BOARDS."""


class BoardFileError(ValueError):
    """A board or core data file that does not describe a board or core."""


@dataclass(frozen=True)
class Core:
    name: str              # "cortex-m4"
    description: str
    mcpu: str              # gcc -mcpu=
    fpu: str | None        # gcc -mfpu= (hard float); None: soft float
    dsp: bool              # DSP extension
    thumb2: bool           # Thumb-2 (Armv7-M and later); False: Armv6-M Thumb-1
    vtor: bool             # SCB->VTOR exists
    exception_frame: int   # bytes one exception entry pushes, alignment word included
    kernels: tuple = ()    # Arm kernel files by name ("arm_thumb2", "arm_dsp")
    cmsis_header: str = "" # CMSIS-Core header (core_cm4.h ...)

    @property
    def hard_float(self) -> bool:
        return self.fpu is not None

    def arch_flags(self) -> list[str]:
        """gcc flags selecting this core, its FPU and float ABI."""
        fp = [f"-mfpu={self.fpu}", "-mfloat-abi=hard"] if self.fpu else ["-mfloat-abi=soft"]
        return [f"-mcpu={self.mcpu}", "-mthumb", *fp]


@dataclass(frozen=True)
class Region:
    origin: int
    length: int            # bytes

    @property
    def end(self) -> int:
        return self.origin + self.length


@dataclass(frozen=True)
class Uart:
    kind: str              # selects firmware_templates/uart_<kind>.c (UART_DRIVERS)
    base: int
    irq: int               # NVIC interrupt number of the receive interrupt
    baud: int = 115200
    pclk_hz: int = 0       # the UART's bus clock (baud divider)
    # STM32 only: RCC enable bits and the pins (port, rx pin, tx pin, alternate function)
    rcc_apb1: int = 0      # bit in RCC_APB1ENR
    rcc_apb2: int = 0      # bit in RCC_APB2ENR
    gpio: tuple | None = None   # STM32: (port letter, tx pin, rx pin, alternate function); nRF: (tx pin, rx pin)


@dataclass(frozen=True)
class Counter:
    kind: str              # selects firmware_templates/counter_<kind>.c (COUNTER_DRIVERS)
    unit: str              # "instr" (QEMU -icount) or "cycles" (silicon)
    base: int = 0          # timer base address (unused for dwt, systick)
    hz: int = 0            # timer input clock
    rcc_apb1: int = 0      # STM32 timer clock-enable bit in RCC_APB1ENR


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    flash: Region
    ram: Region
    uart: Uart
    counter: Counter
    clock_hz: int                      # core clock after start-up
    nvic_irqs: int                     # external interrupts in the vector table
    core: str = "cortex-m4"            # a table of cores.toml
    family: str = ""                   # SoC family (mps2, stm32f4, nrf51 ...): documentation and grouping
    nvic_prio_bits: int = 4            # __NVIC_PRIO_BITS of the device
    qemu_machine: str | None = None    # None: real hardware only
    clock_setup: str | None = None     # None: run from the reset clock; else a CLOCK_DRIVERS kind
    pll: dict = field(default_factory=dict)   # PLL M, N, P, flash wait states, APB1 divider
    flash_tools: dict = field(default_factory=dict)   # tool -> arguments (codegen/flash.py)
    usb_drive_hint: str = ""           # mass-storage name for drag-and-drop flashing
    serial_hint: str = ""              # where the UART appears on the host
    default_stack: int = 0             # stack bytes the linker reserves by default (0: firmware's default)
    line_max: int = 0                  # default BX_LINE_MAX (request bytes per line; 0: the firmware's 512):
                                       # the line buffer and receive ring scale with it
    note: str = ""                     # shown in the board list (e.g. why the default model cannot fit)

    @property
    def emulated(self) -> bool:
        return self.qemu_machine is not None

    @property
    def cost_unit(self) -> str:
        return self.counter.unit

    @property
    def cpu(self) -> Core:
        """The core record (cores.toml) of this board."""
        return get_core(self.core)

    def arch_flags(self) -> list[str]:
        """The compiler flags of the board's core: -mcpu, -mthumb, FPU and float ABI."""
        return self.cpu.arch_flags()

    @property
    def clock_kind(self) -> str:
        return self.clock_setup or "reset"

    def driver_files(self) -> list[str]:
        """The C files of this board's UART, counter and clock kinds."""
        return [UART_DRIVERS[self.uart.kind], COUNTER_DRIVERS[self.counter.kind], CLOCK_DRIVERS[self.clock_kind]]

    def cost_scale(self) -> tuple[int, int]:
        """(mul, shift): bx_platform_cost() = (ticks * mul + 2**(shift-1)) >> shift."""
        c = self.counter
        if c.kind in ("cmsdk_timer", "nrf_timer") or (c.kind == "systick" and c.unit == "instr"):
            # instructions = ticks * 1e9 / (hz * 2**S)
            r = Fraction(10**9, c.hz * 2**ICOUNT_SHIFT)
            shift = 0
            while r.denominator != 1 and shift < 32:
                r *= 2
                shift += 1
            if r.denominator != 1:
                raise ValueError(f"{self.name}: counter clock {c.hz} Hz gives no exact binary ratio")
            return int(r), shift
        return 1, 0

    def c_defines(self) -> list[tuple[str, str]]:
        """The board and core facts the Cortex-M C needs, as (macro, value) pairs for bx_board.h."""
        u, c, k = self.uart, self.counter, self.cpu
        mul, shift = self.cost_scale()
        d = [
            ("BX_CM_NVIC_IRQS", str(self.nvic_irqs)),
            ("BX_CM_CLOCK_HZ", f"{self.clock_hz}u"),
            ("BX_NVIC_PRIO_BITS", str(self.nvic_prio_bits)),
            ("BX_CORE_FPU", str(int(k.hard_float))),
            ("BX_CORE_DSP", str(int(k.dsp))),
            ("BX_CORE_THUMB2", str(int(k.thumb2))),
            ("BX_CORE_VTOR", str(int(k.vtor))),
            ("BX_CMSIS_CORE_HEADER", f'"{k.cmsis_header}"'),
            (f"BX_UART_KIND_{u.kind.upper()}", "1"),
            ("BX_UART_BASE", f"0x{u.base:08x}u"),
            ("BX_UART_IRQ", str(u.irq)),
            ("BX_UART_BAUD", f"{u.baud}u"),
            ("BX_UART_PCLK_HZ", f"{u.pclk_hz}u"),
            (f"BX_COUNTER_{c.kind.upper()}", "1"),
            ("BX_COUNTER_BASE", f"0x{c.base:08x}u"),
            ("BX_COST_MUL", f"{mul}u"),
            ("BX_COST_SHIFT", str(shift)),
            ("BX_TIM_PRESCALER", str(2**ICOUNT_SHIFT - 1)),
        ]
        if u.kind == "stm32":
            port, tx, rx, af = u.gpio
            d += [("BX_UART_RCC_APB1", f"0x{u.rcc_apb1:08x}u"), ("BX_UART_RCC_APB2", f"0x{u.rcc_apb2:08x}u"),
                  ("BX_UART_GPIO_PORT", str(ord(port) - ord("A"))), ("BX_UART_TX_PIN", str(tx)),
                  ("BX_UART_RX_PIN", str(rx)), ("BX_UART_AF", str(af))]
        if u.kind == "nrf":
            tx, rx = u.gpio
            d += [("BX_UART_TX_PIN", str(tx)), ("BX_UART_RX_PIN", str(rx))]
        if c.kind == "stm32_tim":
            d.append(("BX_COUNTER_RCC_APB1", f"0x{c.rcc_apb1:08x}u"))
        if self.clock_setup == "stm32f4_hsi_pll":
            p = self.pll
            d += [("BX_CLOCK_STM32F4_HSI_PLL", "1"), ("BX_PLL_M", str(p["m"])), ("BX_PLL_N", str(p["n"])),
                  ("BX_PLL_P", str(p["p"])), ("BX_PLL_Q", str(p["q"])), ("BX_FLASH_LATENCY", str(p["latency"])),
                  ("BX_APB1_DIV", str(p["apb1_div"]))]
        return d


# --------------------------------------------------------------------------- loading

def _take(d: dict, cls, where: str, **fixed):
    """cls(**d), with unknown or missing keys reported against the file."""
    names = {f for f in cls.__dataclass_fields__} - set(fixed)
    unknown = set(d) - names
    if unknown:
        raise BoardFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(names))}")
    try:
        return cls(**fixed, **d)
    except TypeError as e:
        raise BoardFileError(f"{where}: {e}") from None


def load_cores(path: Path = CORES_FILE) -> dict[str, Core]:
    data = tomllib.loads(path.read_text())
    cores = {}
    for name, t in data.items():
        t = dict(t)
        t.setdefault("fpu", None)
        t["kernels"] = tuple(t.get("kernels", ()))
        cores[name] = _take(t, Core, f"{path.name} [{name}]", name=name)
    return cores


def load_board(path: Path, cores: dict[str, Core] | None = None) -> Board:
    """One board file: top-level scalars, [flash], [ram], [uart], [counter], [pll], [flash_tools]."""
    where = str(path)
    try:
        t = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise BoardFileError(f"{where}: {e}") from None
    name = t.pop("name", Path(path).stem)
    if name != Path(path).stem:
        raise BoardFileError(f"{where}: name {name!r} differs from the file name {Path(path).stem!r}")
    for key, cls in (("flash", Region), ("ram", Region), ("uart", Uart), ("counter", Counter)):
        if key not in t:
            raise BoardFileError(f"{where}: no [{key}] table")
        sub = dict(t[key])
        if "gpio" in sub:
            sub["gpio"] = tuple(sub["gpio"])
        t[key] = _take(sub, cls, f"{where} [{key}]")
    b = _take(t, Board, where, name=name)
    cores = CORES if cores is None else cores
    checks = [
        (b.core in cores, f"core {b.core!r} is not in cores.toml ({', '.join(cores)})"),
        (b.uart.kind in UART_DRIVERS, f"uart kind {b.uart.kind!r}: known {', '.join(UART_DRIVERS)}"),
        (b.counter.kind in COUNTER_DRIVERS, f"counter kind {b.counter.kind!r}: known {', '.join(COUNTER_DRIVERS)}"),
        (b.clock_kind in CLOCK_DRIVERS, f"clock_setup {b.clock_kind!r}: known {', '.join(CLOCK_DRIVERS)}"),
        (b.counter.unit in COUNTER_UNITS, f"counter unit {b.counter.unit!r}: known {', '.join(COUNTER_UNITS)}"),
        (b.counter.kind != "dwt" or b.core not in cores or cores[b.core].thumb2,
         "the dwt counter needs an Armv7-M or Armv8-M Mainline core (no DWT CYCCNT on Armv6-M)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise BoardFileError(f"{where}: {msg}")
    return b


def load_boards(board_dir: Path = BOARD_DIR) -> dict[str, Board]:
    return {b.name: b for b in (load_board(p) for p in sorted(Path(board_dir).glob("*.toml")))}


CORES: dict[str, Core] = load_cores()
BOARDS: dict[str, Board] = load_boards()


def get_core(name: str) -> Core:
    try:
        return CORES[name]
    except KeyError:
        raise UnknownBoardError(f"unknown core {name!r}; known cores: {', '.join(CORES)}") from None


def get_board(name: str) -> Board:
    """The board called `name`; UnknownBoardError lists the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoardError(
            f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None


DEFAULT_BOARD = "nucleo-f411re"      # the real board `beexgen build`, `flash` and the RAM check assume


def board_help(emulated_only: bool = False) -> str:
    """'name (core, QEMU), ...' for the CLI's --board help, from the registry."""
    rows = [f"{n} ({b.cpu.name}{', QEMU' if b.emulated and not emulated_only else ''})"
            for n, b in sorted(BOARDS.items()) if b.emulated or not emulated_only]
    return ", ".join(rows)


def board_table() -> str:
    """One line per board: name, core, float ABI, flash, RAM, QEMU machine or real, note."""
    rows = [f"{'board':15} {'core':11} {'float':5} {'flash':>8} {'RAM':>8}  {'runs on':13} description"]
    for n, b in sorted(BOARDS.items()):
        where = f"QEMU {b.qemu_machine}" if b.emulated else "hardware"
        desc = b.description + (f" [{b.note}]" if b.note else "")
        rows.append(f"{n:15} {b.core:11} {'hard' if b.cpu.hard_float else 'soft':5} "
                    f"{b.flash.length >> 10:>6} K {b.ram.length >> 10:>6} K  {where:13} {desc}")
    return "\n".join(rows)
