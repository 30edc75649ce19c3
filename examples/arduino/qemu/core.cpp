// The QEMU stand-in's core (Arduino.h): main() calls setup() once, then loop() forever.
#include "Arduino.h"

SerialPort Serial;

// Semihosting (Arm DUI 0471): operation in r0, argument in r1, BKPT 0xAB.
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_write0(const char *s) { semihost(0x04, s); }                 // SYS_WRITE0
void stop() { semihost(0x18, reinterpret_cast<const void *>(0x20026)); }   // SYS_EXIT

int main()
{
    setup();
    for (;;) loop();
}
