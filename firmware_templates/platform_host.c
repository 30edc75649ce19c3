/* platform_host.c: the x86 host emulator's platform, over stdin and stdout.
 *
 * stdin/stdout may be pipes, files or the master side of a raw pty. Input is read
 * in chunks (read() returns what is there, it does not wait for a full chunk), so
 * pipelined requests cost one system call per chunk, not per byte. Each reply is
 * written straight to fd 1 (no stdio buffering), so it is on the line before the
 * next request is read; when stdout is gone (EPIPE, EIO) the program exits with status
 * EXIT_WRITE. The cost counter is CLOCK_MONOTONIC in ns. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bx_platform.h"

#define RX_CHUNK   4096
#define NS_PER_S   UINT64_C(1000000000)
#define FD_IN      0
#define FD_OUT     1
#define EXIT_WRITE 2   /* exit status when stdout is gone */

static uint8_t rx_buf[RX_CHUNK];
static size_t  rx_len, rx_pos;

/* A closed stdout must end the program with EXIT_WRITE (its documented status), not
 * kill it with SIGPIPE: ignored, the write fails with EPIPE instead. */
void bx_platform_init(void) { signal(SIGPIPE, SIG_IGN); }

int bx_platform_getc(void)
{
    if (rx_pos == rx_len) {
        ssize_t n;
        do n = read(FD_IN, rx_buf, sizeof rx_buf); while (n < 0 && errno == EINTR);
        if (n <= 0) return BX_GETC_EOF;        /* end of file, or EIO: pty peer closed */
        rx_len = (size_t)n;
        rx_pos = 0;
    }
    return rx_buf[rx_pos++];
}

void bx_platform_write(const char *s, size_t n)
{
    while (n) {
        ssize_t k = write(FD_OUT, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) exit(EXIT_WRITE);
        s += k;
        n -= (size_t)k;
    }
}

uint64_t bx_platform_cost(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * NS_PER_S + (uint64_t)t.tv_nsec;
}

void bx_platform_exit(int code) { exit(code); }
