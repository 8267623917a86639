/* SPDX-License-Identifier: MIT */
/*
 * vmce-probe - the guest side of the real-Linux tests (runs as PID 1's helper inside the
 * initramfs, statically linked).
 *
 *   vmce-probe victim    own one anonymous page, print its guest-physical address, then keep
 *                        loading from it; a SIGBUS is reported with si_code, si_addr and
 *                        si_addr_lsb before the process exits with status 42.
 *   vmce-probe freepage [N]  print the guest-physical address of a page the buddy allocator
 *                        holds free (from /proc/kpageflags), the highest one found; with N, of
 *                        the N highest free blocks (one line each).
 *
 * Every line it prints starts with "VMCE-PROBE " so that the host can find it among the
 * kernel's console output.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_SIZE      4096UL
#define PM_PFN_MASK    ((1ULL << 55) - 1)
#define PM_PRESENT     (1ULL << 63)
#define KPF_BUDDY      10
#define KPF_HWPOISON   19
#define KPF_NOPAGE     20
#define KPF_SCAN_BATCH 512

static volatile uint64_t *victim_page;

/* Async-signal-safe output: decimal or hex, into a caller's buffer. */
static size_t put_str(char *buf, size_t pos, const char *s)
{
	while (*s)
		buf[pos++] = *s++;
	return pos;
}

static size_t put_num(char *buf, size_t pos, uint64_t v, unsigned base)
{
	char tmp[24];
	size_t n = 0;

	if (base == 16)
		pos = put_str(buf, pos, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		buf[pos++] = tmp[--n];
	return pos;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char buf[160];
	size_t pos = 0;

	(void)uc;
	pos = put_str(buf, pos, "VMCE-PROBE SIGBUS si_code=");
	pos = put_num(buf, pos, (uint64_t)si->si_code, 10);
	pos = put_str(buf, pos, " si_addr=");
	pos = put_num(buf, pos, (uint64_t)(uintptr_t)si->si_addr, 16);
	pos = put_str(buf, pos, " si_addr_lsb=");
	pos = put_num(buf, pos, (uint64_t)si->si_addr_lsb, 10);
	pos = put_str(buf, pos, " signo=");
	pos = put_num(buf, pos, (uint64_t)sig, 10);
	buf[pos++] = '\n';
	if (write(STDOUT_FILENO, buf, pos) < 0)
		_exit(43);
	_exit(42);
}

static int virt_to_phys(uintptr_t va, uint64_t *pa)
{
	uint64_t ent;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0) {
		fprintf(stderr, "vmce-probe: /proc/self/pagemap: %s\n", strerror(errno));
		return -1;
	}
	if (pread(fd, &ent, sizeof(ent), (off_t)(va / PAGE_SIZE * sizeof(ent))) !=
	    (ssize_t)sizeof(ent)) {
		fprintf(stderr, "vmce-probe: reading pagemap: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!(ent & PM_PRESENT) || !(ent & PM_PFN_MASK)) {
		fprintf(stderr, "vmce-probe: page 0x%lx not present or PFN hidden (0x%llx)\n",
			(unsigned long)va, (unsigned long long)ent);
		return -1;
	}
	*pa = (ent & PM_PFN_MASK) * PAGE_SIZE;
	return 0;
}

static int run_victim(void)
{
	struct sigaction sa;
	uint64_t gpa, sum = 0;
	void *p;
	unsigned long i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0) {
		perror("vmce-probe: sigaction");
		return 1;
	}
	p = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("vmce-probe: mmap");
		return 1;
	}
	victim_page = p;
	for (i = 0; i < PAGE_SIZE / sizeof(uint64_t); i++)
		victim_page[i] = 0x5a5a5a5a00000000ULL | i;
	if (virt_to_phys((uintptr_t)p, &gpa) < 0)
		return 1;
	printf("VMCE-PROBE VICTIM pid=%d va=0x%lx gpa=0x%llx\n", (int)getpid(),
	       (unsigned long)(uintptr_t)p, (unsigned long long)gpa);
	fflush(stdout);
	/* Keep loading from the page: an error delivered now is consumed by this process. */
	for (i = 0;; i++) {
		sum += victim_page[i % (PAGE_SIZE / sizeof(uint64_t))];
		if (sum == 1) /* never true; keeps the loads alive */
			printf("%llu\n", (unsigned long long)sum);
	}
	return 0;
}

static int run_freepage(unsigned long want)
{
	unsigned long found = 0;
	uint64_t flags[KPF_SCAN_BATCH];
	off_t size;
	uint64_t nr_pfn, pfn;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0) {
		fprintf(stderr, "vmce-probe: /proc/kpageflags: %s\n", strerror(errno));
		return 1;
	}
	/* /proc/kpageflags has one entry per PFN up to max_pfn; its size is not reported, so
	 * take the physical memory size from sysconf. */
	size = (off_t)sysconf(_SC_PHYS_PAGES);
	nr_pfn = (uint64_t)size + 0x100000 / PAGE_SIZE; /* low 1 MiB hole is not counted */
	for (pfn = nr_pfn; pfn >= KPF_SCAN_BATCH;) {
		ssize_t n;
		uint64_t i;

		pfn -= KPF_SCAN_BATCH;
		n = pread(fd, flags, sizeof(flags), (off_t)(pfn * sizeof(uint64_t)));
		if (n <= 0)
			continue;
		for (i = (uint64_t)n / sizeof(uint64_t); i-- > 0;) {
			uint64_t f = flags[i];

			/* A free page: buddy, and nothing else that matters. */
			if (f == (1ULL << KPF_BUDDY)) {
				printf("VMCE-PROBE FREEPAGE gpa=0x%llx\n",
				       (unsigned long long)((pfn + i) * PAGE_SIZE));
				if (++found == want) {
					close(fd);
					return 0;
				}
			}
		}
	}
	close(fd);
	fprintf(stderr, "vmce-probe: %lu of %lu free pages found in /proc/kpageflags\n", found,
		want);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "victim"))
		return run_victim();
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "freepage")) {
		char *end;
		unsigned long n = argc == 3 ? strtoul(argv[2], &end, 10) : 1;

		if (argc == 3 && (*end || n == 0 || n > 4096)) {
			fprintf(stderr, "vmce-probe: freepage N: N is 1 to 4096\n");
			return 2;
		}
		return run_freepage(n);
	}
	fprintf(stderr, "usage: vmce-probe victim|freepage [N]\n");
	return 2;
}
