// attrops: the attribute calls an agent makes, one per argument, for the
// supervisor's emulation tests (emulate_test.go builds it with cc).
//
//   CALL:PATH            one call; prints "CALL:PATH ERRNO" (fd-CALL and
//                        fdpath-CALL: CALL on PATH opened for reading / O_PATH)
//   loop:CALL:N:PATH     N calls; prints "loop:CALL NS", the mean cost in
//                        nanoseconds (or minus the errno of a failure)
//   fdrace:CALL:N:A:B    N descriptor calls (fchmod…) on one number that a
//                        thread keeps dup2()ing between A and B opened for
//                        reading; prints "fdrace:CALL ERRNO COUNT"
//   race:HOW:CALL:N:A:B  N calls on a path buffer that a racer rewrites
//                        between A and B (same length, one byte apart) all
//                        the while, one store at a time; HOW
//                        is "thread" (a pthread) or "vm" (a process made
//                        with clone(CLONE_VM), sharing the memory but no
//                        thread group); prints "race:HOW:CALL ERRNO COUNT"
//                        per errno seen
//
// Every call is the raw system call of its name (glibc implements utime
// and utimes with utimensat, for one). The group argument of the chown
// family is taken from ATTROPS_GID.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_removexattrat
#define SYS_removexattrat 466
#endif

struct xattr_args_v0 {
	uint64_t value;
	uint32_t size, flags;
};

static gid_t gid2;
static volatile int stop;

static long sx(const char *p, const char *name, int flags) {
	return syscall(SYS_setxattr, p, name, "1", 1, flags);
}

// fdcall makes the descriptor form of an attribute call; -1 with errno on failure.
static long fdcall(const char *c, int fd) {
	if (!strcmp(c, "fchmod")) return syscall(SYS_fchmod, fd, 0600);
	if (!strcmp(c, "fchown")) return syscall(SYS_fchown, fd, -1, gid2);
	if (!strcmp(c, "fsetxattr")) return syscall(SYS_fsetxattr, fd, "user.s5", "1", 1, 0);
	if (!strcmp(c, "fremovexattr")) return syscall(SYS_fremovexattr, fd, "user.r1");
	fprintf(stderr, "attrops: unknown descriptor call %s\n", c);
	exit(2);
}

// The descriptor the fd race flips, and the two it flips between.
static int racefd, fdA, fdB;

static void *fdracer(void *unused) {
	(void)unused;
	while (!stop) {
		dup2(fdB, racefd);
		dup2(fdA, racefd);
	}
	return NULL;
}

// call makes one call on path p and returns 0 or errno.
static int call(const char *c, const char *p) {
	long r = -1;
	struct timeval tv[2] = {{1000000002, 0}, {1000000002, 0}};
	struct timeval ftv[2] = {{1000000003, 0}, {1000000003, 0}};
	struct timespec ts[2] = {{1000000004, 0}, {1000000004, 0}};
	struct utimbuf ub = {1000000001, 1000000001};
	errno = 0;
	if (!strcmp(c, "chmod")) r = syscall(SYS_chmod, p, 0600);
	else if (!strcmp(c, "fchmodat")) r = syscall(SYS_fchmodat, AT_FDCWD, p, 0640);
	else if (!strcmp(c, "fchmodat2")) r = syscall(SYS_fchmodat2, AT_FDCWD, p, 0604, 0);
	else if (!strcmp(c, "fchmodat2-nofollow")) r = syscall(SYS_fchmodat2, AT_FDCWD, p, 0604, AT_SYMLINK_NOFOLLOW);
	else if (!strcmp(c, "fchmodat2-badflags")) r = syscall(SYS_fchmodat2, AT_FDCWD, p, 0604, 0x8000);
	else if (!strcmp(c, "chmod-suid")) r = syscall(SYS_chmod, p, 04755);
	else if (!strcmp(c, "chmod-755")) r = syscall(SYS_chmod, p, 0755);
	else if (!strcmp(c, "cd")) r = chdir(p);
	else if (!strcmp(c, "nodump")) r = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); // p unused
	else if (!strcmp(c, "chown")) r = syscall(SYS_chown, p, -1, gid2);
	else if (!strcmp(c, "lchown")) r = syscall(SYS_lchown, p, -1, gid2);
	else if (!strcmp(c, "fchownat")) r = syscall(SYS_fchownat, AT_FDCWD, p, -1, gid2, 0);
	else if (!strcmp(c, "chown-uid")) r = syscall(SYS_chown, p, 0, -1);
	else if (!strcmp(c, "chown-self")) r = syscall(SYS_chown, p, getuid(), -1);
	else if (!strcmp(c, "chgrp-root")) r = syscall(SYS_chown, p, -1, 0);
	else if (!strcmp(c, "utime")) r = syscall(SYS_utime, p, &ub);
	else if (!strcmp(c, "utime-now")) r = syscall(SYS_utime, p, NULL);
	else if (!strcmp(c, "utimes")) r = syscall(SYS_utimes, p, tv);
	else if (!strcmp(c, "utimes-now")) r = syscall(SYS_utimes, p, NULL);
	else if (!strcmp(c, "utimes-badusec")) {
		struct timeval bad[2] = {{1, 1000000}, {1, 0}};
		r = syscall(SYS_utimes, p, bad);
	} else if (!strcmp(c, "futimesat")) r = syscall(SYS_futimesat, AT_FDCWD, p, ftv);
	else if (!strcmp(c, "utimensat")) r = syscall(SYS_utimensat, AT_FDCWD, p, ts, 0);
	else if (!strcmp(c, "utimensat-nofollow")) r = syscall(SYS_utimensat, AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
	else if (!strcmp(c, "utimensat-omit")) {
		struct timespec o[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
		r = syscall(SYS_utimensat, AT_FDCWD, p, o, 0);
	} else if (!strcmp(c, "utimensat-now")) {
		struct timespec o[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
		r = syscall(SYS_utimensat, AT_FDCWD, p, o, 0);
	} else if (!strcmp(c, "utimensat-badns")) {
		struct timespec o[2] = {{0, 1000000000}, {0, 0}};
		r = syscall(SYS_utimensat, AT_FDCWD, p, o, 0);
	} else if (!strcmp(c, "futimens") || !strcmp(c, "futimens-opath")) {
		// utimensat(fd, NULL): on an fd opened for reading, or O_PATH (EBADF)
		int fd = open(p, !strcmp(c, "futimens") ? O_RDONLY : O_PATH);
		if (fd < 0) return errno;
		r = syscall(SYS_utimensat, fd, NULL, NULL, 0);
		int e = errno;
		close(fd);
		errno = e;
	} else if (!strcmp(c, "fchmodat-dirfd")) {
		// p is DIR/NAME: the call names NAME relative to DIR's descriptor
		char dir[4096];
		const char *slash = strrchr(p, '/');
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - p), p);
		int fd = open(dir, O_PATH | O_DIRECTORY);
		if (fd < 0) return errno;
		r = syscall(SYS_fchmodat, fd, slash + 1, 0660);
		int e = errno;
		close(fd);
		errno = e;
	} else if (!strcmp(c, "setxattr")) r = sx(p, "user.s1", 0);
	else if (!strcmp(c, "lsetxattr")) r = syscall(SYS_lsetxattr, p, "user.s2", "1", 1, 0);
	else if (!strcmp(c, "setxattrat")) {
		struct xattr_args_v0 a = {(uint64_t)(uintptr_t) "1", 1, 0};
		r = syscall(SYS_setxattrat, AT_FDCWD, p, 0, "user.s3", &a, sizeof a);
	} else if (!strcmp(c, "setxattrat-empty") || !strcmp(c, "setxattrat-empty-opath")) {
		// setxattrat(fd, "", AT_EMPTY_PATH): on an fd opened for reading, or O_PATH (EBADF)
		int fd = open(p, !strcmp(c, "setxattrat-empty") ? O_RDONLY : O_PATH);
		if (fd < 0) return errno;
		struct xattr_args_v0 a = {(uint64_t)(uintptr_t) "1", 1, 0};
		r = syscall(SYS_setxattrat, fd, "", AT_EMPTY_PATH, "user.s4", &a, sizeof a);
		int e = errno;
		close(fd);
		errno = e;
	} else if (!strcmp(c, "fchownat-empty-opath")) {
		int fd = open(p, O_PATH | O_NOFOLLOW);
		if (fd < 0) return errno;
		r = syscall(SYS_fchownat, fd, "", -1, gid2, AT_EMPTY_PATH);
		int e = errno;
		close(fd);
		errno = e;
	} else if (!strncmp(c, "fd-", 3) || !strncmp(c, "fdpath-", 7)) {
		// fd-CALL: the descriptor form of CALL on p opened for reading;
		// fdpath-CALL: on p opened O_PATH (EBADF)
		int fd = open(p, c[2] == '-' ? O_RDONLY : O_PATH);
		if (fd < 0) return errno;
		r = fdcall(strchr(c, '-') + 1, fd);
		int e = errno;
		close(fd);
		errno = e;
	} else if (!strcmp(c, "setxattr-create")) r = sx(p, "user.keep", XATTR_CREATE);
	else if (!strcmp(c, "setxattr-replace")) r = sx(p, "user.none", XATTR_REPLACE);
	else if (!strcmp(c, "setxattr-badflags")) r = sx(p, "user.s1", 8);
	else if (!strcmp(c, "setxattr-trusted")) r = sx(p, "trusted.x", 0);
	else if (!strcmp(c, "setxattr-emptyname")) r = sx(p, "", 0);
	else if (!strcmp(c, "setxattr-big")) {
		static char big[65537];
		r = syscall(SYS_setxattr, p, "user.big", big, sizeof big, 0);
	} else if (!strcmp(c, "removexattr")) r = syscall(SYS_removexattr, p, "user.r1");
	else if (!strcmp(c, "lremovexattr")) r = syscall(SYS_lremovexattr, p, "user.r2");
	else if (!strcmp(c, "removexattrat")) r = syscall(SYS_removexattrat, AT_FDCWD, p, 0, "user.r3");
	else if (!strcmp(c, "removexattr-missing")) r = syscall(SYS_removexattr, p, "user.none");
	else {
		fprintf(stderr, "attrops: unknown call %s\n", c);
		exit(2);
	}
	return r < 0 ? errno : 0;
}

// The path buffer both sides share, and the racer's switch.
static char buf[4096] __attribute__((aligned(64)));
static size_t flip;      // index of the byte that differs between A and B
static char flipA, flipB;

static void *racer(void *unused) {
	(void)unused;
	while (!stop) {
		((volatile char *)buf)[flip] = flipB;
		((volatile char *)buf)[flip] = flipA;
	}
	return NULL;
}

static int vmracer(void *unused) {
	racer(unused);
	return 0;
}

static void race(const char *op, char *spec) {
	// spec: HOW:CALL:N:A:B
	char *how = strtok(spec, ":"), *c = strtok(NULL, ":"), *ns = strtok(NULL, ":");
	char *a = strtok(NULL, ":"), *b = strtok(NULL, ":");
	size_t diff = 0;
	for (size_t k = 0; a && b && a[k] && b[k]; k++)
		if (a[k] != b[k]) diff++, flip = k;
	if (!how || !c || !ns || !a || !b || strlen(a) != strlen(b) || diff != 1) {
		fprintf(stderr, "attrops: bad race %s (A and B must differ in one byte)\n", op);
		exit(2);
	}
	flipA = a[flip], flipB = b[flip];
	strcpy(buf, a);
	stop = 0;
	pthread_t t;
	pid_t child = -1;
	static char stack[1 << 16] __attribute__((aligned(16)));
	if (!strcmp(how, "thread")) {
		if (pthread_create(&t, NULL, racer, NULL) != 0) {
			perror("pthread_create");
			exit(3);
		}
	} else {
		child = clone(vmracer, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
		if (child < 0) {
			perror("clone");
			exit(3);
		}
	}
	int counts[256] = {0};
	long n = atol(ns);
	for (long k = 0; k < n; k++) {
		int e = call(c, buf);
		counts[e & 0xff]++;
	}
	stop = 1;
	if (child < 0) {
		pthread_join(t, NULL);
	} else {
		waitpid(child, NULL, 0);
	}
	for (int e = 0; e < 256; e++) {
		if (counts[e]) printf("race:%s:%s %d %d\n", how, c, e, counts[e]);
	}
	fflush(stdout);
}

int main(int argc, char **argv) {
	const char *g = getenv("ATTROPS_GID");
	gid2 = g ? (gid_t)atol(g) : getgid();
	for (int i = 1; i < argc; i++) {
		char *op = argv[i];
		if (!strncmp(op, "loop:", 5)) {
			// loop:CALL:N:PATH: N calls; prints "loop:CALL NS" per call
			char spec[8192];
			snprintf(spec, sizeof spec, "%s", op + 5);
			char *c = strtok(spec, ":"), *ns = strtok(NULL, ":"), *p = strtok(NULL, "");
			long n = ns ? atol(ns) : 0;
			if (!c || !p || n <= 0) {
				fprintf(stderr, "attrops: bad loop %s\n", op);
				return 2;
			}
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			for (long k = 0; k < n; k++) {
				int e = call(c, p);
				if (e) {
					printf("loop:%s %d\n", c, -e);
					return 0;
				}
			}
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("loop:%s %lld\n", c, ((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / n);
			fflush(stdout);
			continue;
		}
		if (!strncmp(op, "fdrace:", 7)) {
			// fdrace:CALL:N:A:B: N descriptor calls on one number that a
			// thread keeps dup2()ing between A and B (both opened for
			// reading); prints "fdrace:CALL ERRNO COUNT" per errno seen
			char spec[8192];
			snprintf(spec, sizeof spec, "%s", op + 7);
			char *c = strtok(spec, ":"), *ns = strtok(NULL, ":"), *a = strtok(NULL, ":"), *b = strtok(NULL, ":");
			if (!c || !ns || !a || !b || (fdA = open(a, O_RDONLY)) < 0 || (fdB = open(b, O_RDONLY)) < 0) {
				fprintf(stderr, "attrops: bad fdrace %s: %s\n", op, strerror(errno));
				return 2;
			}
			racefd = dup(fdA);
			stop = 0;
			pthread_t t;
			pthread_create(&t, NULL, fdracer, NULL);
			int counts[256] = {0};
			for (long k = 0, n = atol(ns); k < n; k++) {
				long r = fdcall(c, racefd);
				counts[r < 0 ? errno & 0xff : 0]++;
			}
			stop = 1;
			pthread_join(t, NULL);
			close(racefd), close(fdA), close(fdB);
			for (int e = 0; e < 256; e++)
				if (counts[e]) printf("fdrace:%s %d %d\n", c, e, counts[e]);
			fflush(stdout);
			continue;
		}
		if (!strncmp(op, "race:", 5)) {
			char spec[8192];
			snprintf(spec, sizeof spec, "%s", op + 5);
			race(op, spec);
			continue;
		}
		if (!strncmp(op, "keep:", 5)) {
			// keep:PATH: open PATH for reading as descriptor 100, kept
			// open for the ops that follow (/proc/self/fd/100)
			int fd = open(op + 5, O_RDONLY);
			printf("%s %d\n", op, fd < 0 ? errno : (dup2(fd, 100) < 0 ? errno : 0));
			fflush(stdout);
			continue;
		}
		char *colon = strchr(op, ':');
		if (!colon) {
			fprintf(stderr, "attrops: bad op %s\n", op);
			return 2;
		}
		*colon = 0;
		int e = call(op, colon + 1);
		*colon = ':';
		printf("%s %d\n", op, e);
		fflush(stdout);
	}
	printf("attrops done\n");
	return 0;
}
