/*
 * Black-box harness: see harness.h for the contract.
 */
#define H_INSIDE_HARNESS
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

extern char **environ;

/* ---- Time ---- */

int64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int64_t h_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_parse_iso_ms(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (strlen(s) != sizeof(pat) - 1)
		return -1;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
			return -1;
	}
	struct tm tm = { 0 };

	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = atoi(s + 11);
	tm.tm_min = atoi(s + 14);
	tm.tm_sec = atoi(s + 17);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + atoi(s + 20);
}

static int remaining_ms(int64_t deadline)
{
	int64_t r = deadline - h_now_ms();

	if (r < 0)
		return 0;
	if (r > 60000)
		return 60000;
	return (int)r;
}

/* ---- Registry of started servers, for diagnostics and cleanup ----
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
static const struct server *group_server; /* started by h_group_setup */
static bool any_failure;
static char log_dir[96];
static unsigned log_seq;

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

static void dump_servers(void)
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

static const char *site_file;
static int site_line;

void h_site(const char *file, int line)
{
	site_file = file;
	site_line = line;
}

void h_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;

	any_failure = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (site_file && strcmp(site_file, file) != 0)
		fprintf(stderr, "%s:%d: (in a helper called from %s:%d) %s\n", file,
			line, site_file, site_line, msg);
	else
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	dump_servers();
	fflush(stderr);
	_fail(file, line);
	abort(); /* _fail longjmps out of the test; never here */
}

static void remove_logs(void)
{
	if (!log_dir[0] || any_failure || getenv("RINGSIDE_BB_KEEP"))
		return;
	DIR *d = opendir(log_dir);

	if (d) {
		struct dirent *e;
		char p[512];

		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", log_dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(log_dir);
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

void h_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

void h_need_fds(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("getrlimit");
		exit(1);
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		printf("SKIP: RLIMIT_NOFILE hard limit is %llu, below the %u file "
		       "descriptors this test needs (raise it: ulimit -Hn)\n",
		       (unsigned long long)rl.rlim_max, need);
		exit(77);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			perror("setrlimit");
			exit(1);
		}
	}
}

/* ---- Spawning ---- */

const char *h_bin(void)
{
	const char *b = getenv("RINGSIDE_BIN");

	return b && *b ? b : "build/ringside";
}

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

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

static void check_binary(void)
{
	if (access(h_bin(), X_OK) != 0)
		H_FAIL("server binary %s is not executable (%s); set RINGSIDE_BIN "
		       "to the absolute path of build/ringside",
		       h_bin(), strerror(errno));
}

uint16_t h_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		H_FAIL("socket: %s", strerror(errno));
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;

		close(fd);
		H_FAIL("bind port 0: %s", strerror(e));
	}
	close(fd);
	return ntohs(a.sin_port);
}

static size_t read_path(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd >= 0) {
		while (n + 1 < cap) {
			ssize_t r = read(fd, buf + n, cap - 1 - n);

			if (r <= 0)
				break;
			n += (size_t)r;
		}
		close(fd);
	}
	buf[n] = '\0';
	return n;
}

size_t server_read_stderr(const struct server *s, char *buf, size_t cap)
{
	return read_path(s->stderr_path, buf, cap);
}

/* One readiness probe: GET /health answered 200 within 1 s. */
static bool probe_health(uint16_t port)
{
	int fd = h_try_connect(port);

	if (fd < 0)
		return false;
	struct conn *c = conn_wrap(fd);
	struct http_response *r = malloc(sizeof(*r));
	char err[256];
	bool ok = false;

	static const char req[] = "GET /health HTTP/1.1\r\nHost: probe\r\n"
				  "Connection: close\r\n\r\n";

	if (r && h_send_all(fd, req, sizeof(req) - 1) == 0 &&
	    conn_read_response(c, r, false, 1000, err, sizeof(err)) == 0)
		ok = r->status == 200;
	free(r);
	conn_close(c);
	return ok;
}

void server_start_opts(struct server *s, const struct server_opts *o)
{
	const char *argv[H_MAX_ARGS + 8];
	size_t n = 0;

	check_binary();
	ensure_log_dir();
	memset(s, 0, sizeof(*s));
	s->port = o->port ? o->port : h_free_port();
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
	log_seq++;
	snprintf(s->stderr_path, sizeof(s->stderr_path), "%s/server-%u.stderr",
		 log_dir, log_seq);
	snprintf(s->stdout_path, sizeof(s->stdout_path), "%s/server-%u.stdout",
		 log_dir, log_seq);

	argv[n++] = h_bin();
	for (size_t i = 0; o->pre_args && o->pre_args[i]; i++) {
		CHECK(n < H_MAX_ARGS, "too many arguments");
		argv[n++] = o->pre_args[i];
	}
	if (!o->no_listen) {
		argv[n++] = "--listen";
		argv[n++] = s->addr;
	}
	for (size_t i = 0; o->args && o->args[i]; i++) {
		CHECK(n < H_MAX_ARGS, "too many arguments");
		argv[n++] = o->args[i];
	}
	argv[n] = NULL;

	s->pid = spawn(argv, o->env, NULL, s->stdout_path, s->stderr_path);
	registry_add(s);
	if (o->no_wait)
		return;

	int64_t deadline = h_now_ms() + 5000;

	for (int i = 0; i < 400; i++) {
		int st;

		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->exited = true;
			s->exit_code = decode_status(st);
			s->pid = 0;
			registry_reaped(s);
			H_FAIL("server %s exited with status %d during start-up",
			       s->addr, s->exit_code);
		}
		if (probe_health(s->port))
			return;
		if (h_now_ms() >= deadline)
			break;
		h_sleep_ms(20);
	}
	H_FAIL("server %s did not answer GET /health 200 within 5 s", s->addr);
}

void server_start(struct server *s, const char *const extra_args[])
{
	struct server_opts o = { .args = extra_args };

	server_start_opts(s, &o);
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
			s->exited = true;
			s->exit_code = decode_status(st);
			s->pid = 0;
			registry_reaped(s);
			return true;
		}
		if (r < 0 && errno != EINTR) {
			s->exited = true;
			s->exit_code = -1;
			s->pid = 0;
			registry_reaped(s);
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

int h_group_setup_with(void **state, const char *const args[])
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	*state = s;
	group_server = s;
	server_start(s, args);
	return 0;
}

int h_group_setup(void **state)
{
	return h_group_setup_with(state, NULL);
}

int h_group_teardown(void **state)
{
	/* A group whose tests carry their own initial_state clears *state
	 * (cmocka hands a non-NULL group state to every test instead). */
	struct server *s = *state ? *state : (struct server *)group_server;

	if (!s)
		return 0;
	int code = server_stop(s);

	group_server = NULL;
	*state = NULL;
	free(s);
	CHECK(code == 0, "server exit status after SIGTERM: expected 0, got %d",
	      code);
	return 0;
}

struct server *h_group_server(void)
{
	CHECK(group_server != NULL, "no group server");
	return (struct server *)group_server;
}

uint16_t port_of(void **state)
{
	return ((struct server *)*state)->port;
}

int h_test_teardown(void **state)
{
	(void)state;
	site_file = NULL;
	/* A test that failed half-way leaves its own server running. */
	for (size_t i = 0; i < H_MAX_SERVERS; i++) {
		if (!reg[i].owner || reg[i].owner == group_server)
			continue;
		if (reg[i].pid > 0) {
			int st;

			kill(reg[i].pid, SIGKILL);
			waitpid(reg[i].pid, &st, 0);
		}
		memset(&reg[i], 0, sizeof(reg[i]));
	}
	return 0;
}

struct run_result *run_new(void)
{
	struct run_result *r = malloc(sizeof(*r));

	CHECK(r != NULL, "out of memory");
	return r;
}

/* Spawns argv, waits up to timeout_ms (then SIGKILL, exit_code -1) and
 * fills r from the exit status and the captured output files. */
static void run_to_end(const char *const argv[], const char *const env[],
		       const char *in_path, const char *out_path,
		       const char *err_path, int timeout_ms, struct run_result *r)
{
	struct server s = { 0 };

	s.pid = spawn(argv, env, in_path, out_path, err_path);
	if (!server_wait_exit(&s, timeout_ms)) {
		kill(s.pid, SIGKILL);
		server_wait_exit(&s, 5000);
		s.exit_code = -1;
	}
	r->exit_code = s.exit_code;
	read_path(out_path, r->out, sizeof(r->out));
	read_path(err_path, r->err, sizeof(r->err));
}

void h_run(const char *const args[], const char *const env[], int timeout_ms,
	   struct run_result *r)
{
	const char *argv[H_MAX_ARGS + 2];
	size_t n = 0;
	char out_path[192], err_path[192];

	check_binary();
	ensure_log_dir();
	log_seq++;
	snprintf(out_path, sizeof(out_path), "%s/run-%u.stdout", log_dir, log_seq);
	snprintf(err_path, sizeof(err_path), "%s/run-%u.stderr", log_dir, log_seq);
	argv[n++] = h_bin();
	for (size_t i = 0; args && args[i] && n < H_MAX_ARGS; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	run_to_end(argv, env, NULL, out_path, err_path, timeout_ms, r);
}

void h_run_prog(const char *const argv[], const void *input, size_t input_len,
		int timeout_ms, struct run_result *r)
{
	char in_path[192], out_path[192], err_path[192];

	ensure_log_dir();
	CHECK(argv && argv[0], "h_run_prog: no program");
	if (access(argv[0], X_OK) != 0)
		H_FAIL("%s is not executable: %s", argv[0], strerror(errno));
	log_seq++;
	snprintf(in_path, sizeof(in_path), "%s/prog-%u.stdin", log_dir, log_seq);
	snprintf(out_path, sizeof(out_path), "%s/prog-%u.stdout", log_dir, log_seq);
	snprintf(err_path, sizeof(err_path), "%s/prog-%u.stderr", log_dir, log_seq);

	/* stdin from a file: no pipe to keep fed, no deadlock on big inputs. */
	int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		H_FAIL("create %s: %s", in_path, strerror(errno));
	const char *p = input;
	size_t left = input ? input_len : 0;

	while (left > 0) {
		ssize_t w = write(fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;

			close(fd);
			H_FAIL("write %s: %s", in_path, strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	close(fd);

	run_to_end(argv, NULL, in_path, out_path, err_path, timeout_ms, r);
	if (!any_failure && !getenv("RINGSIDE_BB_KEEP")) {
		unlink(in_path);
		unlink(out_path);
		unlink(err_path);
	}
}

void h_proc_start(struct server *s, const char *const argv[], const char *label)
{
	ensure_log_dir();
	memset(s, 0, sizeof(*s));
	CHECK(argv && argv[0], "h_proc_start: no program");
	if (access(argv[0], X_OK) != 0)
		H_FAIL("%s is not executable: %s", argv[0], strerror(errno));
	snprintf(s->addr, sizeof(s->addr), "%s", label);
	log_seq++;
	snprintf(s->stderr_path, sizeof(s->stderr_path), "%s/proc-%u.stderr",
		 log_dir, log_seq);
	snprintf(s->stdout_path, sizeof(s->stdout_path), "%s/proc-%u.stdout",
		 log_dir, log_seq);
	s->pid = spawn(argv, NULL, NULL, s->stdout_path, s->stderr_path);
	registry_add(s);
}

/* ---- Sockets ---- */

int h_try_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = 5 };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int h_connect(uint16_t port)
{
	int fd = h_try_connect(port);

	if (fd < 0)
		H_FAIL("connect 127.0.0.1:%u: %s", port, strerror(-fd));
	return fd;
}

void h_close_rst(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

int h_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	int64_t deadline = h_now_ms() + 5000;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };

				if (h_now_ms() >= deadline)
					return -ETIMEDOUT;
				poll(&pfd, 1, remaining_ms(deadline));
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int h_try_send_str(int fd, const char *s)
{
	return h_send_all(fd, s, strlen(s));
}

void h_send(int fd, const void *buf, size_t len)
{
	int r = h_send_all(fd, buf, len);

	if (r != 0)
		H_FAIL("send of %zu bytes failed: %s", len, strerror(-r));
}

void h_send_str(int fd, const char *s)
{
	h_send(fd, s, strlen(s));
}

const char *h_peer_name(enum h_peer p)
{
	switch (p) {
	case H_PEER_EOF: return "closed (EOF)";
	case H_PEER_RESET: return "reset (ECONNRESET)";
	case H_PEER_OPEN: return "still open, silent";
	case H_PEER_DATA: return "sent bytes and stayed open";
	}
	return "?";
}

enum h_peer h_wait_close(int fd, int timeout_ms, size_t *got)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	size_t total = 0;
	char scratch[4096];

	if (got)
		*got = 0;
	for (int i = 0; i < 100000; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, remaining_ms(deadline));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);

		if (n == 0) {
			if (got)
				*got = total;
			return H_PEER_EOF;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			if (got)
				*got = total;
			return H_PEER_RESET;
		}
		total += (size_t)n;
		if (got)
			*got = total;
		if (h_now_ms() >= deadline)
			break;
	}
	return total ? H_PEER_DATA : H_PEER_OPEN;
}

/* ---- Buffered connections ---- */

struct conn *conn_wrap(int fd)
{
	struct conn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		H_FAIL("out of memory");
	}
	c->fd = fd;
	c->len = 0;
	c->eof = false;
	c->err = 0;
	return c;
}

struct conn *conn_open(uint16_t port)
{
	return conn_wrap(h_connect(port));
}

void conn_close(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

void conn_close_rst(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		h_close_rst(c->fd);
	free(c);
}

void conn_send(struct conn *c, const void *buf, size_t len)
{
	h_send(c->fd, buf, len);
}

void conn_send_str(struct conn *c, const char *s)
{
	h_send(c->fd, s, strlen(s));
}

/* Reads more into c->buf. Returns bytes read, 0 on EOF, -1 on error,
 * -2 on timeout, -3 if the buffer is full. */
static int conn_fill(struct conn *c, int64_t deadline)
{
	if (c->eof)
		return 0;
	if (c->err)
		return -1;
	if (c->len >= sizeof(c->buf))
		return -3;
	for (int i = 0; i < 1000; i++) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, remaining_ms(deadline));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -2;
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
				 MSG_DONTWAIT);

		if (n > 0) {
			c->len += (size_t)n;
			return (int)n;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		c->err = errno;
		return -1;
	}
	return -2;
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Printable rendering of raw bytes for messages. */
static void render(const char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (ch == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	if (o < cap)
		out[o] = '\0';
	else if (cap)
		out[cap - 1] = '\0';
}

static void fill_err(const struct conn *c, char *err, size_t ecap,
		     const char *why)
{
	char shown[1200];

	render(c->buf, c->len < 400 ? c->len : 400, shown, sizeof(shown));
	snprintf(err, ecap, "%s; %zu bytes buffered: \"%s\"%s%s%s", why, c->len,
		 shown, c->eof ? " [peer closed]" : "",
		 c->err ? " [recv error: " : "",
		 c->err ? strerror(c->err) : "");
	if (c->err && strlen(err) + 2 < ecap)
		strcat(err, "]");
}

static char *find_crlfcrlf(char *buf, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' &&
		    buf[i + 3] == '\n')
			return buf + i;
	return NULL;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int parse_head(struct http_response *r, char *err, size_t ecap)
{
	char *line = r->head;
	char *eol = strstr(line, "\r\n");

	if (!eol) {
		snprintf(err, ecap, "no status line");
		return -1;
	}
	*eol = '\0';
	snprintf(r->raw_status_line, sizeof(r->raw_status_line), "%.255s", line);
	if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
	    line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
	    !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
	    (line[12] != ' ' && line[12] != '\0')) {
		snprintf(err, ecap, "malformed status line \"%s\"", line);
		return -1;
	}
	r->minor = line[7] - '0';
	r->status = atoi(line + 9);
	snprintf(r->reason, sizeof(r->reason), "%s", line[12] ? line + 13 : "");

	line = eol + 2;
	r->nheaders = 0;
	while (*line) {
		eol = strstr(line, "\r\n");
		if (!eol) {
			snprintf(err, ecap, "header line without CRLF");
			return -1;
		}
		*eol = '\0';
		if (*line == '\0')
			break;
		char *colon = strchr(line, ':');

		if (!colon || colon == line || line[0] == ' ' || line[0] == '\t' ||
		    colon[-1] == ' ' || colon[-1] == '\t') {
			snprintf(err, ecap, "malformed header line \"%s\"", line);
			return -1;
		}
		if (r->nheaders == H_MAX_HEADERS) {
			snprintf(err, ecap, "more than %d header fields",
				 H_MAX_HEADERS);
			return -1;
		}
		*colon = '\0';
		r->headers[r->nheaders].name = line;
		r->headers[r->nheaders].value = trim(colon + 1);
		r->nheaders++;
		line = eol + 2;
	}
	return 0;
}

int conn_read_response(struct conn *c, struct http_response *r, bool for_head,
		       int timeout_ms, char *err, size_t ecap)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char *end;

	memset(r, 0, offsetof(struct http_response, head));
	r->head[0] = '\0';
	r->head_len = 0;
	r->nheaders = 0;
	r->has_content_length = false;
	r->content_length = 0;
	r->body[0] = '\0';
	r->body_len = 0;

	for (int i = 0; i < 100000; i++) {
		end = find_crlfcrlf(c->buf, c->len);
		if (end)
			break;
		if (c->len >= sizeof(r->head) - 1) {
			fill_err(c, err, ecap, "response head larger than 16 KiB");
			return -1;
		}
		int n = conn_fill(c, deadline);

		if (n == 0) {
			fill_err(c, err, ecap,
				 "connection closed before a complete response head");
			return -1;
		}
		if (n == -1) {
			fill_err(c, err, ecap, "recv failed before a complete response head");
			return -1;
		}
		if (n == -2) {
			fill_err(c, err, ecap, "timed out waiting for a complete response head");
			return -1;
		}
		if (n == -3) {
			fill_err(c, err, ecap, "receive buffer full");
			return -1;
		}
	}
	if (!end) {
		fill_err(c, err, ecap, "no response head");
		return -1;
	}
	size_t head_len = (size_t)(end - c->buf) + 4;

	if (head_len >= sizeof(r->head)) {
		fill_err(c, err, ecap, "response head larger than 16 KiB");
		return -1;
	}
	memcpy(r->head, c->buf, head_len);
	r->head[head_len] = '\0';
	r->head_len = head_len;
	if (parse_head(r, err, ecap) != 0) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s", err);
		fill_err(c, err, ecap, tmp);
		return -1;
	}
	consume(c, head_len);

	const char *cl = resp_header(r, "Content-Length");

	if (cl) {
		char *e;

		errno = 0;
		unsigned long long v = strtoull(cl, &e, 10);

		if (!isdigit((unsigned char)cl[0]) || *e || errno) {
			snprintf(err, ecap, "bad Content-Length \"%s\" in response", cl);
			return -1;
		}
		r->has_content_length = true;
		r->content_length = v;
	}
	bool no_body = for_head || (r->status >= 100 && r->status < 200) ||
		       r->status == 204 || r->status == 304;

	if (no_body)
		return 0;
	if (resp_header(r, "Transfer-Encoding")) {
		snprintf(err, ecap, "response uses Transfer-Encoding: %s "
			 "(expected Content-Length framing)",
			 resp_header(r, "Transfer-Encoding"));
		return -1;
	}
	if (!r->has_content_length)
		return 0; /* expect_common reports the missing field */
	if (r->content_length >= sizeof(r->body)) {
		snprintf(err, ecap, "response body of %llu bytes too large for the harness",
			 (unsigned long long)r->content_length);
		return -1;
	}
	size_t want = (size_t)r->content_length;

	for (int i = 0; i < 100000 && c->len < want; i++) {
		int n = conn_fill(c, deadline);

		if (n <= 0) {
			char why[160];

			snprintf(why, sizeof(why),
				 "%s while reading a %zu-byte body (status %d)",
				 n == 0 ? "connection closed" :
				 n == -2 ? "timed out" : "recv failed",
				 want, r->status);
			fill_err(c, err, ecap, why);
			return -1;
		}
	}
	if (c->len < want) {
		fill_err(c, err, ecap, "short body");
		return -1;
	}
	memcpy(r->body, c->buf, want);
	r->body[want] = '\0';
	r->body_len = want;
	consume(c, want);
	return 0;
}

void expect_response(struct conn *c, struct http_response *r, bool for_head)
{
	char err[2048];

	if (conn_read_response(c, r, for_head, 5000, err, sizeof(err)) != 0)
		H_FAIL("reading a response: %s", err);
}

long conn_read_chunk(struct conn *c, char *out, size_t cap, int timeout_ms,
		     char *err, size_t ecap)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char *eol = NULL;
	int n;

	if (cap)
		out[0] = '\0';
	/* chunk-size [ chunk-ext ] CRLF */
	for (int i = 0; i < 100000; i++) {
		eol = c->len ? memmem(c->buf, c->len, "\r\n", 2) : NULL;
		if (eol)
			break;
		if (c->len > 1024) {
			fill_err(c, err, ecap, "chunk-size line longer than 1 KiB");
			return -1;
		}
		n = conn_fill(c, deadline);
		if (n <= 0) {
			fill_err(c, err, ecap,
				 n == 0 ? "connection closed before a chunk-size line "
					  "(no terminating 0-size chunk)" :
				 n == -2 ? "timed out waiting for a chunk-size line" :
				 "recv failed before a chunk-size line");
			return -1;
		}
	}
	if (!eol) {
		fill_err(c, err, ecap, "no chunk-size line");
		return -1;
	}
	size_t size = 0, digits = 0;
	const char *p = c->buf;

	while (p < eol && isxdigit((unsigned char)*p)) {
		int d = isdigit((unsigned char)*p) ? *p - '0' :
			(tolower((unsigned char)*p) - 'a' + 10);

		if (size > (SIZE_MAX >> 4)) {
			fill_err(c, err, ecap, "chunk size overflows");
			return -1;
		}
		size = size * 16 + (size_t)d;
		digits++;
		p++;
	}
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	if (!digits || (p < eol && *p != ';')) {
		fill_err(c, err, ecap, "malformed chunk-size line");
		return -1;
	}
	if (size > sizeof(c->buf) - 1100) {
		fill_err(c, err, ecap, "chunk larger than the harness buffer");
		return -1;
	}
	consume(c, (size_t)(eol - c->buf) + 2);

	if (size == 0) {
		/* trailer-section CRLF */
		for (int i = 0; i < 100000; i++) {
			eol = c->len ? memmem(c->buf, c->len, "\r\n", 2) : NULL;
			if (eol == c->buf) {
				consume(c, 2);
				return 0;
			}
			if (eol) {
				consume(c, (size_t)(eol - c->buf) + 2);
				continue;
			}
			if (c->len > 8192) {
				fill_err(c, err, ecap, "trailer section too long");
				return -1;
			}
			n = conn_fill(c, deadline);
			if (n <= 0) {
				fill_err(c, err, ecap,
					 "no CRLF after the terminating 0-size chunk");
				return -1;
			}
		}
		fill_err(c, err, ecap, "no end of the trailer section");
		return -1;
	}
	for (int i = 0; i < 100000 && c->len < size + 2; i++) {
		n = conn_fill(c, deadline);
		if (n <= 0) {
			char why[160];

			snprintf(why, sizeof(why), "%s inside a %zu-byte chunk",
				 n == 0 ? "connection closed" :
				 n == -2 ? "timed out" : "recv failed", size);
			fill_err(c, err, ecap, why);
			return -1;
		}
	}
	if (c->len < size + 2) {
		fill_err(c, err, ecap, "short chunk");
		return -1;
	}
	if (c->buf[size] != '\r' || c->buf[size + 1] != '\n') {
		fill_err(c, err, ecap, "chunk data not followed by CRLF");
		return -1;
	}
	if (cap) {
		size_t k = size < cap - 1 ? size : cap - 1;

		memcpy(out, c->buf, k);
		out[k] = '\0';
	}
	consume(c, size + 2);
	return (long)size;
}

size_t conn_read_until_eof(struct conn *c, char *buf, size_t cap,
			   int timeout_ms, bool *closed)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	bool done = false;

	for (int i = 0; i < 100000; i++) {
		int n = conn_fill(c, deadline);

		if (n == 0 || n == -1) {
			done = true;
			break;
		}
		if (n == -2)
			break;
		if (n == -3) {
			/* Keep the tail only. */
			consume(c, c->len / 2);
		}
	}
	size_t n = c->len < cap - 1 ? c->len : cap - 1;

	memcpy(buf, c->buf, n);
	buf[n] = '\0';
	consume(c, c->len);
	if (closed)
		*closed = done;
	return n;
}

void expect_conn_closed(struct conn *c, int timeout_ms)
{
	if (c->len) {
		char shown[600];

		render(c->buf, c->len < 200 ? c->len : 200, shown, sizeof(shown));
		H_FAIL("expected the server to close the connection, but %zu more "
		       "bytes arrived: \"%s\"", c->len, shown);
	}
	if (c->eof || c->err)
		return;
	size_t got = 0;
	enum h_peer p = h_wait_close(c->fd, timeout_ms, &got);

	if ((p == H_PEER_EOF || p == H_PEER_RESET) && got == 0) {
		c->eof = true;
		return;
	}
	H_FAIL("expected the server to close the connection within %d ms: %s "
	       "(%zu unexpected bytes)", timeout_ms, h_peer_name(p), got);
}

void expect_conn_open(struct conn *c, int wait_ms)
{
	CHECK(c->len == 0 && !c->eof && !c->err,
	      "connection not idle: %zu bytes buffered, eof %d, err %d", c->len,
	      c->eof, c->err);
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int pr = poll(&pfd, 1, wait_ms);

	if (pr > 0) {
		char b[256];
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK);

		H_FAIL("expected the connection to stay open and silent, but %s",
		       n == 0 ? "the server closed it" :
		       n < 0 ? "it was reset" : "bytes arrived");
	}
}

/* ---- Inspection ---- */

struct http_response *resp_new(void)
{
	struct http_response *r = malloc(sizeof(*r));

	CHECK(r != NULL, "out of memory");
	return r;
}

const char *resp_header(const struct http_response *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

int resp_header_count(const struct http_response *r, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			n++;
	return n;
}

bool resp_header_has_token(const struct http_response *r, const char *name,
			   const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, name) != 0)
			continue;
		const char *v = r->headers[i].value;

		while (*v) {
			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			size_t n = strcspn(v, ",");
			size_t m = n;

			while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
				m--;
			if (m == tl && strncasecmp(v, token, tl) == 0)
				return true;
			v += n;
		}
	}
	return false;
}

bool resp_connection_has(const struct http_response *r, const char *token)
{
	return resp_header_has_token(r, "Connection", token);
}

bool resp_content_type_is(const struct http_response *r, const char *type)
{
	const char *ct = resp_header(r, "Content-Type");
	size_t n = ct ? strcspn(ct, ";") : 0;

	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return ct && n == strlen(type) && strncasecmp(ct, type, n) == 0;
}

static const char *const wkdays[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int two(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* RFC 9110 section 5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
 * Returns the time, or -1 (with why) if malformed. */
static time_t parse_imf_fixdate(const char *d, const char **why)
{
	*why = NULL;
	if (strlen(d) != 29) {
		*why = "length is not 29";
		return -1;
	}
	int wd = -1, mon = -1;

	for (int i = 0; i < 7; i++)
		if (strncmp(d, wkdays[i], 3) == 0)
			wd = i;
	for (int i = 0; i < 12; i++)
		if (strncmp(d + 8, months[i], 3) == 0)
			mon = i;
	int day = two(d + 5), y1 = two(d + 12), y2 = two(d + 14);
	int hh = two(d + 17), mm = two(d + 20), ss = two(d + 23);

	if (wd < 0 || d[3] != ',' || d[4] != ' ' || day < 1 || d[7] != ' ' ||
	    mon < 0 || d[11] != ' ' || y1 < 0 || y2 < 0 || d[16] != ' ' ||
	    hh < 0 || hh > 23 || d[19] != ':' || mm < 0 || mm > 59 ||
	    d[22] != ':' || ss < 0 || ss > 60 || strcmp(d + 25, " GMT") != 0) {
		*why = "not IMF-fixdate";
		return -1;
	}
	struct tm tm = { .tm_year = y1 * 100 + y2 - 1900, .tm_mon = mon,
			 .tm_mday = day, .tm_hour = hh, .tm_min = mm,
			 .tm_sec = ss };
	time_t t = timegm(&tm);

	if (tm.tm_mday != day || tm.tm_mon != mon) {
		*why = "no such day";
		return -1;
	}
	if (tm.tm_wday != wd) {
		*why = "wrong day of the week";
		return -1;
	}
	return t;
}

void expect_common(const struct http_response *r, bool for_head)
{
	CHECK(r->minor == 1, "status line \"%s\": expected HTTP/1.1",
	      r->raw_status_line);
	CHECK(r->reason[0] != '\0', "status line \"%s\": empty reason phrase",
	      r->raw_status_line);

	CHECK(resp_header_count(r, "Date") == 1,
	      "expected exactly one Date field, got %d (status %d)",
	      resp_header_count(r, "Date"), r->status);
	const char *date = resp_header(r, "Date"), *why;
	time_t t = parse_imf_fixdate(date, &why);

	CHECK(t != (time_t)-1, "Date \"%s\" is not an IMF-fixdate: %s", date, why);
	time_t now = time(NULL);

	CHECK(t >= now - 60 && t <= now + 60,
	      "Date \"%s\" is %lld s away from the current time", date,
	      (long long)(t - now));

	CHECK(resp_header_count(r, "Content-Length") == 1,
	      "expected exactly one Content-Length field, got %d (status %d)",
	      resp_header_count(r, "Content-Length"), r->status);
	if (!for_head && !(r->status >= 100 && r->status < 200))
		CHECK(r->content_length == r->body_len,
		      "Content-Length %llu but %zu body bytes",
		      (unsigned long long)r->content_length, r->body_len);

	CHECK(resp_header_count(r, "X-Request-Id") == 1,
	      "expected exactly one X-Request-Id field, got %d (status %d)",
	      resp_header_count(r, "X-Request-Id"), r->status);
	const char *id = resp_header(r, "X-Request-Id");

	CHECK(strncmp(id, "req_", 4) == 0 && strlen(id) > 4,
	      "X-Request-Id \"%s\" does not start with \"req_\" followed by an id",
	      id);
}

void expect_status(const struct http_response *r, int status, bool for_head)
{
	CHECK(r->status == status, "expected status %d, got \"%s\" with body: %.400s",
	      status, r->raw_status_line, r->body);
	expect_common(r, for_head);
}

void expect_header(const struct http_response *r, const char *name,
		   const char *value, bool ci)
{
	const char *v = resp_header(r, name);

	CHECK(v != NULL, "expected header %s: %s, it is missing (status %d)",
	      name, value, r->status);
	CHECK(ci ? strcasecmp(v, value) == 0 : strcmp(v, value) == 0,
	      "expected header %s: %s, got %s: %s", name, value, name, v);
}

void expect_no_header(const struct http_response *r, const char *name)
{
	const char *v = resp_header(r, name);

	CHECK(v == NULL, "unexpected header %s: %s (status %d)", name, v,
	      r->status);
}

bool json_get_string(const char *body, const char *key, char *out, size_t cap)
{
	char pat[128];
	size_t kl = strlen(key);

	if (kl + 3 > sizeof(pat) || cap == 0)
		return false;
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	for (const char *p = strstr(body, pat); p; p = strstr(p + 1, pat)) {
		const char *q = p + kl + 2;

		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		if (*q != ':')
			continue; /* it was a value, not a key */
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		if (*q != '"')
			return false;
		q++;
		size_t o = 0;

		while (*q && *q != '"') {
			char ch = *q++;

			if (ch == '\\') {
				ch = *q++;
				switch (ch) {
				case 'n': ch = '\n'; break;
				case 't': ch = '\t'; break;
				case 'r': ch = '\r'; break;
				case 'b': ch = '\b'; break;
				case 'f': ch = '\f'; break;
				case '\0': return false;
				case 'u': {
					/* A BMP code point, as UTF-8 (no surrogate pairs:
					 * the tests' strings do not need them). */
					unsigned cp = 0;
					for (int i = 0; i < 4; i++) {
						int d = q[i] >= '0' && q[i] <= '9' ? q[i] - '0'
							: (q[i] | 0x20) >= 'a' && (q[i] | 0x20) <= 'f'
								? (q[i] | 0x20) - 'a' + 10 : -1;
						if (d < 0)
							return false;
						cp = cp << 4 | (unsigned)d;
					}
					q += 4;
					if (cp >= 0x80) {
						char u[3];
						size_t un = cp < 0x800 ? 2 : 3;
						if (un == 2) {
							u[0] = (char)(0xc0 | cp >> 6);
							u[1] = (char)(0x80 | (cp & 0x3f));
						} else {
							u[0] = (char)(0xe0 | cp >> 12);
							u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
							u[2] = (char)(0x80 | (cp & 0x3f));
						}
						for (size_t i = 0; i + 1 < un; i++)
							if (o + 1 < cap)
								out[o++] = u[i];
						ch = u[un - 1];
					} else {
						ch = (char)cp;
					}
					break;
				}
				default: break; /* \" \\ \/ */
				}
			}
			if (o + 1 < cap)
				out[o++] = ch;
		}
		if (*q != '"')
			return false;
		out[o] = '\0';
		return true;
	}
	return false;
}

void expect_error(const struct http_response *r, int status, const char *code)
{
	expect_status(r, status, false);
	const char *ct = resp_header(r, "Content-Type");

	CHECK(resp_content_type_is(r, "application/json"),
	      "error %d: expected Content-Type application/json, got %s", status,
	      ct ? ct : "(none)");

	const char *b = r->body;

	while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
		b++;
	size_t n = strlen(b);

	while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\r'))
		n--;
	CHECK(*b == '{' && n && b[n - 1] == '}',
	      "error %d: body is not a JSON object: %.400s", status, r->body);

	char got[256];

	CHECK(json_get_string(r->body, "code", got, sizeof(got)),
	      "error %d: no string \"code\" in body %.400s", status, r->body);
	CHECK(strcmp(got, code) == 0, "error %d: expected code \"%s\", got \"%s\"",
	      status, code, got);
	CHECK(json_get_string(r->body, "message", got, sizeof(got)) && got[0],
	      "error %d: no non-empty string \"message\" in body %.400s", status,
	      r->body);
	CHECK(json_get_string(r->body, "requestId", got, sizeof(got)),
	      "error %d: no string \"requestId\" in body %.400s", status, r->body);
	const char *id = resp_header(r, "X-Request-Id");

	CHECK(id && strcmp(got, id) == 0,
	      "error %d: requestId \"%s\" differs from X-Request-Id \"%s\"",
	      status, got, id ? id : "(none)");
}

void expect_rejected_and_closed(struct conn *c, int status, const char *code)
{
	struct http_response *r = resp_new();

	expect_response(c, r, false);
	expect_error(r, status, code);
	CHECK(resp_connection_has(r, "close"),
	      "%d: expected Connection: close, got %s", status,
	      resp_header(r, "Connection") ? resp_header(r, "Connection") : "(none)");
	expect_conn_closed(c, 2000);
	free(r);
}

void expect_health_ok(const struct http_response *r)
{
	expect_status(r, 200, false);
	const char *ct = resp_header(r, "Content-Type");

	CHECK(resp_content_type_is(r, "application/json"),
	      "GET /health: expected Content-Type application/json, got %s",
	      ct ? ct : "(none)");
	CHECK(strcmp(r->body, "{\"status\":\"ok\"}") == 0 && r->body_len == 15,
	      "GET /health: expected body {\"status\":\"ok\"}, got \"%s\"", r->body);
}

void expect_health_on_port(uint16_t port)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

void h_exchange(uint16_t port, const char *req, bool for_head,
		struct http_response *r)
{
	struct conn *c = conn_open(port);
	char err[2048];

	conn_send_str(c, req);
	if (conn_read_response(c, r, for_head, 5000, err, sizeof(err)) != 0) {
		conn_close(c);
		H_FAIL("request \"%.*s\" on port %u: %s",
		       (int)strcspn(req, "\r\n"), req, port, err);
	}
	conn_close(c);
}

/* ---- JSON ---- */

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* JSON number grammar (RFC 8259 section 6); returns the end or NULL. */
static const char *json_number_end(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end || !isdigit((unsigned char)*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && isdigit((unsigned char)*p))
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !isdigit((unsigned char)*p))
			return NULL;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !isdigit((unsigned char)*p))
			return NULL;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

bool json_get_number(const char *body, const char *key, double *out,
		     char *raw, size_t rawcap)
{
	char pat[128];
	size_t kl = strlen(key);

	if (kl + 3 > sizeof(pat))
		return false;
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *end = body + strlen(body);

	for (const char *p = strstr(body, pat); p; p = strstr(p + 1, pat)) {
		const char *q = json_ws(p + kl + 2, end);

		if (*q != ':')
			continue;
		q = json_ws(q + 1, end);
		const char *e = json_number_end(q, end);

		if (!e)
			return false;
		if (raw && rawcap) {
			size_t n = (size_t)(e - q) < rawcap - 1 ? (size_t)(e - q) : rawcap - 1;

			memcpy(raw, q, n);
			raw[n] = '\0';
		}
		*out = strtod(q, NULL);
		return true;
	}
	return false;
}

struct json_cur {
	const char *p, *end, *why;
};

static bool json_value(struct json_cur *j, int depth);

static bool json_string(struct json_cur *j)
{
	if (j->p >= j->end || *j->p != '"') {
		j->why = "expected a string";
		return false;
	}
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char ch = (unsigned char)*j->p;

		if (ch < 0x20) {
			j->why = "control character in a string";
			return false;
		}
		if (ch == '\\') {
			j->p++;
			if (j->p >= j->end) {
				j->why = "unterminated escape";
				return false;
			}
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end ||
					    !isxdigit((unsigned char)j->p[i])) {
						j->why = "bad \\u escape";
						return false;
					}
				j->p += 4;
			} else if (!strchr("\"\\/bfnrt", *j->p)) {
				j->why = "bad escape in a string";
				return false;
			}
		}
		j->p++;
	}
	if (j->p >= j->end) {
		j->why = "unterminated string";
		return false;
	}
	j->p++;
	return true;
}

static bool json_value(struct json_cur *j, int depth)
{
	if (depth > 64) {
		j->why = "nested too deeply";
		return false;
	}
	j->p = json_ws(j->p, j->end);
	if (j->p >= j->end) {
		j->why = "expected a value, got the end";
		return false;
	}
	char ch = *j->p;

	if (ch == '{' || ch == '[') {
		char close = ch == '{' ? '}' : ']';

		j->p = json_ws(j->p + 1, j->end);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (int i = 0; i < 1000000; i++) {
			if (ch == '{') {
				j->p = json_ws(j->p, j->end);
				if (!json_string(j))
					return false;
				j->p = json_ws(j->p, j->end);
				if (j->p >= j->end || *j->p != ':') {
					j->why = "expected ':' after a member name";
					return false;
				}
				j->p++;
			}
			if (!json_value(j, depth + 1))
				return false;
			j->p = json_ws(j->p, j->end);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return true;
			}
			j->why = ch == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
			return false;
		}
		j->why = "too many members";
		return false;
	}
	if (ch == '"')
		return json_string(j);
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(lits[i]);

		if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) == 0) {
			j->p += l;
			return true;
		}
	}
	const char *e = json_number_end(j->p, j->end);

	if (!e) {
		j->why = "not a JSON value";
		return false;
	}
	j->p = e;
	return true;
}

bool json_valid(const char *s, size_t n, char *why, size_t wcap)
{
	struct json_cur j = { .p = s, .end = s + n, .why = NULL };
	bool ok = json_value(&j, 0);

	if (ok) {
		j.p = json_ws(j.p, j.end);
		if (j.p != j.end) {
			ok = false;
			j.why = "bytes after the value";
		}
	}
	if (!ok && why && wcap)
		snprintf(why, wcap, "%s at offset %zu", j.why ? j.why : "invalid",
			 (size_t)(j.p - s));
	return ok;
}

/* ---- Prometheus exposition ---- */

const char *expo_find(const char *body, const char *series, double *value)
{
	size_t sl = strlen(series);

	for (const char *line = body; line && *line;) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, series, sl) == 0 && line[sl] == ' ') {
			if (value) {
				char *e;

				*value = strtod(line + sl + 1, &e);
				if (e == line + sl + 1)
					*value = NAN;
			}
			return line;
		}
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

size_t expo_lines(const char *body, const char *needle, char *out, size_t cap)
{
	size_t o = 0, count = 0;

	if (cap)
		out[0] = '\0';
	for (const char *line = body; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);

		if (memmem(line, ll, needle, strlen(needle))) {
			count++;
			if (cap && o + ll + 5 < cap) {
				memcpy(out + o, "\n  ", 3);
				memcpy(out + o + 3, line, ll);
				o += ll + 3;
				out[o] = '\0';
			} else if (cap && o + 8 < cap && !strstr(out, "\n  ...")) {
				memcpy(out + o, "\n  ...", 7);
				o += 6;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (cap && count == 0)
		snprintf(out, cap, " (no line contains \"%s\")", needle);
	return count;
}

int expo_count_prefix(const char *body, const char *prefix)
{
	size_t pl = strlen(prefix);
	int n = 0;

	for (const char *line = body; line && *line;) {
		if (strncmp(line, prefix, pl) == 0)
			n++;
		const char *nl = strchr(line, '\n');

		line = nl ? nl + 1 : NULL;
	}
	return n;
}

/* ---- Misc ---- */

char *h_strf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);

	va_end(ap);
	CHECK(n >= 0, "vsnprintf");
	char *s = malloc((size_t)n + 1);

	CHECK(s != NULL, "out of memory");
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

int h_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
		CMFixtureFunction setup, CMFixtureFunction teardown)
{
	const char *filter = getenv("RINGSIDE_BB_FILTER");

	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}

char *h_read_sample(const char *name, size_t *len)
{
	const char *dir = getenv("RINGSIDE_SAMPLES");
	char *path = h_strf("%s/%s", dir && *dir ? dir : "samples", name);
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL, "cannot open %s (run from the repository root, or set RINGSIDE_SAMPLES)",
	      path);
	char *buf = malloc(1 << 20);
	CHECK(buf != NULL, "out of memory");
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	free(path);
	return buf;
}

/* RFC 4648 section 5 without padding (RFC 7515 section 2); the unused low
 * bits of the last character are zero, as the server's strict decoder
 * requires. out needs 4 * ceil(n / 3) + 1 bytes. */
static size_t b64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i = 0, o = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

char *h_mint_token(const char *secret_path, const char *sub, const char *org,
		   const char *scope)
{
	static char loaded[256];
	static unsigned char key[4096];
	static size_t key_len;
	static unsigned serial;

	if (strcmp(loaded, secret_path) != 0) {
		FILE *f = fopen(secret_path, "rb");
		CHECK(f != NULL, "cannot open %s (run from the repository root)", secret_path);
		key_len = fread(key, 1, sizeof key, f);
		fclose(f);
		/* As jwt_keys.c load_secret: one trailing "\n", then one "\r". */
		if (key_len && key[key_len - 1] == '\n')
			key_len--;
		if (key_len && key[key_len - 1] == '\r')
			key_len--;
		CHECK(key_len >= 32, "%s: %zu key bytes", secret_path, key_len);
		snprintf(loaded, sizeof loaded, "%s", secret_path);
	}
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	long long iat = (long long)(h_wall_ms() / 1000);
	char payload[1024], input[2048], sig_b64[64];
	unsigned char sig[EVP_MAX_MD_SIZE];
	unsigned int sig_len = 0;
	int n = snprintf(payload, sizeof payload,
			 "{\"iss\":\"ringside\",\"aud\":\"ringside\",\"sub\":\"%s\","
			 "\"organization_id\":\"%s\",\"scope\":\"%s\","
			 "\"jti\":\"bb-%ld-%u\",\"iat\":%lld,\"exp\":%lld}",
			 sub, org, scope, (long)getpid(), ++serial, iat, iat + 3600);
	CHECK(n > 0 && (size_t)n < sizeof payload, "token payload of %s", sub);
	size_t len = b64url((const unsigned char *)header, sizeof header - 1, input);
	input[len++] = '.';
	CHECK(4 * (((size_t)n + 2) / 3) + 1 < sizeof input - len, "token of %s", sub);
	len += b64url((const unsigned char *)payload, (size_t)n, input + len);
	CHECK(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input, len, sig,
		   &sig_len) != NULL && sig_len == 32,
	      "HMAC-SHA256 failed");
	b64url(sig, sig_len, sig_b64);
	return h_strf("%s.%s", input, sig_b64);
}

static void *prober_main(void *arg)
{
	struct h_prober *p = arg;
	int fd = h_try_connect(p->port);
	if (fd < 0) {
		snprintf(p->failure, sizeof p->failure, "connect: %d", fd);
		return NULL;
	}
	char buf[4096];
	static const char req[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
	for (int i = 0; i < 1000000 && !atomic_load(&p->stop); i++) {
		int64_t t0 = h_now_ms();
		size_t got = 0;
		if (h_send_all(fd, req, sizeof req - 1) < 0) {
			snprintf(p->failure, sizeof p->failure, "send failed");
			break;
		}
		/* The answer is one small read; wait for its end. */
		while (!memmem(buf, got, "{\"status\":\"ok\"}", 15)) {
			ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
			if (n <= 0) {
				snprintf(p->failure, sizeof p->failure, "recv: %zd", n);
				close(fd);
				return NULL;
			}
			got += (size_t)n;
		}
		int64_t took = h_now_ms() - t0;
		if (took > p->worst_ms)
			p->worst_ms = took;
		p->count++;
		h_sleep_ms(p->every_ms);
	}
	close(fd);
	return NULL;
}

void h_prober_start(struct h_prober *p, uint16_t port, int every_ms)
{
	memset(p, 0, sizeof *p);
	p->port = port;
	p->every_ms = every_ms;
	CHECK(pthread_create(&p->thread, NULL, prober_main, p) == 0, "prober thread");
}

void h_prober_stop(struct h_prober *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	CHECK(!p->failure[0], "the /health prober failed: %s", p->failure);
}
