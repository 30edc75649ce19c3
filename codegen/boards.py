"""Cortex-M cores and boards as data.

A board is one TOML file in codegen/boards/ (`<name>.toml`): its core, memory map, UART
(kind, address, interrupt), cost counter and clock, with no code paths. A core is one
table of codegen/cores.toml: -mcpu, FPU and float ABI, DSP, Thumb-2, VTOR, exception
frame size and the Arm kernel files it can run. Both load here into the dataclasses
below; the firmware's C reads the facts from the generated board header (`bx_board.h`,
through `Board.c_defines()`) and the linker script (`cortexm.ld.j2`, through
`Board.flash` / `Board.ram`), the compiler from `Board.arch_flags()`.

Adding a board of a known family is adding one file to codegen/boards/ (or passing
`--board path/to/my-board.toml`). A board of a new vendor adds its driver C files too,
nothing else: the driver kinds are discovered from the files themselves. Each
firmware_templates/uart_*.c, counter_*.c and clock_*.c starts with one line

    /* bx-driver: <uart|counter|clock> <kind>[; base: yes|no][; ticks: hz|instructions|cycles]
                  [; params: name ...][; needs: thumb2] */

naming the kind a board file selects, whether it needs a peripheral `base` address,
what a counter's ticks are (hz: ticks of `counter.hz`, converted to instructions under
QEMU -icount; instructions or cycles: already the unit), the driver-specific parameters
a board must give in `params = {...}` of its [uart] / [counter] table (`clock_params`
for a clock), emitted as BX_UART_<NAME>, BX_COUNTER_<NAME> and BX_<NAME> (an integer,
or a letter A-Z as its index: a GPIO port), and what it needs of the core. A new core
is a table in cores.toml.

Every board file is checked against the schema below when it is loaded (types, ranges,
IRQ numbers against the core's NVIC, addresses against the Armv7-M/Armv8-M memory map,
clocks, the driver's parameters); a failure is one line naming the file, key and rule.
A broken file in codegen/boards/ disables that board only (BOARD_ERRORS, shown by
`beexgen boards`).

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

import os
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields
from fractions import Fraction
from importlib.resources import files as _package_files
from pathlib import Path

ICOUNT_SHIFT = 10          # -icount shift=10: one guest instruction = 1024 ns of virtual time
# The package's boards; BEEXGEN_BOARD_DIR points the registry at another directory.
BOARD_DIR = Path(os.environ.get("BEEXGEN_BOARD_DIR") or Path(__file__).with_name("boards"))
CORES_FILE = Path(__file__).with_name("cores.toml")
COUNTER_UNITS = ("instr", "cycles")
ROLES = ("uart", "counter", "clock")

# The Armv6-M / Armv7-M / Armv8-M system address map (ARM DDI 0403, B3.1): code
# (flash), SRAM, peripherals. A board's memories and peripheral bases must sit there.
CODE_REGION = (0x00000000, 0x20000000)
RAM_REGIONS = (0x00000000, 0x40000000)        # code or SRAM region (TCMs, SRAM_L live low)
PERIPHERAL_REGION = (0x40000000, 0x60000000)


@dataclass(frozen=True)
class Driver:
    """One driver C file, as its `bx-driver:` header line describes it."""
    role: str              # uart, counter or clock
    kind: str              # what a board file selects
    file: str              # firmware_templates/<file>
    base: bool = True      # needs a peripheral base address
    ticks: str = ""        # counters: hz, instructions or cycles
    params: tuple = ()     # board parameters it reads (BX_UART_<NAME> ...)
    needs: tuple = ()      # core features it needs (thumb2)


_DRIVER_LINE = re.compile(r"/\*\s*bx-driver:\s*(?P<body>[^*]*?)\s*\*/")


def parse_driver(path: Path) -> Driver:
    """The Driver a C file's `/* bx-driver: ... */` line describes (BoardFileError if malformed)."""
    m = _DRIVER_LINE.search(Path(path).read_text(errors="replace")[:2000])
    if not m:
        raise BoardFileError(f"{path}: no /* bx-driver: <role> <kind> ... */ line")
    head, *clauses = [c.strip() for c in m["body"].split(";")]
    try:
        role, kind = head.split()
    except ValueError:
        raise BoardFileError(f"{path}: bx-driver line starts {head!r}, want '<role> <kind>'") from None
    kw: dict = {}
    for c in clauses:
        key, _, val = (x.strip() for x in c.partition(":"))
        if key == "base" and val in ("yes", "no"):
            kw["base"] = val == "yes"
        elif key == "ticks" and val in ("hz", "instructions", "cycles"):
            kw["ticks"] = val
        elif key in ("params", "needs") and re.fullmatch(r"[a-z0-9_ ]*", val):
            kw[key] = tuple(val.split())
        else:
            raise BoardFileError(f"{path}: bx-driver clause {c!r} is not base: yes|no, ticks: hz|instructions|"
                                 "cycles, params: names or needs: thumb2")
    if role not in ROLES or not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise BoardFileError(f"{path}: bx-driver role {role!r} / kind {kind!r}: role one of {', '.join(ROLES)}, "
                             "kind a lower-case identifier")
    if role == "clock":
        kw["base"] = False
    return Driver(role, kind, Path(path).name, **kw)


def discover_drivers(template_dir: Path | None = None) -> dict[str, dict[str, Driver]]:
    """role -> kind -> Driver, read from the driver files' header lines."""
    d = Path(str(_package_files("beexgen.firmware_templates"))) if template_dir is None else Path(template_dir)
    out: dict[str, dict[str, Driver]] = {r: {} for r in ROLES}
    for role in ROLES:
        for p in sorted(d.glob(f"{role}_*.c")):
            drv = parse_driver(p)
            if drv.role != role:
                raise BoardFileError(f"{p}: a {role}_*.c file declares role {drv.role!r}")
            if drv.kind in out[role]:
                raise BoardFileError(f"{p}: {role} kind {drv.kind!r} also declared by {out[role][drv.kind].file}")
            out[role][drv.kind] = drv
    return out


DRIVERS = discover_drivers()
# Driver file of each UART, counter and clock kind (generated from DRIVERS).
UART_DRIVERS = {k: d.file for k, d in DRIVERS["uart"].items()}
COUNTER_DRIVERS = {k: d.file for k, d in DRIVERS["counter"].items()}
CLOCK_DRIVERS = {k: d.file for k, d in DRIVERS["clock"].items()}


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
    max_irqs: int = 32     # external interrupts the core's NVIC can have (Armv6-M 32, v7-M 240, v8-M 480)

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
    params: dict = field(default_factory=dict)   # the driver's own parameters (its bx-driver line)


@dataclass(frozen=True)
class Counter:
    kind: str              # selects firmware_templates/counter_<kind>.c (COUNTER_DRIVERS)
    unit: str              # "instr" (QEMU -icount) or "cycles" (silicon)
    base: int = 0          # timer base address (unused for dwt, systick)
    hz: int = 0            # timer input clock
    params: dict = field(default_factory=dict)   # the driver's own parameters (its bx-driver line)


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
    clock_params: dict = field(default_factory=dict)   # the clock driver's parameters (e.g. PLL M, N, P)
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

    def drivers(self) -> list[Driver]:
        """The Driver records of this board's UART, counter and clock kinds."""
        return [DRIVERS["uart"][self.uart.kind], DRIVERS["counter"][self.counter.kind],
                DRIVERS["clock"][self.clock_kind]]

    def driver_files(self) -> list[str]:
        """The C files of this board's UART, counter and clock kinds."""
        return [d.file for d in self.drivers()]

    def cost_scale(self) -> tuple[int, int]:
        """(mul, shift): bx_platform_cost() = (ticks * mul + 2**(shift-1)) >> shift."""
        c = self.counter
        if DRIVERS["counter"][c.kind].ticks == "hz" and c.unit == "instr":
            # instructions = ticks * 1e9 / (hz * 2**S)
            if c.hz <= 0:
                raise ValueError(f"{self.name}: counter hz = {c.hz}: want the timer's input clock in Hz")
            r = Fraction(10**9, c.hz * 2**ICOUNT_SHIFT)
            shift = 0
            while r.denominator != 1 and shift < 32:
                r *= 2
                shift += 1
            if r.denominator != 1 or r.numerator >= 2**32:
                raise ValueError(f"{self.name}: counter clock {c.hz} Hz gives no exact binary ratio")
            return int(r), shift
        return 1, 0

    def c_defines(self) -> list[tuple[str, str]]:
        """The board and core facts the Cortex-M C needs, as (macro, value) pairs for bx_board.h.
        The drivers' own parameters follow, named by their role (driver header lines)."""
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
        if self.clock_setup:
            d.append((f"BX_CLOCK_{self.clock_setup.upper()}", "1"))
        for prefix, params in (("BX_UART_", u.params), ("BX_COUNTER_", c.params), ("BX_", self.clock_params)):
            d += [(prefix + name.upper(), _param_value(v)) for name, v in params.items()]
        return d


def _param_value(v) -> str:
    """A driver parameter as C: an unsigned integer (hex from 0x10000 on), or a letter A-Z as its
    index (GPIO port A = 0)."""
    if isinstance(v, str):
        return str(ord(v) - ord("A"))
    return f"0x{v:08x}u" if v >= 0x10000 else f"{v}u"      # addresses and register bits in hex


# --------------------------------------------------------------------------- loading

def _type_ok(v, t) -> bool:
    """v is of the annotated type t (int never a bool; X | None accepts None)."""
    args = typing.get_args(t)
    if args and type(None) in args:
        return v is None or any(_type_ok(v, a) for a in args if a is not type(None))
    t = typing.get_origin(t) or t
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if t is tuple:
        return isinstance(v, (list, tuple))
    return isinstance(v, t)


_TYPE_NAMES = {int: "an integer", str: "a string", bool: "a boolean", dict: "a table", tuple: "a list"}


def _take(d: dict, cls, where: str, **fixed):
    """cls(**d), with unknown, missing or wrongly typed keys reported against the file."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)} - set(fixed)
    unknown = set(d) - names
    if unknown:
        raise BoardFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(names))}")
    for k, v in d.items():
        t = hints[k]
        if not _type_ok(v, t):
            base = [a for a in typing.get_args(t) if a is not type(None)] or [t]
            want = _TYPE_NAMES.get(typing.get_origin(base[0]) or base[0], getattr(base[0], "__name__", str(t)))
            raise BoardFileError(f"{where}: {k} = {str(v)[:40]!r} is not {want}")
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
        if not 1 <= cores[name].max_irqs <= 496:
            raise BoardFileError(f"{path.name} [{name}]: max_irqs = {cores[name].max_irqs}: want 1 .. 496")
    return cores


def _params(where: str, given: dict, drv: Driver) -> None:
    """The driver's parameters: exactly those its bx-driver line names, each an integer
    in [0, 2**32) or one letter A-Z."""
    missing = [p for p in drv.params if p not in given]
    extra = sorted(set(given) - set(drv.params))
    if missing or extra:
        want = ", ".join(drv.params) or "none"
        raise BoardFileError(f"{where}: the {drv.role} driver {drv.file} takes params {want}"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; unknown {', '.join(extra)}" if extra else ""))
    for k, v in given.items():
        ok = (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32) or \
             (isinstance(v, str) and re.fullmatch(r"[A-Z]", v) is not None)
        if not ok:
            raise BoardFileError(f"{where}: params.{k} = {v!r} is not an integer in [0, 2**32) or a letter A-Z")


def _rules(b: Board, cores: dict[str, Core]) -> list[tuple[bool, str]]:
    """(holds, 'key: rule') of every range and relation of a board record."""
    core = cores.get(b.core)
    u, c = b.uart, b.counter
    uart_drv, cnt_drv = DRIVERS["uart"].get(u.kind), DRIVERS["counter"].get(c.kind)
    inside = lambda r, lo, hi: lo <= r.origin and r.end <= hi and r.length > 0
    rules = [
        (core is not None, f"core {b.core!r} (key core) is not in cores.toml ({', '.join(cores)})"),
        (uart_drv is not None, f"uart kind {u.kind!r} (key uart.kind): known {', '.join(UART_DRIVERS)} (firmware_templates/uart_*.c)"),
        (cnt_drv is not None,
         f"counter kind {c.kind!r} (key counter.kind): known {', '.join(COUNTER_DRIVERS)} (firmware_templates/counter_*.c)"),
        (b.clock_kind in CLOCK_DRIVERS,
         f"clock_setup {b.clock_kind!r} (key clock_setup): known {', '.join(CLOCK_DRIVERS)} (firmware_templates/clock_*.c)"),
        (c.unit in COUNTER_UNITS, f"counter.unit = {c.unit!r}: known {', '.join(COUNTER_UNITS)}"),
        (1_000 <= b.clock_hz <= 2_000_000_000, f"clock_hz = {b.clock_hz}: want 1 kHz .. 2 GHz"),
        (2 <= b.nvic_prio_bits <= 8, f"nvic_prio_bits = {b.nvic_prio_bits}: want 2 .. 8"),
        (inside(b.flash, *CODE_REGION),
         f"flash: 0x{b.flash.origin:x} + 0x{b.flash.length:x} is not inside the code region 0x0 .. 0x1fffffff"),
        (inside(b.ram, *RAM_REGIONS),
         f"ram: 0x{b.ram.origin:x} + 0x{b.ram.length:x} is not inside the code or SRAM regions 0x0 .. 0x3fffffff"),
        (b.flash.end <= b.ram.origin or b.ram.end <= b.flash.origin, "flash and ram overlap"),
        (PERIPHERAL_REGION[0] <= u.base < PERIPHERAL_REGION[1] and u.base % 4 == 0,
         f"uart.base = 0x{u.base:x}: want a word-aligned address in the peripheral region 0x40000000 .. 0x5fffffff"),
        (300 <= u.baud <= 20_000_000, f"uart.baud = {u.baud}: want 300 .. 20000000"),
        (0 <= u.pclk_hz <= 2_000_000_000, f"uart.pclk_hz = {u.pclk_hz}: want 0 .. 2 GHz"),
        (b.default_stack == 0 or (1024 <= b.default_stack <= b.ram.length and b.default_stack % 8 == 0),
         f"default_stack = {b.default_stack}: want 0 or a multiple of 8 from 1024 to the RAM size"),
        (b.line_max == 0 or 16 <= b.line_max <= 65536, f"line_max = {b.line_max}: want 0 or 16 .. 65536"),
        (all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in b.flash_tools.values()),
         "flash_tools: each tool's arguments must be a list of strings"),
    ]
    if core is not None:
        rules += [
            (1 <= b.nvic_irqs <= core.max_irqs,
             f"nvic_irqs = {b.nvic_irqs}: the {core.name} NVIC has 1 .. {core.max_irqs} external interrupts"),
            (0 <= u.irq < b.nvic_irqs, f"uart.irq = {u.irq}: want an interrupt number 0 .. nvic_irqs - 1 = "
                                       f"{b.nvic_irqs - 1}"),
        ]
    if cnt_drv is not None:
        if cnt_drv.base:
            rules.append((PERIPHERAL_REGION[0] <= c.base < PERIPHERAL_REGION[1] and c.base % 4 == 0,
                          f"counter.base = 0x{c.base:x}: the {c.kind} counter needs a word-aligned address in the "
                          "peripheral region 0x40000000 .. 0x5fffffff"))
        if cnt_drv.ticks == "hz":
            rules.append((1_000 <= c.hz <= 2_000_000_000, f"counter.hz = {c.hz}: want the timer clock, 1 kHz .. 2 GHz"))
        if "thumb2" in cnt_drv.needs and core is not None:
            rules.append((core.thumb2, f"counter.kind = {c.kind!r} needs an Armv7-M or Armv8-M Mainline core "
                                       f"(Thumb-2), not {core.name}"))
    return rules


def load_board(path: Path, cores: dict[str, Core] | None = None) -> Board:
    """One board file: top-level scalars, [flash], [ram], [uart], [counter], clock_params,
    [flash_tools]; checked against the schema (types, ranges, the drivers' parameters).
    BoardFileError: one line naming the file, the key and the rule."""
    where = str(path)
    try:
        t = tomllib.loads(Path(path).read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BoardFileError(f"{where}: not valid TOML ({e})") from None
    except OSError as e:
        raise BoardFileError(f"{where}: cannot be read ({e.strerror})") from None
    name = t.pop("name", Path(path).stem)
    if name != Path(path).stem:
        raise BoardFileError(f"{where}: name {name!r} differs from the file name {Path(path).stem!r}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise BoardFileError(f"{where}: board name {name!r}: lower-case letters, digits, '.', '_' and '-'")
    for key, cls in (("flash", Region), ("ram", Region), ("uart", Uart), ("counter", Counter)):
        if key not in t:
            raise BoardFileError(f"{where}: no [{key}] table")
        if not isinstance(t[key], dict):
            raise BoardFileError(f"{where}: {key} must be a table")
        t[key] = _take(dict(t[key]), cls, f"{where} [{key}]")
    for key in ("flash", "ram"):
        r = t[key]
        if not (0 <= r.origin < 2**32 and 0 < r.length <= 2**32):
            raise BoardFileError(f"{where} [{key}]: origin 0x{r.origin:x} / length 0x{r.length:x} outside 32 bits")
    b = _take(t, Board, where, name=name)
    cores = CORES if cores is None else cores
    for ok, msg in _rules(b, cores):
        if not ok:
            raise BoardFileError(f"{where}: {msg}")
    for table, given, drv in (("[uart]", b.uart.params, DRIVERS["uart"][b.uart.kind]),
                              ("[counter]", b.counter.params, DRIVERS["counter"][b.counter.kind]),
                              ("clock_params", b.clock_params, DRIVERS["clock"][b.clock_kind])):
        _params(f"{where} {table}", given, drv)
    try:
        b.cost_scale()
    except ValueError as e:
        raise BoardFileError(f"{where}: counter.hz: {e}") from None
    return b


def load_boards(board_dir: Path = BOARD_DIR, errors: dict[str, str] | None = None) -> dict[str, Board]:
    """Every board file of board_dir. errors: a dict to collect broken files into (name ->
    message), each disabling its board only; without it the first broken file raises."""
    out = {}
    for p in sorted(Path(board_dir).glob("*.toml")):
        try:
            b = load_board(p)
        except BoardFileError as e:
            if errors is None:
                raise
            errors[p.stem] = str(e)
            continue
        out[b.name] = b
    return out


CORES: dict[str, Core] = load_cores()
BOARD_ERRORS: dict[str, str] = {}                       # broken board files: name -> message
BOARDS: dict[str, Board] = load_boards(BOARD_DIR, BOARD_ERRORS)
_EXTERNAL: dict[str, Board] = {}                        # boards loaded from a --board path


def get_core(name: str) -> Core:
    try:
        return CORES[name]
    except KeyError:
        raise UnknownBoardError(f"unknown core {name!r}; known cores: {', '.join(CORES)}") from None


def is_board_file(name: str) -> bool:
    """A --board value naming a file (my-board.toml, ./boards/x.toml) rather than a board."""
    return str(name).endswith(".toml")


def board_name(name: str) -> str:
    """The board name of a --board value: a registry name, or a board file's stem."""
    return Path(name).stem if is_board_file(name) else name


def get_board(name: str) -> Board:
    """The board called `name`, or the board file `name` (a path ending in .toml, checked
    like the package's); UnknownBoardError lists the known ones otherwise."""
    if is_board_file(name):
        p = Path(name)
        if not p.is_file():
            raise UnknownBoardError(f"board file {name} not found")
        b = load_board(p)
        if b.name in BOARDS and BOARDS[b.name] != b:
            raise BoardFileError(f"{name}: board name {b.name!r} is a board of the package; rename the file")
        _EXTERNAL[b.name] = b
        return b
    if name in BOARDS:
        return BOARDS[name]
    if name in _EXTERNAL:
        return _EXTERNAL[name]
    if name in BOARD_ERRORS:
        raise UnknownBoardError(f"board {name!r} is disabled: {BOARD_ERRORS[name]}")
    raise UnknownBoardError(
        f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))} (or a board file: --board my-board.toml)")


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
    rows += [f"warning: board {n} disabled: {msg}" for n, msg in sorted(BOARD_ERRORS.items())]
    return "\n".join(rows)


README_BEGIN, README_END = "<!-- boards:begin -->", "<!-- boards:end -->"


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KB"


def readme_table() -> str:
    """The README's boards table, generated from the registry (`beexgen boards --readme`)."""
    rows = ["| board | core | runs on | flash / RAM | UART | cost counter |", "|---|---|---|---|---|---|"]
    for n, b in sorted(BOARDS.items(), key=lambda kv: (not kv[1].emulated, kv[0])):
        core = f"{b.cpu.name} ({'hard' if b.cpu.hard_float else 'soft'} float)"
        where = f"QEMU `{b.qemu_machine}`" if b.emulated else "hardware (build only here)"
        uart = f"{b.uart.kind} @ 0x{b.uart.base:08x}, IRQ {b.uart.irq}"
        unit = "instructions (`-icount`)" if b.counter.unit == "instr" else "cycles"
        rows.append(f"| `{n}` | {core} | {where} | {_size(b.flash.length)} / {_size(b.ram.length)} | {uart} "
                    f"| {unit}, {b.counter.kind} |")
    return "\n".join(rows)


def write_readme(path: str | Path) -> bool:
    """Replace the table between README_BEGIN and README_END in `path`; True if it changed."""
    p = Path(path)
    text = p.read_text()
    a, b = text.find(README_BEGIN), text.find(README_END)
    if a < 0 or b < a:
        raise BoardFileError(f"{p}: no {README_BEGIN} ... {README_END} markers")
    new = text[:a + len(README_BEGIN)] + "\n" + readme_table() + "\n" + text[b:]
    if new != text:
        p.write_text(new)
    return new != text
