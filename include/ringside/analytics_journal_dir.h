/*
 * The count journal's directories (analytics_journal.h): which process
 * writes into one, and which database it is for.
 *
 * --analytics-journal is a root holding one directory per instance ("0",
 * "1", ...). A process takes the first that no other process holds (an
 * flock on its instance.lock, released by the kernel even on SIGKILL) and
 * that is not bound to another database, or makes the next. So instances
 * may share a root, and a restarted one takes over a directory left
 * behind, its own or another's of the same database: whatever is in it is
 * replayed into that database, exactly once.
 *
 * In each directory: "database-id" (ringside_meta's database_id, written
 * by the flusher on its first connection: the directory is bound to that
 * database) and "instance-id" (made once: the key of its read positions
 * in analytics_journal_applied). Both hold a uuid and a newline.
 */
#ifndef RINGSIDE_ANALYTICS_JOURNAL_DIR_H
#define RINGSIDE_ANALYTICS_JOURNAL_DIR_H

#include <stdbool.h>
#include <stddef.h>

#define JOURNAL_DIR_ID_LEN 36 /* a uuid as text, lower case */

/* Is s[0, len) a uuid as PostgreSQL writes it? */
bool journal_dir_is_uuid(const char *s, size_t len);

/* Reads dir/name into out (a uuid). 0, -ENOENT, or another negative
 * errno (-EINVAL: not a uuid). */
int journal_dir_read_id(const char *dir, const char *name, char out[JOURNAL_DIR_ID_LEN + 1]);

/* Writes dir/name holding id, atomically and durably (a temporary file,
 * fsync, rename, fsync of the directory). 0 or a negative errno. */
int journal_dir_write_id(const char *dir, const char *name, const char *id);

/* dir/instance-id: read, or made once (a random v4 uuid). */
int journal_dir_instance_id(const char *dir, char out[JOURNAL_DIR_ID_LEN + 1]);

/* Takes this process's directory under root (made if missing) for the
 * database db_id: its path in dir (cap bytes) and the flock()ed
 * instance.lock's descriptor in *lock_fd, to keep open while writing.
 * 0 or a negative errno. */
int journal_dir_take(const char *root, const char *db_id, char *dir, size_t cap, int *lock_fd);

#endif
