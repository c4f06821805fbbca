/* Flow test workload: a server whose CPU work per received byte is known
 * per port, and a paced client, so the CPU each flow costs is known.
 *
 *   flowsrv serve [-u] [-e] [-6] SECONDS PORT:WORK [PORT:WORK ...]
 *       listens on each port (TCP, or UDP with -u; IPv6 with -6); for every
 *       byte received does WORK units of work. One thread per connection
 *       (per UDP socket), or with -e one epoll thread for everything (an
 *       event loop serving several flows). Exits after SECONDS.
 *   flowsrv send [-u] ADDR PORT SECONDS KBPS
 *       connects (or sends datagrams) and sends KBPS kilobytes per second,
 *       in 4 KiB writes, for SECONDS.
 *
 * Built by the tests with cc -O2 -g -fno-omit-frame-pointer -pthread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static int udp, ipv6;
static double deadline;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* One unit: 100 rounds of an LCG. */
__attribute__((noinline)) void handle_bytes(long n, int work)
{
	unsigned long x = sink;
	for (long i = 0; i < n * work * 100L; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

struct conn {
	int fd;
	int work;
};

static void *serve_conn(void *p)
{
	struct conn c = *(struct conn *)p;
	free(p);
	char buf[65536];
	while (now() < deadline) {
		ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue; /* the receive timeout: check the deadline */
		if (n < 0 || (n == 0 && !udp))
			break;
		handle_bytes(n, c.work);
	}
	close(c.fd);
	return NULL;
}

static int listen_on(int port)
{
	int fd = socket(ipv6 ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int r;
	if (ipv6) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
		r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
		r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (r < 0 || (!udp && listen(fd, 16) < 0)) {
		perror("bind/listen");
		exit(1);
	}
	return fd;
}

struct listener {
	int fd;
	int work;
};

static void *accept_loop(void *p)
{
	struct listener l = *(struct listener *)p;
	while (now() < deadline) {
		int c = accept(l.fd, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		struct conn *cp = malloc(sizeof(*cp));
		cp->fd = c;
		cp->work = l.work;
		pthread_t t;
		pthread_create(&t, NULL, serve_conn, cp);
		pthread_detach(t);
	}
	return NULL;
}

/* One thread, every socket: the event loop case. */
static void event_loop(struct listener *ls, int n)
{
	int ep = epoll_create1(0);
	int works[65536] = { 0 };
	for (int i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.fd = ls[i].fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, ls[i].fd, &e);
		works[ls[i].fd] = -ls[i].work; /* negative: a listener */
	}
	char buf[65536];
	while (now() < deadline) {
		struct epoll_event ev[16];
		int k = epoll_wait(ep, ev, 16, 100);
		for (int i = 0; i < k; i++) {
			int fd = ev[i].data.fd;
			if (works[fd] < 0 && !udp) {
				int c = accept(fd, NULL, NULL);
				if (c >= 0 && c < 65536) {
					works[c] = -works[fd];
					struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
				}
				continue;
			}
			ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0)
				handle_bytes(r, works[fd] < 0 ? -works[fd] : works[fd]);
			else if (r == 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
			}
		}
	}
}

static int serve(int argc, char **argv)
{
	int epoll_mode = 0, i = 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-u"))
			udp = 1;
		else if (!strcmp(argv[i], "-e"))
			epoll_mode = 1;
		else if (!strcmp(argv[i], "-6"))
			ipv6 = 1;
	}
	if (i >= argc)
		return 2;
	deadline = now() + atof(argv[i++]);
	struct listener ls[16];
	int n = 0;
	for (; i < argc && n < 16; i++, n++) {
		int port = atoi(argv[i]);
		char *w = strchr(argv[i], ':');
		ls[n].work = w ? atoi(w + 1) : 1;
		ls[n].fd = listen_on(port);
	}
	if (epoll_mode) {
		event_loop(ls, n);
		return 0;
	}
	pthread_t t[16];
	for (int k = 0; k < n; k++) {
		if (udp) {
			struct conn *cp = malloc(sizeof(*cp));
			cp->fd = ls[k].fd;
			cp->work = ls[k].work;
			pthread_create(&t[k], NULL, serve_conn, cp);
		} else {
			pthread_create(&t[k], NULL, accept_loop, &ls[k]);
		}
	}
	for (int k = 0; k < n; k++)
		pthread_join(t[k], NULL);
	return 0;
}

static int send_main(int argc, char **argv)
{
	int i = 2;
	if (i < argc && !strcmp(argv[i], "-u")) {
		udp = 1;
		i++;
	}
	if (argc - i < 4)
		return 2;
	const char *addr = argv[i];
	int port = atoi(argv[i + 1]);
	double secs = atof(argv[i + 2]);
	double kbps = atof(argv[i + 3]);
	int v6 = strchr(addr, ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		len = sizeof(*a);
	}
	for (int tries = 0; connect(fd, (struct sockaddr *)&ss, len) < 0; tries++) {
		if (tries > 50) {
			perror("connect");
			return 1;
		}
		usleep(100000);
	}
	static char buf[4096];
	memset(buf, 'x', sizeof(buf));
	double start = now(), end = start + secs;
	double sent = 0;
	while (now() < end) {
		/* Pace: never ahead of KBPS. */
		double due = (now() - start) * kbps * 1024;
		if (sent >= due) {
			usleep(1000);
			continue;
		}
		ssize_t n = send(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno != EINTR && errno != ECONNREFUSED)
			break;
		if (n > 0)
			sent += n;
	}
	close(fd);
	printf("%.0f\n", sent);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "send"))
		return send_main(argc, argv);
	fprintf(stderr, "usage: flowsrv serve|send ...\n");
	return 2;
}
