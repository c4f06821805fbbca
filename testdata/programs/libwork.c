/* The shared library half of inl.c (see there). */
unsigned long lib_work(unsigned long n)
{
	unsigned long x = 7;
	for (unsigned long i = 0; i < n; i++)
		x = x * 2862933555777941757UL + (i ^ (x >> 3));
	return x;
}
