/* msen diff's test workload: three functions of known cost, built in
 * variants that change one thing each.
 *   -DSLOW_B   hot_b does twice the work (a regression in one function)
 *              (and every function moves: a rebuilt binary)
 *   -DMOVED    the loop outer() ran itself moves into its callee inner()
 *              (a cost shift: outer's total is unchanged)
 * Build with -O0 -g -fno-omit-frame-pointer: GCC omits the frame pointer of
 * leaf functions at -O1 and above, which hides their callers.
 * Usage: regress [ROUNDS]  (default 10; each round is about 60 ms) */
#include <stdlib.h>

volatile unsigned long sink;

#ifdef SLOW_B
#define B_WORK 2
#else
#define B_WORK 1
#endif

#define N 20000000L

#ifdef SLOW_B
/* A rebuilt binary: every function after this one moves. */
__attribute__((noinline, used)) void pad(void) { __asm__ volatile(".skip 4096"); }
#endif

__attribute__((noinline)) void hot_a(long n) { unsigned long x = 0; for (long i = 0; i < n; i++) x += i * i; sink = x; }
__attribute__((noinline)) void hot_b(long n) { unsigned long x = 1; for (long i = 0; i < n * B_WORK; i++) x ^= x * 31 + i; sink = x; }

__attribute__((noinline)) void spin(long n) { unsigned long x = 2; for (long i = 0; i < n; i++) x += (x >> 3) ^ i; sink = x; }

/* outer's own loop, or inner's: the same instructions either way. */
__attribute__((noinline)) void inner(long n) {
#ifdef MOVED
    unsigned long x = 2; for (long i = 0; i < n * 2; i++) x += (x >> 3) ^ i; sink = x;
#else
    unsigned long x = 2; for (long i = 0; i < n; i++) x += (x >> 3) ^ i; sink = x;
#endif
}
__attribute__((noinline)) void outer(long n) {
#ifndef MOVED
    unsigned long x = 2; for (long i = 0; i < n; i++) x += (x >> 3) ^ i; sink = x;
#endif
    inner(n);
    sink++; /* not a tail call: outer stays on the stack */
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    for (int r = 0; r < rounds; r++) {
        hot_a(N / 2);
        hot_b(N / 2);
        outer(N / 4);
    }
    return 0;
}
