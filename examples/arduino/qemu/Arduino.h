// A stand-in for the Arduino core, to run examples/arduino/classify in QEMU mps2-an386
// (the test builds it as the Arduino IDE would: the .ino as C++ with `#include
// "Arduino.h"` first, each library's .c as C, the core's flags only). Serial prints
// through semihosting (QEMU's console); stop() exits QEMU. A real board's core
// provides Serial, setup/loop and main.
#ifndef BEEXGEN_QEMU_ARDUINO_H
#define BEEXGEN_QEMU_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void setup();
void loop();
void stop();
void semihost_write0(const char *s);

struct SerialPort {
    void begin(unsigned long) {}
    void print(const char *s) { semihost_write0(s); }
    void print(int v) { char b[16]; snprintf(b, sizeof b, "%d", v); semihost_write0(b); }
    template <class T> void println(T v) { print(v); semihost_write0("\n"); }
};
extern SerialPort Serial;

#endif
