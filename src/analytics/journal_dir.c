/* The count journal's directories (include/ringside/analytics_journal_dir.h). */
#include "ringside/analytics_journal_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Instance directories tried under a root before giving up. */
#define INSTANCE_DIRS_MAX 1024

bool journal_dir_is_uuid(const char *s, size_t len)
{
	if (len != JOURNAL_DIR_ID_LEN)
		return false;
	for (size_t i = 0; i < JOURNAL_DIR_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

int journal_dir_read_id(const char *dir, const char *name, char out[JOURNAL_DIR_ID_LEN + 1])
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	if (!journal_dir_is_uuid(buf, (size_t)n))
		return -EINVAL;
	memcpy(out, buf, JOURNAL_DIR_ID_LEN);
	out[JOURNAL_DIR_ID_LEN] = '\0';
	return 0;
}

int journal_dir_write_id(const char *dir, const char *name, const char *id)
{
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char line[40];
	int len = snprintf(line, sizeof line, "%s\n", id);
	int err = 0;
	if (write(fd, line, (size_t)len) != len)
		err = errno ? -errno : -EIO;
	else if (fsync(fd))
		err = -errno;
	close(fd);
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd))
			err = -errno;
		close(dfd);
	}
	return err;
}

int journal_dir_instance_id(const char *dir, char out[JOURNAL_DIR_ID_LEN + 1])
{
	int r = journal_dir_read_id(dir, "instance-id", out);
	if (r != -ENOENT)
		return r;
	uint8_t b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return -errno;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, JOURNAL_DIR_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return journal_dir_write_id(dir, "instance-id", out);
}

/* mkdir -p */
static int make_dir(const char *path)
{
	char p[4096];
	size_t n = strlen(path);
	if (n >= sizeof p)
		return -ENAMETOOLONG;
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		p[i] = c;
	}
	return 0;
}

/* Does dir belong to another database (its database-id says so)? */
static bool bound_elsewhere(const char *dir, const char *db_id)
{
	char held[JOURNAL_DIR_ID_LEN + 1];
	int r = journal_dir_read_id(dir, "database-id", held);
	if (r == -ENOENT)
		return false; /* not bound yet: the flusher binds it */
	return r < 0 || memcmp(held, db_id, JOURNAL_DIR_ID_LEN) != 0;
}

int journal_dir_take(const char *root, const char *db_id, char *dir, size_t cap, int *lock_fd)
{
	int r = make_dir(root);
	if (r < 0)
		return r;
	for (unsigned n = 0; n < INSTANCE_DIRS_MAX; n++) {
		int len = snprintf(dir, cap, "%s/%u", root, n);
		if (len < 0 || (size_t)len >= cap)
			return -ENAMETOOLONG;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		char path[4096];
		snprintf(path, sizeof path, "%s/instance.lock", dir);
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && !bound_elsewhere(dir, db_id)) {
			*lock_fd = fd;
			return 0;
		}
		close(fd);
	}
	return -EMFILE;
}
