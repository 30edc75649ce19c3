/* bx-driver: uart cmsdk; base: yes */
/* uart_cmsdk.c: ARM CMSDK APB UART (MPS2 boards), receive by interrupt, send by polling.
 *
 * Registers (CMSDK technical reference, ARM DDI 0479): DATA 0x00, STATE 0x04
 * (TXFULL bit 0, RXFULL bit 1, RX overrun bit 3, write 1 to clear), CTRL 0x08 (TX
 * enable bit 0, RX enable bit 1, RX interrupt enable bit 3), INTSTATUS/INTCLEAR 0x0C
 * (RX interrupt bit 1), BAUDDIV 0x10 (>= 16). One receive interrupt per byte: the
 * holding register keeps one byte, so the handler drains it at once.
 *
 * QEMU: after enabling the receiver, one dummy read of DATA is needed, otherwise the
 * first received byte waits about a second (measured on QEMU 7.2): reading DATA is what tells
 * QEMU's character backend that the UART accepts input again.
 */
#include "bx_board.h"
#include "bx_cortexm.h"

#define UART_DATA      BX_REG(BX_UART_BASE + 0x00u)
#define UART_STATE     BX_REG(BX_UART_BASE + 0x04u)
#define UART_CTRL      BX_REG(BX_UART_BASE + 0x08u)
#define UART_INTSTATUS BX_REG(BX_UART_BASE + 0x0Cu)
#define UART_BAUDDIV   BX_REG(BX_UART_BASE + 0x10u)

#define STATE_TXFULL   (1u << 0)
#define STATE_RXFULL   (1u << 1)
#define STATE_RXOVR    (1u << 3)
#define CTRL_TXEN      (1u << 0)
#define CTRL_RXEN      (1u << 1)
#define CTRL_RXINTEN   (1u << 3)
#define INT_RX         (1u << 1)
#define INT_RXOVR      (1u << 3)

void bx_uart_init(void)
{
    uint32_t div = (BX_UART_PCLK_HZ + BX_UART_BAUD / 2u) / BX_UART_BAUD;
    UART_BAUDDIV = div < 16u ? 16u : div;
    UART_CTRL = CTRL_TXEN | CTRL_RXEN | CTRL_RXINTEN;
    (void)UART_DATA;                                   /* dummy read: see above */
    UART_STATE = STATE_RXOVR;
    UART_INTSTATUS = INT_RX | INT_RXOVR;
    bx_nvic_enable(BX_UART_IRQ);
}

void bx_uart_irq_handler(void)
{
    UART_INTSTATUS = INT_RX | INT_RXOVR;               /* clear before draining */
    uint32_t st;
    while ((st = UART_STATE) & STATE_RXFULL) {
        int lost = (st & STATE_RXOVR) != 0;
        if (lost) UART_STATE = STATE_RXOVR;
        bx_rx_push((uint8_t)UART_DATA, lost);
    }
}

void bx_uart_write(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (UART_STATE & STATE_TXFULL) {}
        UART_DATA = s[i];
    }
}

void bx_uart_flush(void)
{
    while (UART_STATE & STATE_TXFULL) {}
}
