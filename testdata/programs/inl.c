/* Symbolization test workload: an always-inlined helper (mix) inside
 * outer_loop, and a function in a shared library (lib_work in libwork.so).
 * Built by tests/symbolize.rs:
 *   cc -O2 -g -fno-omit-frame-pointer -shared -fPIC -o libwork.so libwork.c
 *   cc -O2 -g -fno-omit-frame-pointer -o inl inl.c -L. -lwork -Wl,-rpath,'$ORIGIN'
 *   usage: inl [seconds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

unsigned long lib_work(unsigned long n);

static volatile unsigned long sink;

static inline __attribute__((always_inline)) unsigned long mix(unsigned long x, unsigned long i)
{
	x ^= x >> 7;
	return x * 6364136223846793005UL + i;
}

__attribute__((noinline)) void outer_loop(unsigned long n)
{
	unsigned long x = 1;
	for (unsigned long i = 0; i < n; i++)
		x = mix(x, i);
	sink += x;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double end = now() + (argc > 1 ? atof(argv[1]) : 1.0);
	while (now() < end) {
		outer_loop(6000000);
		sink += lib_work(3000000);
	}
	printf("%lu\n", sink);
	return 0;
}
