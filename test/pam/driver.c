/*
 * pam-driver: runs PAM calls through the real libpam with a private config dir, so the
 * modules under test are loaded exactly as sshd would load them and /etc is untouched.
 *
 *   pam-driver [options] ACTION...
 *     -c DIR      config dir holding the service file (pam_start_confdir); default "."
 *     -s SERVICE  service name (default "flux-pam-test")
 *     -u USER     PAM_USER (default "nobody")
 *     -r RHOST    PAM_RHOST
 *     -t TTY      PAM_TTY
 *     -q          pass PAM_SILENT
 *     -R RUID     call setresuid(RUID, 0, 0) first, as su/sudo run their PAM stack
 *     -S          call setresuid(0, 0, 0) first, as sudo does before its PAM calls (for a copy
 *                 of the driver installed setuid root and run by a user)
 *     -n N        repeat the actions N times (for the benchmark)
 *     -T          print how long each call took, in microseconds
 *     -F          log one line at LOG_USER first (the control for the facility check below)
 *     -H          be a careless caller: leak an fd without close-on-exec, ignore SIGPIPE, block
 *                 SIGUSR1, and reap every child from a SIGCHLD handler; afterwards print
 *                 "sigchld handler kept" if the modules restored that handler
 *     -W          start a thread that reaps every child it can (waitpid(-1) each millisecond), as
 *                 a threaded caller with a careless reaper would
 *     -K MS       (with -H) start a child of the driver's own that exits MS ms later, while the
 *                 calls run; afterwards print "own child reaped by the handler" if the SIGCHLD
 *                 handler got to reap it
 *   ACTION: acct | open | close | auth | user=NAME (sets PAM_USER, as sudo does before its session)
 *
 * Prints, one per line and in order: "conv STYLE TEXT" for each conversation message,
 * "syslog PRIORITY TEXT" for each line a module logs at facility LOG_AUTHPRIV ("syslog
 * FAC=N PRIORITY TEXT" at any other facility N, so that every exact assertion on a log line
 * also asserts authpriv), "ACTION NAME NUMBER" for each return
 * code, "env NAME=VALUE" for the PAM environment after open, "pid N" first of all.
 */

/* this file defines syslog() itself: no fortified inline wrappers */
#undef _FORTIFY_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <security/pam_appl.h>

static volatile pid_t own_child;
static volatile sig_atomic_t own_child_reaped;

static void
reap_all(int sig)
{
	int saved = errno;
	pid_t p;

	(void)sig;
	while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
		if (p == own_child)
			own_child_reaped = 1;
	errno = saved;
}

static void *
reaper_thread(void *arg)
{
	struct timespec ms = { 0, 1000000 };

	(void)arg;
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/* A child of the caller's own, which exits `ms` ms from now. */
static void
start_own_child(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
	pid_t p = fork();

	if (p == 0) {
		nanosleep(&t, NULL);
		_exit(0);
	}
	if (p < 0)
		perror("fork");
	own_child = p;
}

static void
be_careless(void)
{
	struct sigaction sa;
	sigset_t usr1;

	if (open("/dev/zero", O_RDONLY) < 0)
		perror("/dev/zero");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap_all;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
}

static const char *
code_name(int code)
{
	static const struct {
		int code;
		const char *name;
	} names[] = {
#define N(x) { x, #x }
		N(PAM_SUCCESS), N(PAM_OPEN_ERR), N(PAM_SYMBOL_ERR), N(PAM_SERVICE_ERR), N(PAM_SYSTEM_ERR),
		N(PAM_BUF_ERR), N(PAM_PERM_DENIED), N(PAM_AUTH_ERR), N(PAM_CRED_INSUFFICIENT),
		N(PAM_AUTHINFO_UNAVAIL), N(PAM_USER_UNKNOWN), N(PAM_MAXTRIES), N(PAM_NEW_AUTHTOK_REQD),
		N(PAM_ACCT_EXPIRED), N(PAM_SESSION_ERR), N(PAM_CRED_UNAVAIL), N(PAM_CRED_EXPIRED),
		N(PAM_CRED_ERR), N(PAM_NO_MODULE_DATA), N(PAM_CONV_ERR), N(PAM_AUTHTOK_ERR),
		N(PAM_ABORT), N(PAM_MODULE_UNKNOWN), N(PAM_BAD_ITEM), N(PAM_IGNORE), N(PAM_INCOMPLETE),
#undef N
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].code == code)
			return names[i].name;
	return "PAM_UNKNOWN_CODE";
}

static const char *
priority_name(int priority)
{
	static const char *names[] = { "LOG_EMERG", "LOG_ALERT", "LOG_CRIT", "LOG_ERR",
				       "LOG_WARNING", "LOG_NOTICE", "LOG_INFO", "LOG_DEBUG" };

	return names[LOG_PRI(priority)];
}

/*
 * libpam's pam_syslog ends in syslog(3); defining it here (the driver is linked with
 * -rdynamic) sends what the modules log to stdout, where the tests can read it.
 */
void
vsyslog(int priority, const char *fmt, va_list ap)
{
	if ((priority & LOG_FACMASK) == LOG_AUTHPRIV)
		printf("syslog %s ", priority_name(priority));
	else
		printf("syslog FAC=%d %s ", LOG_FAC(priority), priority_name(priority));
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}

void
syslog(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyslog(priority, fmt, ap);
	va_end(ap);
}

void
__syslog_chk(int priority, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	vsyslog(priority, fmt, ap);
	va_end(ap);
}

void
__vsyslog_chk(int priority, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	vsyslog(priority, fmt, ap);
}

static int
conversation(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	static const char *styles[] = { "", "PAM_PROMPT_ECHO_OFF", "PAM_PROMPT_ECHO_ON", "PAM_ERROR_MSG",
					"PAM_TEXT_INFO" };
	struct pam_response *r;
	int i;

	(void)data;
	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		int style = msg[i]->msg_style;

		printf("conv %s %s\n", style >= 1 && style <= 4 ? styles[style] : "PAM_UNKNOWN_STYLE",
		       msg[i]->msg ? msg[i]->msg : "");
		/* nobody answers prompts: the modules under test never ask */
		if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup("");
	}
	fflush(stdout);
	*resp = r;
	return PAM_SUCCESS;
}

static long
micros(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
usage(void)
{
	fprintf(stderr, "usage: pam-driver [-c DIR] [-s SERVICE] [-u USER] [-r RHOST] [-t TTY] [-q] [-R RUID] "
			"[-S] [-n N] [-T] [-H] [-W] [-K MS] acct|open|close|auth...\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct pam_conv conv = { conversation, NULL };
	const char *confdir = ".", *service = "flux-pam-test", *user = "nobody", *rhost = NULL, *tty = NULL;
	pam_handle_t *pamh = NULL;
	int flags = 0, timing = 0, careless = 0, control = 0, repeat = 1, as_sudo = 0, reaper = 0, opt, i, k,
	    rc = 0, last = PAM_SUCCESS;
	pthread_t thread;
	long ruid = -1, own_child_ms = -1, t0;

	while ((opt = getopt(argc, argv, "c:s:u:r:t:qR:Sn:THWK:F")) != -1) {
		switch (opt) {
		case 'c': confdir = optarg; break;
		case 's': service = optarg; break;
		case 'u': user = optarg; break;
		case 'r': rhost = optarg; break;
		case 't': tty = optarg; break;
		case 'q': flags |= PAM_SILENT; break;
		case 'R': ruid = strtol(optarg, NULL, 10); break;
		case 'S': as_sudo = 1; break;
		case 'W': reaper = 1; break;
		case 'K': own_child_ms = strtol(optarg, NULL, 10); break;
		case 'n': repeat = atoi(optarg); break;
		case 'T': timing = 1; break;
		case 'H': careless = 1; break;
		case 'F': control = 1; break;
		default: usage();
		}
	}
	if (optind >= argc || repeat < 1 || (own_child_ms >= 0 && !careless))
		usage();
	for (i = optind; i < argc; i++)
		if (strcmp(argv[i], "acct") && strcmp(argv[i], "open") && strcmp(argv[i], "close") &&
		    strcmp(argv[i], "auth") && strncmp(argv[i], "user=", 5))
			usage();

	if (ruid >= 0 && setresuid((uid_t)ruid, 0, 0) != 0) {
		perror("setresuid");
		return 2;
	}
	if (as_sudo && setresuid(0, 0, 0) != 0) {
		perror("setresuid");
		return 2;
	}
	if (careless)
		be_careless();
	printf("pid %ld\n", (long)getpid());
	fflush(stdout);		/* before any fork: the child must not print it again */
	if (own_child_ms >= 0)
		start_own_child(own_child_ms);
	if (reaper && pthread_create(&thread, NULL, reaper_thread, NULL) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 2;
	}
	if (control)
		syslog(LOG_USER | LOG_NOTICE, "facility control");
	rc = pam_start_confdir(service, user, &conv, confdir, &pamh);
	if (rc != PAM_SUCCESS) {
		printf("start %s %d\n", code_name(rc), rc);
		return 2;
	}
	if ((rhost && pam_set_item(pamh, PAM_RHOST, rhost) != PAM_SUCCESS) ||
	    (tty && pam_set_item(pamh, PAM_TTY, tty) != PAM_SUCCESS)) {
		printf("set_item failed\n");
		return 2;
	}
	for (k = 0; k < repeat; k++) {
		for (i = optind; i < argc; i++) {
			const char *a = argv[i];

			if (strncmp(a, "user=", 5) == 0) {
				if (pam_set_item(pamh, PAM_USER, a + 5) != PAM_SUCCESS) {
					printf("set_item failed\n");
					return 2;
				}
				continue;
			}
			t0 = micros();
			if (strcmp(a, "acct") == 0)
				rc = pam_acct_mgmt(pamh, flags);
			else if (strcmp(a, "open") == 0)
				rc = pam_open_session(pamh, flags);
			else if (strcmp(a, "close") == 0)
				rc = pam_close_session(pamh, flags);
			else
				rc = pam_authenticate(pamh, flags);
			if (timing)
				printf("time %s %ld\n", a, micros() - t0);
			printf("%s %s %d\n", a, code_name(rc), rc);
			if (strcmp(a, "open") == 0 && rc == PAM_SUCCESS) {
				char **env = pam_getenvlist(pamh);

				for (char **e = env; e && *e; e++) {
					printf("env %s\n", *e);
					free(*e);
				}
				free(env);
			}
			fflush(stdout);
			last = rc;
		}
	}
	pam_end(pamh, last);
	if (careless) {
		struct sigaction now;

		if (sigaction(SIGCHLD, NULL, &now) == 0 && now.sa_handler == reap_all)
			printf("sigchld handler kept\n");
		if (own_child_reaped)
			printf("own child reaped by the handler\n");
	}
	return 0;
}
