/*
 * pam_flux: admit a login only while the user has a running Flux job on this node.
 *
 * This module decides nothing. It runs the flux-pam helper (a root-owned file at a path
 * fixed at build time), reads its reply on a pipe, and turns that reply into PAM results.
 * The contract between the two is pam/PROTOCOL.md. Account and session management only:
 * auth and password are deliberately absent, so a stack that names pam_flux.so there fails
 * (libpam reports the missing symbol) instead of passing without a check.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* secure_getenv, pipe2, vasprintf */
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#ifndef FLUX_PAM_HELPER
#define FLUX_PAM_HELPER "/usr/libexec/flux-pam/flux-pam"
#endif

#define DEFAULT_URI "local:///run/flux/local"
#define DEFAULT_LOCK_DIR "/run/flux-pam"
#define DEFAULT_TIMEOUT_MS 10000L
#define MAX_TIMEOUT_MS (3600L * 1000)
#define KILL_WAIT_MS 2000		/* how long a killed helper may take to exit before it is left */
#define HELPER_PATH_ENV "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define REPLY_FD 3
#define MAX_LINE 1024		/* one reply line, LF included */
#define MAX_REPLY 16384		/* the whole reply; more and the helper is killed */
#define MAX_ARGS 12
#define MAX_ENV 12
#define OWNER_MARK "pam_flux_owner_admitted"

enum phase { ACCOUNT, SESSION };

struct options {
	int allow_guest_user;
	int no_job_hint;		/* a denied user is not told where their jobs run */
	int debug;
	const char *uri;		/* NULL: FLUX_URI of a root caller, else DEFAULT_URI */
	const char *helper;
	const char *scope_prefix;	/* NULL: the helper's default */
	const char *lock_dir;		/* NULL: FLUX_PAM_LOCK_DIR of a root caller, else DEFAULT_LOCK_DIR */
	long timeout_ms;
};

/* What happened to the helper process. */
struct run {
	char *buf;			/* MAX_REPLY + 2 bytes */
	size_t len;
	int status;			/* from waitpid, valid when reaped */
	int reaped;
	int timed_out;
	int overflow;
	int failed;			/* a system call failed while waiting: fail closed */
	int unkillable;			/* still there KILL_WAIT_MS after SIGKILL: left unreaped */
};

/* The result lines of PROTOCOL.md and the PAM code each one stands for. */
struct result {
	const char *word;
	enum phase phase;
	int pam;
	int needs_exit_0;		/* it lets the login go on: only with exit status 0 */
};

static const struct result results[] = {
	{ "owner", ACCOUNT, PAM_SUCCESS, 1 },
	{ "guest", ACCOUNT, PAM_SUCCESS, 1 },
	{ "deny", ACCOUNT, PAM_PERM_DENIED, 0 },
	{ "user-unknown", ACCOUNT, PAM_USER_UNKNOWN, 0 },
	{ "success", SESSION, PAM_SUCCESS, 1 },
	{ "ignore", SESSION, PAM_IGNORE, 1 },
	/* not PAM_SESSION_ERR: sudo takes that one as non-fatal and runs the command uncontained */
	{ "session-error", SESSION, PAM_SYSTEM_ERR, 0 },
};

/* What the helper said. Pointers point into run.buf. */
struct reply {
	const struct result *result;	/* NULL: none, or not one of this phase */
	int results;			/* result lines seen: more than one is a contradiction */
	int said_error;
	const char *env_xdg;		/* "XDG_RUNTIME_DIR=..." */
	const char *env_dbus;		/* "DBUS_SESSION_BUS_ADDRESS=..." */
};

static const struct {
	const char *word;
	int priority;
} priorities[] = {
	{ "err", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

/* 64 bits: a long is 32 on some targets, and a monotonic clock may be days along */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A Flux Standard Duration ("30s", "1.5m", "500ms", "10") as milliseconds; -1 if malformed. */
static long
parse_fsd_ms(const char *s)
{
	static const struct {
		const char *suffix;
		double ms;
	} units[] = { { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 } };
	char *end;
	double v;
	size_t i;

	if (!isdigit((unsigned char)s[0]) && s[0] != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			v *= units[i].ms;
			if (!(v >= 1 && v <= MAX_TIMEOUT_MS))
				return -1;
			return (long)v;
		}
	}
	return -1;
}

static int
parse_args(pam_handle_t *pamh, int argc, const char **argv, struct options *opt)
{
	int i;

	memset(opt, 0, sizeof(*opt));
	opt->helper = FLUX_PAM_HELPER;
	opt->timeout_ms = DEFAULT_TIMEOUT_MS;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "allow-guest-user") == 0) {
			opt->allow_guest_user = 1;
		} else if (strcmp(a, "no-job-hint") == 0) {
			opt->no_job_hint = 1;
		} else if (strcmp(a, "debug") == 0) {
			opt->debug = 1;
		} else if (strncmp(a, "uri=", 4) == 0 && a[4] != '\0') {
			opt->uri = a + 4;
		} else if (strncmp(a, "helper=", 7) == 0 && a[7] == '/') {
			opt->helper = a + 7;
		} else if (strncmp(a, "scope-prefix=", 13) == 0 && a[13] != '\0') {
			opt->scope_prefix = a + 13;
		} else if (strncmp(a, "lock-dir=", 9) == 0 && a[9] == '/') {
			opt->lock_dir = a + 9;
		} else if (strncmp(a, "timeout=", 8) == 0 && parse_fsd_ms(a + 8) > 0) {
			opt->timeout_ms = parse_fsd_ms(a + 8);
		} else {
			pam_syslog(pamh, LOG_ERR, "unknown or malformed option: %s", a);
			return PAM_SYSTEM_ERR;
		}
	}
	if (opt->helper[0] != '/') {
		/* only a build with a relative FLUX_PAM_HELPER gets here */
		pam_syslog(pamh, LOG_ERR, "helper path %s is not absolute", opt->helper);
		return PAM_SYSTEM_ERR;
	}
	return PAM_SUCCESS;
}

/*
 * The broker URI and the lock dir may come from the caller's environment only when its
 * real uid is 0 (sshd, a root shell): under su/sudo the environment is the user's, and a
 * URI pointing at a fake broker would let them in. A real uid of 0 is not enough: sudo
 * raises its real uid to 0 before its PAM calls, and keeps the user's environment.
 * secure_getenv() sees the setuid exec (AT_SECURE) whatever the ids are now.
 */
static const char *
root_env(const char *option, const char *name, const char *fallback)
{
	const char *v;

	if (option != NULL)
		return option;
	if (getuid() == 0 && (v = secure_getenv(name)) != NULL && v[0] != '\0')
		return v;
	return fallback;
}

/*
 * The helper must be a regular file owned by root and not group/other writable, in
 * directories with the same property (a sticky directory such as /tmp is fine: nobody but
 * root may rename root's entries in it). Symbolic links are resolved first and the resolved
 * path is what runs, so a link cannot be swapped between this check and execve.
 * Returns the resolved path (malloc'd) or NULL after logging why.
 */
static char *
checked_helper(pam_handle_t *pamh, const char *path)
{
	struct stat st;
	char *real, *dir = NULL;
	char *slash;

	real = realpath(path, NULL);
	if (real == NULL) {
		pam_syslog(pamh, LOG_ERR, "helper %s: %m", path);
		return NULL;
	}
	if (lstat(real, &st) != 0) {
		pam_syslog(pamh, LOG_ERR, "helper %s: %m", real);
		goto bad;
	}
	if (!S_ISREG(st.st_mode)) {
		pam_syslog(pamh, LOG_ERR, "helper %s is not a regular file", real);
		goto bad;
	}
	if (st.st_uid != 0) {
		pam_syslog(pamh, LOG_ERR, "helper %s is owned by uid %u, not root", real, (unsigned)st.st_uid);
		goto bad;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		pam_syslog(pamh, LOG_ERR, "helper %s is group/other writable (mode %04o)", real,
			   (unsigned)(st.st_mode & 07777));
		goto bad;
	}
	dir = strdup(real);
	if (dir == NULL) {
		pam_syslog(pamh, LOG_CRIT, "out of memory");
		goto bad;
	}
	while ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';	/* the root directory itself */
		else
			slash[0] = '\0';
		if (lstat(dir, &st) != 0) {
			pam_syslog(pamh, LOG_ERR, "helper directory %s: %m", dir);
			goto bad;
		}
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0) {
			pam_syslog(pamh, LOG_ERR, "helper directory %s is not a directory owned by root", dir);
			goto bad;
		}
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
			pam_syslog(pamh, LOG_ERR, "helper directory %s is group/other writable (mode %04o)", dir,
				   (unsigned)(st.st_mode & 07777));
			goto bad;
		}
		if (slash == dir)
			break;
	}
	free(dir);
	return real;
bad:
	free(dir);
	free(real);
	return NULL;
}

/* Appends one printf-formatted string to a NULL-terminated vector of at most max - 1. */
static int
push(char **v, int max, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	for (n = 0; v[n] != NULL; n++)
		;
	if (n >= max - 1)
		return -1;
	va_start(ap, fmt);
	r = vasprintf(&v[n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		v[n] = NULL;
		return -1;
	}
	return 0;
}

static void
free_vector(char **v)
{
	int n;

	for (n = 0; v[n] != NULL; n++)
		free(v[n]);
}

/* Linux's directory entry as getdents64 returns it (glibc does not declare it). */
struct dirent64_raw {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/*
 * Closes every fd >= from. Runs in the child between fork and exec, so only
 * async-signal-safe calls: close_range where the kernel has it, else a raw getdents64 walk
 * of /proc/self/fd, else every fd up to the limit.
 */
static void
close_from(int from)
{
	char buf[4096];
	long n, off, lim, fd;
	int dfd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
		return;
#endif
	dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (off = 0; off < n; off += ((struct dirent64_raw *)(buf + off))->d_reclen) {
				const char *name = ((struct dirent64_raw *)(buf + off))->d_name;

				if (!isdigit((unsigned char)name[0]))
					continue;
				fd = 0;
				while (isdigit((unsigned char)*name) && fd < INT_MAX / 10)
					fd = fd * 10 + (*name++ - '0');
				if (fd >= from && fd != dfd)
					close((int)fd);
			}
		}
		close(dfd);
		if (n == 0)
			return;
	}
	lim = sysconf(_SC_OPEN_MAX);
	if (lim < 0 || lim > 1L << 20)
		lim = 1L << 20;
	for (fd = from; fd < lim; fd++)
		close((int)fd);
}

/*
 * glibc keeps two real-time signals for itself (32, 33) and its sigaction() refuses them, yet an
 * ignored one is inherited through execve like any other: reset it with the raw system call.
 * (Seen: a test runner that ignores signal 32 passed it on to every helper.)
 */
static void
reset_reserved_signal(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa = { SIG_DFL, 0, NULL, 0 };

	(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/* The child: a new session in /, plain root if the caller is root, fds 0-2 on /dev/null. */
static void __attribute__((noreturn))
exec_helper(int wfd, const char *path, char *const argv[], char *const envp[])
{
	struct sigaction dfl;
	sigset_t none;
	int fd, null, sig;

	/* the caller's working directory may be the user's (su): nothing there is the helper's */
	if (setsid() < 0 || chdir("/") != 0)
		_exit(127);
	/* under su/sudo the real ids are the user's: the helper runs with real uid 0 */
	if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(0) != 0 || setuid(0) != 0))
		_exit(127);
	fd = fcntl(wfd, F_DUPFD, REPLY_FD + 1);
	null = open("/dev/null", O_RDWR);
	if (fd < 0 || null < 0)
		_exit(127);
	if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 || dup2(fd, REPLY_FD) < 0)
		_exit(127);
	close_from(REPLY_FD + 1);

	/* the caller's signal handling is not the helper's: ignored signals survive execve */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		if (sigaction(sig, &dfl, NULL) != 0 && errno == EINVAL)
			reset_reserved_signal(sig);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	execve(path, argv, envp);
	_exit(127);
}

static int
open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

/* Reads the reply until EOF and the child's exit, the deadline, or too much data. */
static void
collect(pam_handle_t *pamh, int rfd, int pidfd, int64_t deadline, struct run *run)
{
	struct pollfd p[2];
	int eof = 0, exited = pidfd < 0, n, r;
	int64_t left;
	ssize_t k;

	while (!eof || !exited) {
		left = deadline - now_ms();
		if (left <= 0) {
			run->timed_out = 1;
			return;
		}
		n = 0;
		if (!eof)
			p[n++] = (struct pollfd){ .fd = rfd, .events = POLLIN };
		if (!exited)
			p[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		r = poll(p, n, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			pam_syslog(pamh, LOG_ERR, "poll: %m");
			run->failed = 1;
			return;
		}
		if (!eof && p[0].revents) {
			for (;;) {
				k = read(rfd, run->buf + run->len, MAX_REPLY + 1 - run->len);
				if (k > 0) {
					run->len += (size_t)k;
					if (run->len > MAX_REPLY) {
						run->overflow = 1;
						return;
					}
					continue;
				}
				if (k == 0)
					eof = 1;
				else if (errno == EINTR)
					continue;
				else if (errno != EAGAIN) {
					pam_syslog(pamh, LOG_ERR, "reading the helper's reply: %m");
					run->failed = 1;
					return;
				}
				break;
			}
		}
		if (!exited && p[n - 1].revents)
			exited = 1;
	}
}

static int
signal_child(pid_t pid, int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (pidfd >= 0)
		return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
	(void)pidfd;
#endif
	return kill(pid, sig);
}

/* Is `pid` still our unreaped child (running or a zombie)? Then its pid, and the group it leads, are its own. */
static int
still_ours(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* Polls for the child's exit until `until`: 1 reaped (run->status set), 0 still there, -1 waitpid failed. */
static int
wait_until(pid_t pid, int64_t until, struct run *run)
{
	struct timespec ms = { 0, 1000000 };
	pid_t r;

	for (;;) {
		r = waitpid(pid, &run->status, WNOHANG);
		if (r == pid) {
			run->reaped = 1;
			return 1;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (now_ms() >= until)
			return 0;
		nanosleep(&ms, NULL);
	}
}

/*
 * Reaps the child. Without a pidfd the exit is polled until the deadline; a child still
 * there (timed out, too talkative, or after an error) is killed with its process group, and
 * waited for KILL_WAIT_MS at most (a helper stuck in the kernel must not hold the login
 * forever: it is left, unreaped, and the login fails). A child someone else reaped (a thread
 * of the caller's calling waitpid(-1)) is not signalled, nor is its group: once the group is empty, its
 * number may lead some other process's group by now.
 */
static void
reap(pam_handle_t *pamh, pid_t pid, int pidfd, int64_t deadline, struct run *run)
{
	if (!run->timed_out && !run->overflow && !run->failed) {
		switch (wait_until(pid, deadline, run)) {
		case 1:
			return;
		case -1:
			pam_syslog(pamh, LOG_ERR, "waitpid: %m");
			run->failed = 1;
			return;
		default:
			run->timed_out = 1;
		}
	}
	if (!still_ours(pid)) {
		pam_syslog(pamh, LOG_ERR, "the helper (pid %ld) was reaped by someone else", (long)pid);
		return;
	}
	/* the child called setsid(), so its pid is its process group */
	kill(-pid, SIGKILL);
	signal_child(pid, pidfd, SIGKILL);
	if (wait_until(pid, now_ms() + KILL_WAIT_MS, run) == 0)
		run->unkillable = 1;
}

/*
 * Runs the helper with `argv` and `envp` and collects its reply in `run`. SIGCHLD is default
 * while the child runs, so the caller's handler cannot reap it first, and blocked in this
 * thread, so that a SIGCHLD that arrives meanwhile (the helper's, or that of another child this
 * thread forked: in a single-threaded caller, any child) stays pending and reaches the caller's
 * handler once it is back, instead of being discarded as an ignored signal. A child of another
 * thread of the caller's that ends meanwhile signals that thread, where SIGCHLD is not blocked:
 * that one is discarded. One already pending on entry is discarded by the change to
 * default all the same (POSIX: a pending signal whose default is to ignore it goes when its
 * action becomes SIG_DFL); the caller's handler then finds that child at its next SIGCHLD.
 * Returns 0 when the helper ran (the outcome is in `run`), -1 when it could not be started
 * (logged).
 */
static int
run_helper(pam_handle_t *pamh, const char *path, char *const argv[], char *const envp[], long timeout_ms,
	   struct run *run)
{
	struct sigaction dfl, old;
	sigset_t chld, old_mask;
	int pfd[2] = { -1, -1 };
	int pidfd = -1, ret = -1;
	int64_t deadline;
	pid_t pid;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		pam_syslog(pamh, LOG_ERR, "pipe: %m");
		return -1;
	}
	/* blocked before the change to default, so that none arriving from here on is lost */
	if ((errno = pthread_sigmask(SIG_BLOCK, &chld, &old_mask)) != 0) {
		pam_syslog(pamh, LOG_ERR, "pthread_sigmask: %m");
		goto out_pipe;
	}
	if (sigaction(SIGCHLD, &dfl, &old) != 0) {
		pam_syslog(pamh, LOG_ERR, "sigaction: %m");
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
		goto out_pipe;
	}
	deadline = now_ms() + timeout_ms;
	pid = fork();
	if (pid == 0)
		exec_helper(pfd[1], path, argv, envp);
	if (pid < 0) {
		pam_syslog(pamh, LOG_ERR, "fork: %m");
		goto out;
	}
	close(pfd[1]);
	pfd[1] = -1;
	if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) != 0) {
		pam_syslog(pamh, LOG_ERR, "fcntl: %m");
		run->failed = 1;
	}
	/* the child cannot be reaped before waitpid below, so its pid is still the child's */
	pidfd = open_pidfd(pid);
	if (!run->failed)
		collect(pamh, pfd[0], pidfd, deadline, run);
	reap(pamh, pid, pidfd, deadline, run);
	ret = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	sigaction(SIGCHLD, &old, NULL);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
out_pipe:
	close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return ret;
}

static void
tell(pam_handle_t *pamh, int flags, int style, const char *text)
{
	if (flags & PAM_SILENT)
		return;
	if (style == PAM_ERROR_MSG)
		pam_error(pamh, "%s", text);
	else
		pam_info(pamh, "%s", text);
}

static void
handle_line(pam_handle_t *pamh, int flags, enum phase phase, const char *line, struct reply *reply)
{
	const char *arg;
	size_t i;

	if (strncmp(line, "result ", 7) == 0) {
		arg = line + 7;
		reply->results++;
		reply->result = NULL;
		for (i = 0; i < sizeof(results) / sizeof(results[0]); i++)
			if (results[i].phase == phase && strcmp(arg, results[i].word) == 0)
				reply->result = &results[i];
		if (reply->result == NULL)
			pam_syslog(pamh, LOG_ERR, "helper reply: \"result %s\" is not a result here", arg);
	} else if (strncmp(line, "say error ", 10) == 0) {
		tell(pamh, flags, PAM_ERROR_MSG, line + 10);
		reply->said_error = 1;
	} else if (strncmp(line, "say info ", 9) == 0) {
		tell(pamh, flags, PAM_TEXT_INFO, line + 9);
	} else if (strncmp(line, "log ", 4) == 0) {
		arg = line + 4;
		for (i = 0; i < sizeof(priorities) / sizeof(priorities[0]); i++) {
			size_t len = strlen(priorities[i].word);

			if (strncmp(arg, priorities[i].word, len) == 0 && arg[len] == ' ') {
				pam_syslog(pamh, priorities[i].priority, "%s", arg + len + 1);
				return;
			}
		}
		pam_syslog(pamh, LOG_WARNING, "helper reply: unknown log priority in \"%.64s\"", line);
	} else if (strncmp(line, "env ", 4) == 0) {
		arg = line + 4;
		if (phase == SESSION && strncmp(arg, "XDG_RUNTIME_DIR=", 16) == 0)
			reply->env_xdg = arg;
		else if (phase == SESSION && strncmp(arg, "DBUS_SESSION_BUS_ADDRESS=", 25) == 0)
			reply->env_dbus = arg;
		else
			pam_syslog(pamh, LOG_WARNING, "helper reply: \"env %.64s\" not accepted", arg);
	} else {
		pam_syslog(pamh, LOG_WARNING, "helper reply: unknown line \"%.64s\" ignored", line);
	}
}

/* Splits the reply into lines; malformed ones are logged and ignored (they never admit). */
static void
handle_reply(pam_handle_t *pamh, int flags, enum phase phase, struct run *run, struct reply *reply)
{
	char *line = run->buf, *end = run->buf + run->len, *nl, *c;

	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL) {
			pam_syslog(pamh, LOG_WARNING, "helper reply: unterminated last line ignored");
			return;
		}
		*nl = '\0';
		/* not iscntrl(): in the caller's locale it may take UTF-8 bytes for C1 controls */
		for (c = line; c < nl && (unsigned char)*c >= 0x20 && *c != 0x7f; c++)
			;
		if (nl - line + 1 > MAX_LINE)
			pam_syslog(pamh, LOG_WARNING, "helper reply: line longer than %d bytes ignored", MAX_LINE);
		else if (c != nl)
			pam_syslog(pamh, LOG_WARNING, "helper reply: line with a control character ignored");
		else
			handle_line(pamh, flags, phase, line, reply);
		line = nl + 1;
	}
}

/* Logs why a run gave no usable answer and returns 1, or returns 0 when the helper exited. */
static int
abnormal(pam_handle_t *pamh, const char *path, long timeout_ms, const struct run *run)
{
	int bad = 1;

	if (run->timed_out)
		pam_syslog(pamh, LOG_ERR, "helper %s did not finish within %ld ms: killed", path, timeout_ms);
	else if (run->overflow)
		pam_syslog(pamh, LOG_ERR, "helper %s wrote more than %d bytes: killed", path, MAX_REPLY);
	else if (run->failed || !run->reaped)
		pam_syslog(pamh, LOG_ERR, "lost track of helper %s", path);
	else if (WIFSIGNALED(run->status))
		pam_syslog(pamh, LOG_ERR, "helper %s killed by signal %d", path, WTERMSIG(run->status));
	else
		bad = 0;
	if (run->unkillable)
		pam_syslog(pamh, LOG_ERR, "helper %s had not exited %d ms after SIGKILL: left unreaped", path,
			   KILL_WAIT_MS);
	return bad;
}

static void
free_mark(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

/*
 * The user the account part admitted as a job owner on this handle, or NULL. The mark holds the
 * name it was given for: an application (sudo) or a module may set PAM_USER to someone else
 * before the session, and that user was not admitted.
 */
static const char *
owner_mark(pam_handle_t *pamh)
{
	const void *data = NULL;

	return pam_get_data(pamh, OWNER_MARK, &data) == PAM_SUCCESS ? data : NULL;
}

/* The PAM items the helper gets in its environment, when set. */
static const struct {
	int item;
	const char *name;
} env_items[] = { { PAM_RHOST, "PAM_RHOST" }, { PAM_RUSER, "PAM_RUSER" }, { PAM_TTY, "PAM_TTY" } };

/* argv and envp for the helper, as PROTOCOL.md has them. Returns -1 when out of memory. */
static int
helper_command(pam_handle_t *pamh, const struct options *opt, int flags, enum phase phase, const char *path,
	       const char *user, const char *service, char **args, char **envp)
{
	const char *uri = root_env(opt->uri, "FLUX_URI", DEFAULT_URI);
	const char *lock_dir = root_env(opt->lock_dir, "FLUX_PAM_LOCK_DIR", DEFAULT_LOCK_DIR);
	/* the helper gets a little less time than the wrapper, so its own reason reaches the log */
	long helper_ms = opt->timeout_ms - (opt->timeout_ms / 10 < 1000 ? opt->timeout_ms / 10 : 1000);
	const void *item;
	size_t i;

	if (opt->debug)
		pam_syslog(pamh, LOG_DEBUG, "%s user=%s service=%s helper=%s uri=%s%s%s timeout=%ldms",
			   phase == ACCOUNT ? "account" : "session", user, service, path, uri,
			   phase == SESSION ? " lock-dir=" : "", phase == SESSION ? lock_dir : "", opt->timeout_ms);

	if (push(args, MAX_ARGS, "%s", path) ||
	    push(args, MAX_ARGS, "%s", phase == ACCOUNT ? "account" : "session-open") ||
	    (phase == ACCOUNT && opt->allow_guest_user && push(args, MAX_ARGS, "allow-guest-user")) ||
	    (phase == ACCOUNT && opt->no_job_hint && push(args, MAX_ARGS, "no-job-hint")) ||
	    /* nothing the helper says is shown: it need not look anything up to say it */
	    (phase == ACCOUNT && (flags & PAM_SILENT) && push(args, MAX_ARGS, "silent")) ||
	    (phase == SESSION && opt->scope_prefix && push(args, MAX_ARGS, "scope-prefix=%s", opt->scope_prefix)) ||
	    (phase == SESSION && push(args, MAX_ARGS, "lock-dir=%s", lock_dir)) ||
	    (opt->debug && push(args, MAX_ARGS, "debug")) ||
	    push(args, MAX_ARGS, "uri=%s", uri) ||
	    push(args, MAX_ARGS, "timeout=%ldms", helper_ms))
		return -1;

	if (push(envp, MAX_ENV, "PAM_USER=%s", user) ||
	    push(envp, MAX_ENV, "PAM_TYPE=%s", phase == ACCOUNT ? "account" : "open_session") ||
	    push(envp, MAX_ENV, "PAM_SERVICE=%s", service) ||
	    push(envp, MAX_ENV, "FLUX_PAM_PID=%ld", (long)getpid()) ||
	    push(envp, MAX_ENV, "FLUX_PAM_REPLY_FD=%d", REPLY_FD) ||
	    push(envp, MAX_ENV, "%s", HELPER_PATH_ENV))
		return -1;
	for (i = 0; i < sizeof(env_items) / sizeof(env_items[0]); i++)
		if (pam_get_item(pamh, env_items[i].item, &item) == PAM_SUCCESS && item != NULL &&
		    push(envp, MAX_ENV, "%s=%s", env_items[i].name, (const char *)item))
			return -1;
	return 0;
}

/*
 * The PAM code for what the helper said and how it ended (fail closed: `fail` for anything
 * but one well-formed result with the exit status it requires), with its side effects: the
 * owner mark, the session's environment.
 */
static int
outcome(pam_handle_t *pamh, const char *path, long timeout_ms, const struct run *run, const struct reply *reply,
	const char *user, int fail)
{
	const struct result *r = reply->result;
	char *mark;
	int status;

	if (abnormal(pamh, path, timeout_ms, run))
		return fail;
	status = WEXITSTATUS(run->status);
	if (reply->results > 1) {
		pam_syslog(pamh, LOG_ERR, "helper %s sent %d result lines", path, reply->results);
		return fail;
	}
	if (reply->results == 0) {
		pam_syslog(pamh, LOG_ERR, "helper %s exited with status %d%s and no result", path, status,
			   status == 127 ? " (could not be executed)" : "");
		return fail;
	}
	if (r == NULL)
		return fail;
	if (r->needs_exit_0 && status != 0) {
		pam_syslog(pamh, LOG_ERR, "helper %s said \"result %s\" but exited with status %d", path, r->word, status);
		return fail;
	}
	if (strcmp(r->word, "owner") == 0) {
		mark = strdup(user);
		if (mark == NULL || pam_set_data(pamh, OWNER_MARK, mark, free_mark) != PAM_SUCCESS) {
			free(mark);
			pam_syslog(pamh, LOG_ERR, "pam_set_data failed");
			return fail;
		}
	}
	if (strcmp(r->word, "success") == 0 &&
	    ((reply->env_xdg != NULL && pam_putenv(pamh, reply->env_xdg) != PAM_SUCCESS) ||
	     (reply->env_dbus != NULL && pam_putenv(pamh, reply->env_dbus) != PAM_SUCCESS))) {
		pam_syslog(pamh, LOG_ERR, "pam_putenv failed");
		return fail;
	}
	return r->pam;
}

static int
perform(pam_handle_t *pamh, int flags, int argc, const char **argv, enum phase phase)
{
	char *args[MAX_ARGS] = { NULL };
	char *envp[MAX_ENV] = { NULL };
	struct options opt;
	struct run run;
	struct reply reply;
	const void *item;
	const char *user = NULL, *service = "";
	char *path = NULL;
	/* a session's failure is PAM_SYSTEM_ERR: sudo carries on after PAM_SESSION_ERR */
	int fail = phase == ACCOUNT ? PAM_PERM_DENIED : PAM_SYSTEM_ERR;
	const char *admitted = NULL;
	int retval;

	memset(&run, 0, sizeof(run));
	memset(&reply, 0, sizeof(reply));
	/* a mark from an earlier call on this handle must not outlive this answer, whatever it is */
	if (phase == ACCOUNT && pam_set_data(pamh, OWNER_MARK, NULL, NULL) != PAM_SUCCESS) {
		pam_syslog(pamh, LOG_ERR, "pam_set_data failed");
		return fail;
	}
	retval = parse_args(pamh, argc, argv, &opt);
	if (retval != PAM_SUCCESS)
		return retval;

	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS && item != NULL)
		service = item;
	/* systemd's own user manager opens a PAM session: nothing to contain, and no recursion */
	if (phase == SESSION && strcmp(service, "systemd-user") == 0) {
		if (opt.debug)
			pam_syslog(pamh, LOG_DEBUG, "service systemd-user: nothing to do");
		return PAM_SUCCESS;
	}
	if (phase == SESSION) {
		admitted = owner_mark(pamh);
		if (admitted == NULL) {
			/* before pam_get_user: a handle nobody was admitted on is not ours, user name or not */
			if (opt.debug && pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS)
				pam_syslog(pamh, LOG_DEBUG, "user %s was not admitted by pam_flux as a job owner: ignored",
					   item != NULL ? (const char *)item : "(unset)");
			return PAM_IGNORE;
		}
	}
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || user[0] == '\0') {
		pam_syslog(pamh, LOG_NOTICE, "cannot determine the user name");
		return phase == ACCOUNT ? PAM_USER_UNKNOWN : fail;
	}
	/* (the caller's process stays where it is: in the admitted user's scope, if it has one) */
	if (phase == SESSION && strcmp(admitted, user) != 0) {
		pam_syslog(pamh, LOG_NOTICE,
			   "user %s was not admitted by pam_flux (the account part admitted %s as a job owner): ignored",
			   user, admitted);
		return PAM_IGNORE;
	}

	retval = fail;
	path = checked_helper(pamh, opt.helper);
	if (path == NULL)
		goto out;
	run.buf = malloc(MAX_REPLY + 2);
	if (run.buf == NULL || helper_command(pamh, &opt, flags, phase, path, user, service, args, envp) != 0) {
		pam_syslog(pamh, LOG_CRIT, "out of memory");
		goto out;
	}
	if (run_helper(pamh, path, args, envp, opt.timeout_ms, &run) != 0)
		goto out;
	handle_reply(pamh, flags, phase, &run, &reply);
	retval = outcome(pamh, path, opt.timeout_ms, &run, &reply, user, fail);
out:
	if (retval == fail && !reply.said_error) {
		char *msg = NULL;

		if (asprintf(&msg, "Access denied: user %s has no active jobs on this node", user) >= 0) {
			tell(pamh, flags, PAM_ERROR_MSG, msg);
			free(msg);
		}
	}
	free_vector(args);
	free_vector(envp);
	free(run.buf);
	free(path);
	return retval;
}

int
pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return perform(pamh, flags, argc, argv, ACCOUNT);
}

int
pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return perform(pamh, flags, argc, argv, SESSION);
}

/* systemd removes the scope when its last process exits: nothing to undo here. */
int
pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct options opt;

	(void)flags;
	return parse_args(pamh, argc, argv, &opt);
}
