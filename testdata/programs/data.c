/* Touches a global array (.bss) and heap memory page by page, so that
 * page-fault samples carry data addresses in both.
 *   usage: data
 */
#include <stdio.h>
#include <stdlib.h>

#define PAGES 512
static char global_buf[PAGES * 4096];

int main(void)
{
	unsigned long sum = 0;
	for (int i = 0; i < PAGES; i++)
		global_buf[i * 4096] = (char)i;
	/* 64 KiB blocks stay below malloc's mmap threshold: they come from [heap]. */
	for (int b = 0; b < 32; b++) {
		char *p = malloc(65536);
		if (!p)
			return 1;
		for (int i = 0; i < 16; i++)
			p[i * 4096] = (char)b;
		sum += (unsigned long)p[4096];
	}
	printf("%lu %d\n", sum, global_buf[4096]);
	return 0;
}
