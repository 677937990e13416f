/* PostgreSQL for tests: a database per test, the cluster's outages. */
#include "test_db.h"

#include <errno.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

extern char **environ;

#define NAME_MAX_BYTES 63 /* PostgreSQL's NAMEDATALEN - 1 */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

bool test_db_available(void)
{
	return env_nonempty("RINGSIDE_TEST_DATABASE_URL") != NULL;
}

const char *test_db_admin_url(void)
{
	return env_nonempty("RINGSIDE_TEST_DATABASE_URL");
}

bool test_pg_available(void)
{
	return env_nonempty("RINGSIDE_TEST_PG_DIR") != NULL;
}

/* "database ... does not exist, skipping" and such: not the test's news. */
static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *admin_connect(void)
{
	const char *url = test_db_admin_url();
	if (!url)
		return NULL;
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "test_db: cannot connect to %s: %s", url, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* Runs `<verb> "name"<tail>`; false (reason on stderr) if it failed. */
static bool admin_exec(PGconn *c, const char *verb, const char *name, const char *tail)
{
	char *ident = PQescapeIdentifier(c, name, strlen(name));
	if (!ident) {
		fprintf(stderr, "test_db: %s", PQerrorMessage(c));
		return false;
	}
	char sql[256];
	snprintf(sql, sizeof sql, "%s %s%s", verb, ident, tail);
	PQfreemem(ident);
	PGresult *r = PQexec(c, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "test_db: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/* A growable string; on allocation failure `s` becomes NULL for good. */
struct buf {
	char *s;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *p, size_t n)
{
	if (!b->s)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			free(b->s);
			b->s = NULL;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Percent-encodes all but unreserved characters and '/'. */
static void buf_encoded(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~/", ch)) {
			buf_add(b, s, 1);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			buf_add(b, e, 3);
		}
	}
}

/* "postgresql:///NAME?k=v&..." with every setting the admin URL gives
 * but its database (debug options aside). */
static char *url_for(const char *name)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(test_db_admin_url(), &err);
	if (!opts) {
		fprintf(stderr, "test_db: RINGSIDE_TEST_DATABASE_URL: %s\n",
			err ? err : "out of memory");
		PQfreemem(err);
		return NULL;
	}
	struct buf b = {malloc(128), 0, 128};
	if (b.s)
		b.s[0] = '\0';
	buf_str(&b, "postgresql:///");
	buf_encoded(&b, name);
	char sep = '?';
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0] || !strcmp(o->keyword, "dbname") ||
		    (o->dispchar && o->dispchar[0] == 'D'))
			continue;
		buf_add(&b, &sep, 1);
		sep = '&';
		buf_str(&b, o->keyword);
		buf_str(&b, "=");
		buf_encoded(&b, o->val);
	}
	PQconninfoFree(opts);
	if (!b.s)
		fprintf(stderr, "test_db: out of memory\n");
	return b.s;
}

char *test_db_create(const char *label)
{
	static atomic_uint counter;
	if (!test_db_available())
		return NULL;

	char suffix[32];
	int slen = snprintf(suffix, sizeof suffix, "_%ld_%u", (long)getpid(),
			    atomic_fetch_add(&counter, 1) + 1);
	char name[NAME_MAX_BYTES + 1] = "t_";
	size_t n = 2, room = NAME_MAX_BYTES - 2 - (size_t)slen;
	for (const char *p = label ? label : ""; *p && n - 2 < room; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			ch = '_';
		name[n++] = ch;
	}
	memcpy(name + n, suffix, (size_t)slen + 1);

	PGconn *c = admin_connect();
	if (!c)
		return NULL;
	/* A run that died may have left one of this name (the pid came back)
	 * in a cluster of the user's own. */
	bool ok = admin_exec(c, "DROP DATABASE IF EXISTS", name, " WITH (FORCE)") &&
		  admin_exec(c, "CREATE DATABASE", name, "");
	PQfinish(c);
	return ok ? url_for(name) : NULL;
}

void test_db_drop(const char *url)
{
	if (!url)
		return;
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &err);
	if (!opts) {
		fprintf(stderr, "test_db: drop %s: %s\n", url, err ? err : "out of memory");
		PQfreemem(err);
		return;
	}
	const char *name = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "dbname"))
			name = o->val;
	if (name && !strncmp(name, "t_", 2) && strlen(name) <= NAME_MAX_BYTES) {
		PGconn *c = admin_connect();
		if (c) {
			admin_exec(c, "DROP DATABASE IF EXISTS", name, " WITH (FORCE)");
			PQfinish(c);
		}
	} else {
		fprintf(stderr, "test_db: not dropping %s: not a test database\n", url);
	}
	PQconninfoFree(opts);
}

int test_pg(const char *action)
{
	const char *dir = env_nonempty("RINGSIDE_TEST_PG_DIR");
	if (!dir || !action) {
		fprintf(stderr, "test_db: no test cluster (RINGSIDE_TEST_PG_DIR unset)\n");
		return -1;
	}
	const char *script = env_nonempty("RINGSIDE_TEST_PG_SH");
	if (!script)
		script = "scripts/pg.sh";

	/* argv: the script, then the action's words. */
	char words[256];
	if (snprintf(words, sizeof words, "%s", action) >= (int)sizeof words)
		return -1;
	char *argv[10] = {(char *)script};
	int argc = 1;
	for (char *save = NULL, *w = strtok_r(words, " ", &save); w && argc < 9;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;

	/* The environment with RINGSIDE_PG_DIR naming the test cluster. */
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = calloc(nenv + 2, sizeof *envp);
	size_t dlen = strlen("RINGSIDE_PG_DIR=") + strlen(dir) + 1;
	char *pgdir = malloc(dlen);
	if (!envp || !pgdir) {
		free(envp);
		free(pgdir);
		return -1;
	}
	snprintf(pgdir, dlen, "RINGSIDE_PG_DIR=%s", dir);
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "RINGSIDE_PG_DIR=", 16))
			envp[k++] = environ[i];
	envp[k++] = pgdir;
	envp[k] = NULL;

	/* Nothing of the test's but stdio reaches the script, nor the
	 * postmaster it may start (which outlives it). */
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	fflush(stdout);
	fflush(stderr);
	pid_t pid;
	int rc = posix_spawn(&pid, script, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	free(pgdir);
	if (rc != 0) {
		fprintf(stderr, "test_db: cannot run %s: %s\n", script, strerror(rc));
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
