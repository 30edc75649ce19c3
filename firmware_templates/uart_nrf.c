/* bx-driver: uart nrf; base: yes; params: tx_pin rx_pin */
/* uart_nrf.c: the nRF51 / nRF52 UART (UART0, nRF51 RM v3.0 section 29), receive by
 * interrupt, send by polling.
 *
 * Registers: tasks STARTRX 0x000, STARTTX 0x008; events RXDRDY 0x108, TXDRDY 0x11C,
 * ERROR 0x124 (write 0 to clear); INTENSET 0x304 (RXDRDY bit 2, ERROR bit 9); ERRORSRC
 * 0x480 (OVERRUN bit 0, write 1 to clear); ENABLE 0x500 (4 = UART); PSELTXD 0x50C,
 * PSELRXD 0x514 (pins from the board record); RXD 0x518; TXD 0x51C; BAUDRATE 0x524.
 *
 * Receive: RXDRDY says a byte waits in RXD; the event is cleared before RXD is read,
 * because reading RXD raises it again while more bytes wait (the receive FIFO holds 6
 * bytes on silicon and in QEMU). A receiver overrun (ERROR with ERRORSRC.OVERRUN) is
 * passed on as `lost` with the next byte. Send: write TXD, wait for TXDRDY.
 */
#include "bx_board.h"
#include "bx_cortexm.h"

#define UART_STARTRX   BX_REG(BX_UART_BASE + 0x000u)
#define UART_STARTTX   BX_REG(BX_UART_BASE + 0x008u)
#define UART_RXDRDY    BX_REG(BX_UART_BASE + 0x108u)
#define UART_TXDRDY    BX_REG(BX_UART_BASE + 0x11Cu)
#define UART_ERROR     BX_REG(BX_UART_BASE + 0x124u)
#define UART_INTENSET  BX_REG(BX_UART_BASE + 0x304u)
#define UART_ERRORSRC  BX_REG(BX_UART_BASE + 0x480u)
#define UART_ENABLE    BX_REG(BX_UART_BASE + 0x500u)
#define UART_PSELTXD   BX_REG(BX_UART_BASE + 0x50Cu)
#define UART_PSELRXD   BX_REG(BX_UART_BASE + 0x514u)
#define UART_RXD       BX_REG(BX_UART_BASE + 0x518u)
#define UART_TXD       BX_REG(BX_UART_BASE + 0x51Cu)
#define UART_BAUDRATE  BX_REG(BX_UART_BASE + 0x524u)

#define INT_RXDRDY     (1u << 2)
#define INT_ERROR      (1u << 9)
#define ERRORSRC_OVERRUN (1u << 0)

#if BX_UART_BAUD == 115200
#define BAUDRATE_VALUE 0x01D7E000u
#elif BX_UART_BAUD == 9600
#define BAUDRATE_VALUE 0x00275000u
#else
#error "uart_nrf.c: BX_UART_BAUD must be 115200 or 9600"
#endif

static volatile uint32_t lost_pending;

void bx_uart_init(void)
{
    UART_ENABLE = 0u;
    UART_PSELTXD = BX_UART_TX_PIN;
    UART_PSELRXD = BX_UART_RX_PIN;
    UART_BAUDRATE = BAUDRATE_VALUE;
    UART_ENABLE = 4u;
    UART_RXDRDY = 0u;
    UART_TXDRDY = 0u;
    UART_ERROR = 0u;
    UART_ERRORSRC = 0xFu;
    UART_INTENSET = INT_RXDRDY | INT_ERROR;
    UART_STARTTX = 1u;
    UART_STARTRX = 1u;
    bx_nvic_enable(BX_UART_IRQ);
}

void bx_uart_irq_handler(void)
{
    if (UART_ERROR) {
        UART_ERROR = 0u;
        uint32_t src = UART_ERRORSRC;
        UART_ERRORSRC = src;
        if (src & ERRORSRC_OVERRUN) lost_pending = 1;
    }
    while (UART_RXDRDY) {
        UART_RXDRDY = 0u;
        uint8_t byte = (uint8_t)UART_RXD;
        bx_rx_push(byte, (int)lost_pending);
        lost_pending = 0;
    }
}

void bx_uart_write(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        UART_TXDRDY = 0u;
        UART_TXD = s[i];
        while (!UART_TXDRDY) {}
    }
}

void bx_uart_flush(void)
{
    /* bx_uart_write returns once the last byte has left TXD */
}
