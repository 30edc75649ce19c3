/* bx-driver: uart tiva; base: yes; params: rcgc_uart rcgc_gpio pr_uart pr_gpio uart_bit gpio_bit gpio_base rx_pin tx_pin pctl */
/* uart_tiva.c: the TI Tiva C / Stellaris UART (TM4C123GH6PM datasheet SPMS376E, section
 * 14, an ARM PL011 derivative), receive by interrupt, send by polling.
 *
 * Registers (offsets from BX_UART_BASE): DR 0x000 (data bits 7:0; OE bit 11 set on the
 * byte that follows an overrun), RSR/ECR 0x004 (a write clears the error flags), FR
 * 0x018 (RXFE bit 4, TXFF bit 5, BUSY bit 3), IBRD 0x024, FBRD 0x028, LCRH 0x02C (WLEN
 * bits 6:5 = 3: 8 bits; FEN bit 4 = 0: one-byte holding register, so every byte raises
 * the receive interrupt), CTL 0x030 (UARTEN bit 0, TXE bit 8, RXE bit 9), IM 0x038
 * (RXIM bit 4, OEIM bit 10), ICR 0x044, CC 0xFC8 (0: the system clock).
 * Baud divisor (section 14.3.2): BRD = f / (16 x baud) = IBRD + FBRD / 64, FBRD rounded:
 * x = (8 f / baud + 1) / 2 = round(64 f / (16 baud)), IBRD = x >> 6, FBRD = x & 63.
 *
 * Clocks and pins (bx_board.h, the board's [uart] params): the UART's bit uart_bit in
 * the clock-gating register rcgc_uart (TM4C: RCGCUART 0x400FE618; LM3S: RCGC1
 * 0x400FE104) and its GPIO port's bit gpio_bit in rcgc_gpio (TM4C: RCGCGPIO 0x400FE608;
 * LM3S: RCGC2 0x400FE108), each waited for in its peripheral-ready register pr_uart /
 * pr_gpio (TM4C: PRUART 0x400FEA18, PRGPIO 0x400FEA08; 0 = none, LM3S); the RX and TX
 * pins of the port at gpio_base (APB aperture) in their alternate function: AFSEL
 * 0x420, DEN 0x51C and, where the part has one (pctl != 0), PCTL 0x52C (4 bits per pin).
 */
#include "bx_board.h"
#include "bx_cortexm.h"

#define UART_DR    BX_REG(BX_UART_BASE + 0x000u)
#define UART_ECR   BX_REG(BX_UART_BASE + 0x004u)
#define UART_FR    BX_REG(BX_UART_BASE + 0x018u)
#define UART_IBRD  BX_REG(BX_UART_BASE + 0x024u)
#define UART_FBRD  BX_REG(BX_UART_BASE + 0x028u)
#define UART_LCRH  BX_REG(BX_UART_BASE + 0x02Cu)
#define UART_CTL   BX_REG(BX_UART_BASE + 0x030u)
#define UART_IM    BX_REG(BX_UART_BASE + 0x038u)
#define UART_ICR   BX_REG(BX_UART_BASE + 0x044u)
#define UART_CC    BX_REG(BX_UART_BASE + 0xFC8u)

#define FR_BUSY    (1u << 3)
#define FR_RXFE    (1u << 4)
#define FR_TXFF    (1u << 5)
#define DR_OE      (1u << 11)
#define CTL_UARTEN (1u << 0)
#define CTL_TXE    (1u << 8)
#define CTL_RXE    (1u << 9)
#define IM_RXIM    (1u << 4)
#define IM_OEIM    (1u << 10)
#define LCRH_WLEN8 (3u << 5)

#define GPIO_AFSEL      BX_REG(BX_UART_GPIO_BASE + 0x420u)
#define GPIO_DEN        BX_REG(BX_UART_GPIO_BASE + 0x51Cu)
#define GPIO_PCTL       BX_REG(BX_UART_GPIO_BASE + 0x52Cu)

static void pin_uart(uint32_t pin)
{
    uint32_t sh = 4u * pin;
    GPIO_AFSEL |= 1u << pin;
    GPIO_DEN |= 1u << pin;
#if BX_UART_PCTL
    GPIO_PCTL = (GPIO_PCTL & ~(0xFu << sh)) | ((uint32_t)BX_UART_PCTL << sh);
#else
    (void)sh;
#endif
}

void bx_uart_init(void)
{
    BX_REG(BX_UART_RCGC_UART) |= 1u << BX_UART_UART_BIT;
    BX_REG(BX_UART_RCGC_GPIO) |= 1u << BX_UART_GPIO_BIT;
#if BX_UART_PR_UART
    while (!(BX_REG(BX_UART_PR_UART) & (1u << BX_UART_UART_BIT))) {}
#endif
#if BX_UART_PR_GPIO
    while (!(BX_REG(BX_UART_PR_GPIO) & (1u << BX_UART_GPIO_BIT))) {}
#endif
    pin_uart(BX_UART_RX_PIN);
    pin_uart(BX_UART_TX_PIN);

    UART_CTL = 0;                                      /* disabled while configured */
    uint32_t x = (8u * BX_UART_PCLK_HZ / BX_UART_BAUD + 1u) / 2u;
    UART_IBRD = x >> 6;
    UART_FBRD = x & 63u;
    UART_LCRH = LCRH_WLEN8;                            /* 8N1, FIFOs off; written after the divisors */
    UART_CC = 0;                                       /* clocked by the system clock */
    UART_ECR = 0;                                      /* clear stale errors */
    UART_ICR = 0x7F2u;                                 /* and stale interrupts, then drop a byte */
    while (!(UART_FR & FR_RXFE)) {                     /* received before now: its interrupt was */
        (void)UART_DR;                                 /* just cleared, and a full holding register */
    }                                                  /* would take no more bytes */
    UART_IM = IM_RXIM | IM_OEIM;
    UART_CTL = CTL_UARTEN | CTL_TXE | CTL_RXE;
    bx_nvic_enable(BX_UART_IRQ);
}

void bx_uart_irq_handler(void)
{
    while (!(UART_FR & FR_RXFE)) {
        uint32_t d = UART_DR;
        bx_rx_push((uint8_t)d, (d & DR_OE) != 0);
    }
    UART_ECR = 0;                                      /* clear the overrun flag */
    UART_ICR = IM_RXIM | IM_OEIM;
}

void bx_uart_write(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (UART_FR & FR_TXFF) {}
        UART_DR = s[i];
    }
}

void bx_uart_flush(void)
{
    while (UART_FR & FR_BUSY) {}
}
