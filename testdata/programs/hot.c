/* Test workload with a known hot function.
 *
 * hot_loop() does about 90% of the work and cold_loop() about 10%, both
 * called from main() so that call chains show main -> hot_loop. Built with
 *   cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o hot hot.c
 * so that `msen record -g` can walk the stack.
 *
 *   usage: hot [seconds]      (default 1.0; runs until the time is spent)
 *          hot --forever      (for -p tests: runs until killed)
 *          hot --work N       (exactly N rounds, then prints the seconds
 *                              they took to stderr: for overhead benchmarks)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned long sink;

/* Called by the loops so that they are not leaf functions: GCC gives leaf
 * functions no frame even with -fno-omit-frame-pointer, and then the
 * frame-pointer unwinder skips their caller. */
__attribute__((noinline)) void consume(unsigned long x)
{
	sink += x;
}

__attribute__((noinline)) void hot_loop(unsigned long n)
{
	unsigned long x = 0;
	for (unsigned long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + i;
	consume(x);
}

__attribute__((noinline)) void cold_loop(unsigned long n)
{
	unsigned long x = 0;
	for (unsigned long i = 0; i < n; i++)
		x = x * 2862933555777941757UL + i;
	consume(x);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--work") == 0) {
		long rounds = atol(argv[2]);
		double start = now();
		for (long r = 0; r < rounds; r++) {
			hot_loop(9000000);
			cold_loop(1000000);
		}
		fprintf(stderr, "%.6f\n", now() - start);
		printf("%lu\n", sink);
		return 0;
	}
	int forever = argc > 1 && strcmp(argv[1], "--forever") == 0;
	double seconds = argc > 1 && !forever ? atof(argv[1]) : 1.0;
	double end = now() + seconds;
	while (forever || now() < end) {
		hot_loop(9000000);
		cold_loop(1000000);
	}
	printf("%lu\n", sink);
	return 0;
}
