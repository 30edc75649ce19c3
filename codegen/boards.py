"""Cortex-M4 boards as data.

A board is its memory map, its UART (kind, address, interrupt), its cost counter and
its clock: no code paths. The firmware's C reads these facts from the generated board
header (`bx_board.h`, through `Board.c_defines()`) and the linker script
(`cm4.ld.j2`, through `Board.flash` / `Board.ram`). Adding a board is adding an entry
to `BOARDS`; only a new UART *kind* needs a new driver (firmware_templates/uart_<kind>.c,
see `UART_DRIVERS`).

Cost counters (what `bx_platform_cost()` counts):
- "cmsdk_timer": CMSDK APB timer0 (mps2) counting down at `counter_hz`. Under QEMU
  `-icount shift=S,sleep=off` every guest instruction advances virtual time by 2**S ns,
  so instructions = ticks * 1e9 / (counter_hz * 2**S): for 25 MHz and S = 10 that is
  ticks * 40 / 2**10 (TOOLCHAIN.md). The ratio is emitted as an integer multiplier and
  a shift (BX_COST_MUL, BX_COST_SHIFT), computed here once.
- "stm32_tim": a 32-bit STM32 general-purpose timer (TIM2) counting up. QEMU clocks its
  timers at 1 GHz; a prescaler of 2**S - 1 makes one tick per 2**S ns, i.e. exactly one
  tick per instruction under -icount shift=S.
- "dwt": the DWT cycle counter (CYCCNT). Real silicon only: it reads 0 under QEMU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

ICOUNT_SHIFT = 10          # -icount shift=10: one guest instruction = 1024 ns of virtual time


class UnknownBoardError(ValueError):
    """A board name that is not in BOARDS."""


@dataclass(frozen=True)
class Region:
    origin: int
    length: int            # bytes

    @property
    def end(self) -> int:
        return self.origin + self.length


@dataclass(frozen=True)
class Uart:
    kind: str              # "cmsdk" | "stm32": selects firmware_templates/uart_<kind>.c
    base: int
    irq: int               # NVIC interrupt number of the receive interrupt
    baud: int = 115200
    pclk_hz: int = 0       # the UART's bus clock (baud divider)
    # STM32 only: RCC enable bits and the pins (port, rx pin, tx pin, alternate function)
    rcc_apb1: int = 0      # bit in RCC_APB1ENR
    rcc_apb2: int = 0      # bit in RCC_APB2ENR
    gpio: tuple | None = None   # (port letter, tx pin, rx pin, alternate function)


@dataclass(frozen=True)
class Counter:
    kind: str              # "cmsdk_timer" | "stm32_tim" | "dwt"
    unit: str              # "instr" (QEMU -icount) or "cycles" (silicon)
    base: int = 0          # timer base address (unused for dwt)
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
    qemu_machine: str | None = None    # None: real hardware only
    clock_setup: str | None = None     # None: run from the reset clock; "stm32f4_hsi_pll"
    pll: dict = field(default_factory=dict)   # PLL M, N, P, flash wait states, APB1 divider
    flash_tools: dict = field(default_factory=dict)   # tool -> arguments (codegen/flash.py)
    usb_drive_hint: str = ""           # mass-storage name for drag-and-drop flashing
    serial_hint: str = ""              # where the UART appears on the host

    @property
    def emulated(self) -> bool:
        return self.qemu_machine is not None

    @property
    def cost_unit(self) -> str:
        return self.counter.unit

    def arch_flags(self) -> list[str]:
        """The compiler flags of the board's core: CPU, instruction set, FPU and float ABI
        (every board here is a Cortex-M4F). The only place these flags are written."""
        return ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]

    def cost_scale(self) -> tuple[int, int]:
        """(mul, shift): bx_platform_cost() = (ticks * mul + 2**(shift-1)) >> shift."""
        c = self.counter
        if c.kind == "cmsdk_timer":
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
        """The board facts the Cortex-M4 C needs, as (macro, value) pairs for bx_board.h."""
        u, c = self.uart, self.counter
        mul, shift = self.cost_scale()
        d = [
            ("BX_CM4_NVIC_IRQS", str(self.nvic_irqs)),
            ("BX_CM4_CLOCK_HZ", f"{self.clock_hz}u"),
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
        if c.kind == "stm32_tim":
            d.append(("BX_COUNTER_RCC_APB1", f"0x{c.rcc_apb1:08x}u"))
        if self.clock_setup == "stm32f4_hsi_pll":
            p = self.pll
            d += [("BX_CLOCK_STM32F4_HSI_PLL", "1"), ("BX_PLL_M", str(p["m"])), ("BX_PLL_N", str(p["n"])),
                  ("BX_PLL_P", str(p["p"])), ("BX_PLL_Q", str(p["q"])), ("BX_FLASH_LATENCY", str(p["latency"])),
                  ("BX_APB1_DIV", str(p["apb1_div"]))]
        return d


# Driver file of each UART kind.
UART_DRIVERS = {"cmsdk": "uart_cmsdk.c", "stm32": "uart_stm32.c"}

_RCC_APB1_USART2 = 1 << 17
_RCC_APB1_TIM2 = 1 << 0
_RCC_APB2_USART1 = 1 << 4

BOARDS: dict[str, Board] = {b.name: b for b in [
    Board(
        name="mps2-an386",
        description="ARM MPS2 with AN386 (Cortex-M4F), emulated by QEMU",
        flash=Region(0x00000000, 4 << 20), ram=Region(0x20000000, 4 << 20),
        # CMSDK APB UART0: RX interrupt 0, TX interrupt 1 (QEMU hw/arm/mps2.c)
        uart=Uart("cmsdk", 0x40004000, irq=0, pclk_hz=25_000_000),
        counter=Counter("cmsdk_timer", "instr", base=0x40000000, hz=25_000_000),
        clock_hz=25_000_000, nvic_irqs=32, qemu_machine="mps2-an386",
        serial_hint="QEMU -serial (tcp or pty)",
    ),
    Board(
        name="netduinoplus2",
        description="Netduino Plus 2 (STM32F405RG, Cortex-M4F), emulated by QEMU",
        flash=Region(0x08000000, 1 << 20), ram=Region(0x20000000, 128 << 10),
        # QEMU's stm32f405 SoC wires -serial 0 to USART1 (0x40011000, IRQ 37) and models
        # TIM2..5 at 1 GHz; RCC and GPIO are unimplemented (writes are ignored), so the
        # firmware stays on the 16 MHz reset clock (HSI) and sets up no PLL.
        uart=Uart("stm32", 0x40011000, irq=37, pclk_hz=16_000_000, rcc_apb2=_RCC_APB2_USART1,
                  gpio=("A", 9, 10, 7)),
        counter=Counter("stm32_tim", "instr", base=0x40000000, hz=1_000_000_000, rcc_apb1=_RCC_APB1_TIM2),
        clock_hz=16_000_000, nvic_irqs=96, qemu_machine="netduinoplus2",
        serial_hint="QEMU -serial (tcp or pty)",
    ),
    Board(
        name="nucleo-f411re",
        description="ST NUCLEO-F411RE (STM32F411RE, Cortex-M4F, 100 MHz)",
        flash=Region(0x08000000, 512 << 10), ram=Region(0x20000000, 128 << 10),
        # USART2 on PA2 (TX) / PA3 (RX), AF7, wired to the ST-Link virtual COM port.
        uart=Uart("stm32", 0x40004400, irq=38, pclk_hz=50_000_000, rcc_apb1=_RCC_APB1_USART2,
                  gpio=("A", 2, 3, 7)),
        counter=Counter("dwt", "cycles"),
        clock_hz=100_000_000, nvic_irqs=96,
        # HSI 16 MHz / M=16 -> 1 MHz; x N=400 -> 400 MHz VCO; / P=4 -> 100 MHz SYSCLK;
        # Q=8 -> 50 MHz (USB unused). 3 flash wait states at 100 MHz and 3.3 V
        # (RM0383 table 6); APB1 (max 50 MHz) = HCLK / 2; APB2 = HCLK.
        clock_setup="stm32f4_hsi_pll",
        pll={"m": 16, "n": 400, "p": 4, "q": 8, "latency": 3, "apb1_div": 2},
        flash_tools={
            "openocd": ["-f", "board/st_nucleo_f4.cfg", "-c", "program {elf} verify reset exit"],
            "st-flash": ["--reset", "write", "{bin}", "0x08000000"],
            "pyocd": ["flash", "-t", "stm32f411retx", "{hex}"],
        },
        usb_drive_hint="NODE_F411RE",
        serial_hint="/dev/ttyACM0 (ST-Link virtual COM port, 115200 8N1)",
    ),
]}


def get_board(name: str) -> Board:
    """The board called `name`; UnknownBoardError lists the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoardError(
            f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None
