/* bx-driver: uart stm32; base: yes; params: gpio_port tx_pin rx_pin af rcc_apb1 rcc_apb2 */
/* uart_stm32.c: STM32F4 USART (USART1..6), receive by interrupt, send by polling.
 *
 * Registers (RM0090 / RM0383 section "USART registers"): SR 0x00 (RXNE bit 5, ORE
 * bit 3, TXE bit 7, TC bit 6), DR 0x04, BRR 0x08, CR1 0x0C (UE bit 13, TE bit 3, RE
 * bit 2, RXNEIE bit 5). 16x oversampling: BRR = f_pclk / baud, rounded. The receive
 * interrupt fires for RXNE and for an overrun (ORE); reading SR then DR clears both,
 * and an overrun is passed on as `lost` with the byte that follows it.
 *
 * Clocks and pins (bx_board.h): the USART's RCC enable bit (APB1 or APB2), GPIO port
 * clock, the TX/RX pins in alternate-function mode BX_UART_AF. QEMU does not model RCC
 * or GPIO (the writes are ignored), real silicon needs them.
 */
#include "bx_board.h"
#include "bx_cortexm.h"

#define USART_SR   BX_REG(BX_UART_BASE + 0x00u)
#define USART_DR   BX_REG(BX_UART_BASE + 0x04u)
#define USART_BRR  BX_REG(BX_UART_BASE + 0x08u)
#define USART_CR1  BX_REG(BX_UART_BASE + 0x0Cu)
#define USART_CR2  BX_REG(BX_UART_BASE + 0x10u)
#define USART_CR3  BX_REG(BX_UART_BASE + 0x14u)

#define SR_ORE     (1u << 3)
#define SR_RXNE    (1u << 5)
#define SR_TC      (1u << 6)
#define SR_TXE     (1u << 7)
#define CR1_RE     (1u << 2)
#define CR1_TE     (1u << 3)
#define CR1_RXNEIE (1u << 5)
#define CR1_UE     (1u << 13)

#define RCC_AHB1ENR BX_REG(0x40023830u)
#define RCC_APB1ENR BX_REG(0x40023840u)
#define RCC_APB2ENR BX_REG(0x40023844u)
#define GPIO_BASE(port) (0x40020000u + 0x400u * (uint32_t)(port))
#define GPIO_MODER(port) BX_REG(GPIO_BASE(port) + 0x00u)
#define GPIO_OSPEEDR(port) BX_REG(GPIO_BASE(port) + 0x08u)
#define GPIO_PUPDR(port) BX_REG(GPIO_BASE(port) + 0x0Cu)
#define GPIO_AFR(port, pin) BX_REG(GPIO_BASE(port) + 0x20u + 4u * ((pin) >> 3))

static void pin_af(int port, int pin, int af)
{
    GPIO_MODER(port) = (GPIO_MODER(port) & ~(3u << (2 * pin))) | (2u << (2 * pin));  /* AF */
    GPIO_OSPEEDR(port) |= 2u << (2 * pin);                                            /* fast */
    GPIO_PUPDR(port) = (GPIO_PUPDR(port) & ~(3u << (2 * pin))) | (1u << (2 * pin));   /* pull-up */
    uint32_t sh = 4u * (uint32_t)(pin & 7);
    GPIO_AFR(port, pin) = (GPIO_AFR(port, pin) & ~(0xFu << sh)) | ((uint32_t)af << sh);
}

void bx_uart_init(void)
{
    RCC_AHB1ENR |= 1u << BX_UART_GPIO_PORT;
    RCC_APB1ENR |= BX_UART_RCC_APB1;
    RCC_APB2ENR |= BX_UART_RCC_APB2;
    (void)RCC_APB2ENR;                                 /* let the clock settle (errata 2.1.13) */
    pin_af(BX_UART_GPIO_PORT, BX_UART_TX_PIN, BX_UART_AF);
    pin_af(BX_UART_GPIO_PORT, BX_UART_RX_PIN, BX_UART_AF);

    USART_CR1 = 0;
    USART_CR2 = 0;                                     /* 1 stop bit */
    USART_CR3 = 0;                                     /* no flow control */
    USART_BRR = (BX_UART_PCLK_HZ + BX_UART_BAUD / 2u) / BX_UART_BAUD;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE; /* 8N1 */
    (void)USART_SR;                                    /* clear a stale RXNE / ORE */
    (void)USART_DR;
    bx_nvic_enable(BX_UART_IRQ);
}

void bx_uart_irq_handler(void)
{
    uint32_t sr;
    while ((sr = USART_SR) & (SR_RXNE | SR_ORE)) {
        uint8_t byte = (uint8_t)USART_DR;              /* SR then DR read clears RXNE and ORE */
        bx_rx_push(byte, (sr & SR_ORE) != 0);
    }
}

void bx_uart_write(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(USART_SR & SR_TXE)) {}
        USART_DR = s[i];
    }
}

void bx_uart_flush(void)
{
    while (!(USART_SR & SR_TC)) {}
}
