/* A tiny "JIT": copies machine code for a countdown loop into an anonymous
 * executable mapping, announces it in /tmp/perf-PID.map as JIT runtimes do,
 * and runs it. x86-64 only.
 *   usage: jit [seconds]
 * With MSEN_JIT_NO_MAP set it writes no map and prints "ADDRESS SIZE" of
 * the code on stdout instead (for registering it another way).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	/* loop: dec %rdi; jnz loop; ret */
	static const unsigned char code[] = { 0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3 };
	unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	memcpy(p + 64, code, sizeof code);
	if (getenv("MSEN_JIT_NO_MAP")) {
		printf("%lx %zx\n", (unsigned long)(p + 64), sizeof code);
		fflush(stdout);
	} else {
		char path[64];
		snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
		FILE *f = fopen(path, "w");
		if (!f)
			return 1;
		fprintf(f, "%lx %zx jit_spin\n", (unsigned long)(p + 64), sizeof code);
		fclose(f);
	}
	void (*spin)(unsigned long) = (void (*)(unsigned long))(p + 64);
	double end = now() + (argc > 1 ? atof(argv[1]) : 1.0);
	while (now() < end)
		spin(20000000);
	return 0;
}
