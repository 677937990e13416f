/*
 * The fleet store saved to a file and loaded from it; the contract and the
 * file format are include/ringside/fleet_persist.h.
 */
#include "ringside/fleet_persist.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ringside/fleet_store.h"

static const unsigned char magic[8] = {'R', 'S', 'F', 'L', 'E', 'E', 'T', '\n'};

#define RECORD_HEAD 16u

_Static_assert(FLEET_PERSIST_BUF >= 2 * FLEET_PERSIST_RECORD_MAX,
	       "a buffer holds a record, and a partial one before it");

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> 8 * i);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> 8 * i);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t crc(const unsigned char *p, size_t n)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* Formats the message into err and returns rc. */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errcap, int rc,
						      const char *fmt, ...)
{
	va_list ap;

	if (errcap) {
		va_start(ap, fmt);
		vsnprintf(err, errcap, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- saving -------------------------------------------------------- */

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One record at p (FLEET_PERSIST_RECORD_MAX bytes of room); its length. */
static size_t encode(unsigned char *p, const struct fleet_snapshot *sn)
{
	size_t n = RECORD_HEAD;

	put32(p, sn->len);
	p[4] = sn->org_len;
	p[5] = sn->agent_len;
	p[6] = p[7] = 0;
	put64(p + 8, (uint64_t)sn->received_ms);
	memcpy(p + n, sn->org, sn->org_len);
	n += sn->org_len;
	memcpy(p + n, sn->agent, sn->agent_len);
	n += sn->agent_len;
	memcpy(p + n, sn->data, sn->len);
	n += sn->len;
	put32(p + n, crc(p, n));
	return n + 4;
}

/* fsync of the directory holding path: makes the rename durable. */
static int sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Some file systems cannot sync a directory: nothing more to do. */
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

int fleet_save(struct fleet_store *s, uint32_t reader, const char *path, uint64_t *agents,
	       char *err, size_t errcap)
{
	char tmp[PATH_MAX];
	unsigned char *buf, hdr[FLEET_PERSIST_HEADER] = {0};
	size_t used = FLEET_PERSIST_HEADER; /* the header is written last, in place */
	uint64_t count = 0;
	const char *step;
	int fd, rc;

	if (agents)
		*agents = 0;
	if (errcap)
		err[0] = '\0';
	if (reader >= s->nworkers)
		return fail(err, errcap, -EINVAL, "fleet save: no worker record %" PRIu32, reader);
	/* Offline however it ends: a record left online and unused would
	 * hold back every worker's reclamation. */
	fleet_offline(s, reader);
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return fail(err, errcap, -ENAMETOOLONG, "%s: path too long", path);
	buf = malloc(FLEET_PERSIST_BUF);
	if (!buf)
		return fail(err, errcap, -ENOMEM, "%s: no memory for the save buffer", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return fail(err, errcap, rc, "%s: cannot create: %s", tmp, strerror(-rc));
	}
	memset(buf, 0, FLEET_PERSIST_HEADER);

	/* Online only while copying snapshots into the buffer: a write may
	 * block, and a record that blocks online holds back all reuse. */
	fleet_online(s, reader);
	for (uint32_t i = 0; i < fleet_agent_slots(s); i++) {
		if (FLEET_PERSIST_BUF - used < FLEET_PERSIST_RECORD_MAX) {
			fleet_offline(s, reader);
			rc = write_all(fd, buf, used);
			if (rc) {
				step = "write";
				goto failed;
			}
			used = 0;
			fleet_online(s, reader);
		}
		const struct fleet_snapshot *sn = fleet_snapshot_at(s, reader, i);
		if (sn) {
			used += encode(buf + used, sn);
			count++;
		}
	}
	fleet_offline(s, reader);
	step = "write";
	rc = write_all(fd, buf, used);
	if (rc)
		goto failed;

	memcpy(hdr, magic, sizeof magic);
	put32(hdr + 8, FLEET_PERSIST_VERSION);
	put64(hdr + 16, count);
	put32(hdr + 24, crc(hdr, 24));
	ssize_t w = pwrite(fd, hdr, sizeof hdr, 0);
	if (w != (ssize_t)sizeof hdr) {
		rc = w < 0 ? -errno : -EIO; /* 32 bytes at offset 0 are never short */
		goto failed;
	}
	step = "fsync";
	if (fsync(fd) < 0) {
		rc = -errno;
		goto failed;
	}
	step = "close";
	if (close(fd) < 0) {
		rc = -errno;
		fd = -1;
		goto failed;
	}
	fd = -1;
	step = "rename";
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto failed;
	}
	free(buf);
	if (agents)
		*agents = count;
	rc = sync_dir(path);
	if (rc)
		return fail(err, errcap, rc, "%s: saved, but syncing its directory failed: %s",
			    path, strerror(-rc));
	return 0;

failed:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(buf);
	return fail(err, errcap, rc, "%s: %s failed: %s (the previous file, if any, is untouched)",
		    tmp, step, strerror(-rc));
}

/* ---- loading ------------------------------------------------------- */

/* A window on the file: buf[pos .. len) is unread, starting at file
 * offset `off`. */
struct reader {
	int fd;
	unsigned char *buf;
	size_t pos, len;
	uint64_t off;
};

/* Makes n bytes (at most FLEET_PERSIST_BUF) readable at buf + pos.
 * Returns 0, 1 if the file ends first, or a negative errno. */
static int need(struct reader *r, size_t n)
{
	if (r->len - r->pos >= n)
		return 0;
	memmove(r->buf, r->buf + r->pos, r->len - r->pos);
	r->len -= r->pos;
	r->pos = 0;
	while (r->len < n) {
		ssize_t got = read(r->fd, r->buf + r->len, FLEET_PERSIST_BUF - r->len);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!got)
			return 1;
		r->len += (size_t)got;
	}
	return 0;
}

static void consume(struct reader *r, size_t n)
{
	r->pos += n;
	r->off += n;
}

int fleet_load(struct fleet_store *s, uint32_t worker, const char *path,
	       int64_t forget_before_ms, uint64_t *agents, char *err, size_t errcap)
{
	struct reader r = {.fd = -1};
	const unsigned char *h;
	uint64_t count, loaded = 0, rec;
	int rc;

	if (agents)
		*agents = 0;
	if (errcap)
		err[0] = '\0';
	if (worker >= s->nworkers)
		return fail(err, errcap, -EINVAL, "fleet load: no worker record %" PRIu32, worker);
	/* Offline however it ends; online only while publishing. */
	fleet_offline(s, worker);
	r.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0) {
		if (errno == ENOENT)
			return 0; /* first start: nothing saved yet */
		rc = -errno;
		return fail(err, errcap, rc, "%s: cannot open: %s", path, strerror(-rc));
	}
	r.buf = malloc(FLEET_PERSIST_BUF);
	if (!r.buf) {
		close(r.fd);
		return fail(err, errcap, -ENOMEM, "%s: no memory for the load buffer", path);
	}

	rc = need(&r, FLEET_PERSIST_HEADER);
	if (rc) {
		if (rc > 0)
			rc = fail(err, errcap, -EBADMSG,
				  "%s: truncated: %zu bytes, shorter than the header", path, r.len);
		else
			rc = fail(err, errcap, rc, "%s: cannot read: %s", path, strerror(-rc));
		goto out;
	}
	h = r.buf;
	if (memcmp(h, magic, sizeof magic)) {
		rc = fail(err, errcap, -EBADMSG, "%s: not a fleet file (no RSFLEET magic)", path);
		goto out;
	}
	/* The checksum first, where version 1 has it: a damaged version
	 * field then reads as damage, and a later version that kept this
	 * header reads as unsupported. */
	if (get32(h + 24) != crc(h, 24)) {
		if (get32(h + 8) != FLEET_PERSIST_VERSION)
			rc = fail(err, errcap, -EBADMSG,
				  "%s: header checksum mismatch (damaged, or a version %" PRIu32
				  " file: this build reads version %u)",
				  path, get32(h + 8), FLEET_PERSIST_VERSION);
		else
			rc = fail(err, errcap, -EBADMSG, "%s: header checksum mismatch", path);
		goto out;
	}
	if (get32(h + 8) != FLEET_PERSIST_VERSION) {
		rc = fail(err, errcap, -EPROTONOSUPPORT,
			  "%s: version %" PRIu32 " of the format; this build reads version %u",
			  path, get32(h + 8), FLEET_PERSIST_VERSION);
		goto out;
	}
	if (get32(h + 12) || get32(h + 28)) {
		rc = fail(err, errcap, -EBADMSG, "%s: header: reserved bytes not zero", path);
		goto out;
	}
	count = get64(h + 16);
	consume(&r, FLEET_PERSIST_HEADER);

	fleet_online(s, worker);
	for (rec = 0; rec < count; rec++) {
		uint64_t at = r.off;
		rc = need(&r, RECORD_HEAD);
		if (rc)
			goto short_read;
		h = r.buf + r.pos;
		uint32_t n = get32(h);
		unsigned o = h[4], a = h[5];
		if (n > FLEET_BLOB_MAX || !o || o > FLEET_ID_MAX || !a || a > FLEET_ID_MAX ||
		    h[6] || h[7]) {
			rc = fail(err, errcap, -EBADMSG,
				  "%s: record %" PRIu64 " of %" PRIu64 " at byte %" PRIu64
				  ": damaged (blob %" PRIu32 " bytes, ids %u and %u bytes)",
				  path, rec + 1, count, at, n, o, a);
			goto loaded;
		}
		size_t body = RECORD_HEAD + o + a + n;
		rc = need(&r, body + 4);
		if (rc)
			goto short_read;
		h = r.buf + r.pos;
		if (get32(h + body) != crc(h, body)) {
			rc = fail(err, errcap, -EBADMSG,
				  "%s: record %" PRIu64 " of %" PRIu64 " at byte %" PRIu64
				  ": checksum mismatch",
				  path, rec + 1, count, at);
			goto loaded;
		}
		int64_t received = (int64_t)get64(h + 8);
		const char *org = (const char *)h + RECORD_HEAD, *agent = org + o;
		const struct fleet_snapshot *cur = fleet_lookup(s, worker, org, o, agent, a);
		if (received >= forget_before_ms && (!cur || cur->received_ms < received)) {
			rc = fleet_publish(s, worker, org, o, agent, a, h + RECORD_HEAD + o + a, n,
					   received);
			if (rc) {
				rc = fail(err, errcap, rc,
					  "%s: record %" PRIu64 " of %" PRIu64
					  ": the store refused it (%s) after %" PRIu64
					  " agents: raise --fleet-max-agents or --fleet-memory",
					  path, rec + 1, count, strerror(-rc), loaded);
				goto loaded;
			}
			loaded++;
		}
		consume(&r, body + 4);
		/* Lets the blocks of agents loaded twice go, now and then. */
		if (rec % 64 == 63)
			fleet_quiescent(s, worker);
	}
	rc = need(&r, 1);
	if (rc == 0)
		rc = fail(err, errcap, -EBADMSG,
			  "%s: bytes after the last of its %" PRIu64 " records, at byte %" PRIu64,
			  path, count, r.off);
	else if (rc < 0)
		rc = fail(err, errcap, rc, "%s: cannot read: %s", path, strerror(-rc));
	else
		rc = 0;
	goto loaded;

short_read:
	if (rc > 0)
		rc = fail(err, errcap, -EBADMSG,
			  "%s: truncated: the file ends in record %" PRIu64 " of %" PRIu64
			  ", at byte %" PRIu64,
			  path, rec + 1, count, r.off + (r.len - r.pos));
	else
		rc = fail(err, errcap, rc, "%s: cannot read: %s", path, strerror(-rc));
loaded:
	fleet_offline(s, worker);
	if (agents)
		*agents = loaded;
out:
	free(r.buf);
	close(r.fd);
	return rc;
}
