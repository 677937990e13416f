/*
 * Child processes: spawning with captured output, the registry that
 * diagnostics and cleanup read, the log directory, waiting and stopping,
 * running a program to its end. See proc.h.
 */
#include "proc.h"
#include "check.h"
#include "clock.h"
#include "files.h"
#include "harness_int.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- Registry of started processes, for diagnostics and cleanup ----
 *
 * Entries are copies: a test that fails half-way longjmps out of the frame
 * that may hold its struct server, so the owner pointer is only compared,
 * never dereferenced, after the fact. */

#define H_MAX_SERVERS 32

struct reg_entry {
	const struct server *owner; /* identity only; NULL = free */
	pid_t pid;                  /* 0 once reaped */
	char addr[32];
	char stderr_path[192];
};

static struct reg_entry reg[H_MAX_SERVERS];

static void registry_add(const struct server *s)
{
	for (size_t i = 0; i < H_MAX_SERVERS; i++) {
		if (!reg[i].owner) {
			reg[i].owner = s;
			reg[i].pid = s->pid;
			memcpy(reg[i].addr, s->addr, sizeof(reg[i].addr));
			memcpy(reg[i].stderr_path, s->stderr_path,
			       sizeof(reg[i].stderr_path));
			return;
		}
	}
}

static void registry_reaped(const struct server *s)
{
	for (size_t i = 0; i < H_MAX_SERVERS; i++)
		if (reg[i].owner == s)
			reg[i].pid = 0;
}

static void registry_del(const struct server *s)
{
	for (size_t i = 0; i < H_MAX_SERVERS; i++)
		if (reg[i].owner == s)
			memset(&reg[i], 0, sizeof(reg[i]));
}

static void print_tail(const char *path, const char *what)
{
	char buf[6144];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);

	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	fprintf(stderr, "---- %s (%s)%s ----\n%s%s---- end ----\n", what, path,
		from ? ", last bytes" : "", buf,
		n && buf[n - 1] != '\n' ? "\n" : "");
}

void h_logs_dump(void)
{
	for (size_t i = 0; i < H_MAX_SERVERS; i++) {
		if (!reg[i].owner)
			continue;
		char what[96];

		snprintf(what, sizeof(what), "server %s %s stderr", reg[i].addr,
			 reg[i].pid ? "(running)" : "(exited)");
		print_tail(reg[i].stderr_path, what);
	}
}

void h_proc_reap_strays(const struct server *keep)
{
	for (size_t i = 0; i < H_MAX_SERVERS; i++) {
		if (!reg[i].owner || reg[i].owner == keep)
			continue;
		if (reg[i].pid > 0) {
			int st;

			kill(reg[i].pid, SIGKILL);
			waitpid(reg[i].pid, &st, 0);
		}
		memset(&reg[i], 0, sizeof(reg[i]));
	}
}

/* ---- Log files ---- */

static char log_dir[96];
static unsigned log_seq;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* The logs and whatever the servers kept beside them (their count
 * journals): the whole tree. */
static void remove_logs(void)
{
	if (!log_dir[0] || h_failed() || getenv("RINGSIDE_BB_KEEP"))
		return;
	nftw(log_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void ensure_log_dir(void)
{
	if (log_dir[0])
		return;
	const char *tmp = getenv("TMPDIR");

	snprintf(log_dir, sizeof(log_dir), "%s/ringside-bb-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(log_dir)) {
		int e = errno;

		log_dir[0] = '\0';
		H_FAIL("mkdtemp: %s", strerror(e));
	}
	atexit(remove_logs);
}

const char *h_log_dir(void)
{
	ensure_log_dir();
	return log_dir;
}

const char *h_scratch_dir(const char *name)
{
	static char dirs[8][192];
	static unsigned used;

	CHECK(used < sizeof dirs / sizeof dirs[0], "more than 8 scratch directories");
	char *d = dirs[used++];

	snprintf(d, sizeof dirs[0], "%s/%.64s", h_log_dir(), name);
	CHECK(mkdir(d, 0755) == 0, "mkdir %s: %s", d, strerror(errno));
	return d;
}

void h_logs_next(struct h_logs *l, const char *kind)
{
	ensure_log_dir();
	log_seq++;
	snprintf(l->in, sizeof(l->in), "%s/%.32s-%u.stdin", log_dir, kind, log_seq);
	snprintf(l->out, sizeof(l->out), "%s/%.32s-%u.stdout", log_dir, kind, log_seq);
	snprintf(l->err, sizeof(l->err), "%s/%.32s-%u.stderr", log_dir, kind, log_seq);
}

/* ---- Spawning ---- */

static void child_exec(const char *const argv[], const char *const env[],
		       const char *in_path, const char *out_path,
		       const char *err_path, pid_t parent)
{
	/* Die with the test process: a harness killed by its timeout must not
	 * leave servers behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);

	int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (in < 0 || out < 0 || err < 0)
		_exit(125);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (close_range(3, ~0u, 0) != 0) {
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	}

	/* SIG_IGN and the mask survive exec: give the server a clean slate. */
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);

	/* Deterministic configuration: only the variables the test sets. */
	for (int round = 0; round < 64; round++) {
		bool removed = false;

		for (char **e = environ; e && *e; e++) {
			if (strncmp(*e, "RINGSIDE_", 9) == 0) {
				char name[256];
				size_t n = strcspn(*e, "=");

				if (n >= sizeof(name))
					n = sizeof(name) - 1;
				memcpy(name, *e, n);
				name[n] = '\0';
				unsetenv(name);
				removed = true;
				break;
			}
		}
		if (!removed)
			break;
	}
	/* Each server counts into the run's own directory, not the working
	 * directory's var/journal (a flag of the test's still wins). */
	if (log_dir[0]) {
		char journal[160];
		snprintf(journal, sizeof journal, "%s/journal", log_dir);
		setenv("RINGSIDE_ANALYTICS_JOURNAL", journal, 1);
	}
	for (size_t i = 0; env && env[i]; i++)
		putenv(strdup(env[i]));

	execv(argv[0], (char *const *)argv);
	dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t spawn(const char *const argv[], const char *const env[],
		   const char *in_path, const char *out_path, const char *err_path)
{
	pid_t parent = getpid();

	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();

	if (pid < 0)
		H_FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		child_exec(argv, env, in_path, out_path, err_path, parent);
	return pid;
}

void h_proc_spawn(struct server *s, const char *const argv[],
		  const char *const env[], const char *kind)
{
	struct h_logs l;

	h_logs_next(&l, kind);
	memcpy(s->stdout_path, l.out, sizeof(s->stdout_path));
	memcpy(s->stderr_path, l.err, sizeof(s->stderr_path));
	s->pid = spawn(argv, env, NULL, s->stdout_path, s->stderr_path);
	registry_add(s);
}

/* ---- Waiting and stopping ---- */

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

static void reaped(struct server *s, int exit_code)
{
	s->exited = true;
	s->exit_code = exit_code;
	s->pid = 0;
	registry_reaped(s);
}

void server_signal(const struct server *s, int sig)
{
	if (s->pid > 0)
		kill(s->pid, sig);
}

bool server_wait_exit(struct server *s, int timeout_ms)
{
	if (s->exited)
		return true;
	int64_t deadline = h_now_ms() + timeout_ms;

	for (;;) {
		int st;
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid) {
			reaped(s, decode_status(st));
			return true;
		}
		if (r < 0 && errno != EINTR) {
			reaped(s, -1);
			return true;
		}
		if (h_now_ms() >= deadline)
			return false;
		h_sleep_ms(5);
	}
}

int server_stop(struct server *s)
{
	if (!s->exited) {
		server_signal(s, SIGTERM);
		if (!server_wait_exit(s, 10000)) {
			server_kill(s);
			H_FAIL("server %s did not exit within 10 s of SIGTERM",
			       s->addr);
		}
	}
	if (s->exit_code != 0) {
		char what[96];

		snprintf(what, sizeof(what), "server %s stderr (exit %d)",
			 s->addr, s->exit_code);
		print_tail(s->stderr_path, what);
	}
	registry_del(s);
	return s->exit_code;
}

void server_kill(struct server *s)
{
	if (!s->exited && s->pid > 0) {
		kill(s->pid, SIGKILL);
		server_wait_exit(s, 5000);
	}
	registry_del(s);
}

size_t server_read_stderr(const struct server *s, char *buf, size_t cap)
{
	ssize_t n = h_read_file(s->stderr_path, buf, cap);

	return n < 0 ? 0 : (size_t)n;
}

/* ---- Running to the end ---- */

struct run_result *run_new(void)
{
	struct run_result *r = malloc(sizeof(*r));

	CHECK(r != NULL, "out of memory");
	return r;
}

void h_run_to_end(const char *const argv[], const char *const env[],
		  const struct h_logs *l, bool with_stdin, int timeout_ms,
		  struct run_result *r)
{
	struct server s = { 0 };

	s.pid = spawn(argv, env, with_stdin ? l->in : NULL, l->out, l->err);
	if (!server_wait_exit(&s, timeout_ms)) {
		kill(s.pid, SIGKILL);
		server_wait_exit(&s, 5000);
		s.exit_code = -1;
	}
	r->exit_code = s.exit_code;
	h_read_file(l->out, r->out, sizeof(r->out));
	h_read_file(l->err, r->err, sizeof(r->err));
}

/* Fails the test unless argv names an executable program. */
static void need_program(const char *const argv[], const char *who)
{
	CHECK(argv && argv[0], "%s: no program", who);
	if (access(argv[0], X_OK) != 0)
		H_FAIL("%s is not executable: %s", argv[0], strerror(errno));
}

void h_run_prog(const char *const argv[], const void *input, size_t input_len,
		int timeout_ms, struct run_result *r)
{
	struct h_logs l;

	need_program(argv, "h_run_prog");
	h_logs_next(&l, "prog");

	/* stdin from a file: no pipe to keep fed, no deadlock on big inputs. */
	int fd = open(l.in, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		H_FAIL("create %s: %s", l.in, strerror(errno));
	const char *p = input;
	size_t left = input ? input_len : 0;

	while (left > 0) {
		ssize_t w = write(fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;

			close(fd);
			H_FAIL("write %s: %s", l.in, strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	close(fd);

	h_run_to_end(argv, NULL, &l, true, timeout_ms, r);
	if (!h_failed() && !getenv("RINGSIDE_BB_KEEP")) {
		unlink(l.in);
		unlink(l.out);
		unlink(l.err);
	}
}

void h_proc_start(struct server *s, const char *const argv[], const char *label)
{
	need_program(argv, "h_proc_start");
	memset(s, 0, sizeof(*s));
	snprintf(s->addr, sizeof(s->addr), "%s", label);
	h_proc_spawn(s, argv, NULL, "proc");
}
