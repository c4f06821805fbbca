/* A 3-deep call path without frame pointers, for DWARF unwinding:
 *   main -> top -> mid -> leaf, leaf doing the work; main also calls
 *   side() directly (about 1/4 of the work) so shares are not all 100%.
 * Built with
 *   cc -O2 -g -fomit-frame-pointer -fno-inline -fno-optimize-sibling-calls
 * so only .eh_frame can walk its stack (`record --call-graph dwarf`).
 *
 *   usage: nofp [seconds]   (default 1.0)
 */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) static unsigned long leaf(unsigned long n) {
    unsigned long x = n;
    for (unsigned long i = 0; i < 200000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) static unsigned long mid(unsigned long n) { return leaf(n) + 1; }
__attribute__((noinline)) static unsigned long top(unsigned long n) { return mid(n) + 1; }
__attribute__((noinline)) static unsigned long side(unsigned long n) { return leaf(n ^ 0x55) + 2; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    double end = now() + secs;
    unsigned long i = 0;
    while (now() < end) {
        sink += top(i);
        sink += top(i + 1);
        sink += top(i + 2);
        sink += side(i);
        i++;
    }
    return 0;
}
