/*
 * The fleet store (include/ringside/fleet_store.h) across a restart: every
 * agent's latest snapshot written to a file, and read back with its
 * receive time, so an agent silent before the restart is as stale after
 * it as it was, and fleet_forget still forgets it on time.
 *
 * The server saves at shutdown, after the workers stopped, and loads at
 * start, before they start. It may also save while they run, from a
 * thread of its own with a worker record of its own (see fleet_store.h):
 * a save then takes each agent's snapshot as it is when the save reaches
 * its slot, holds none across its writes, and never holds back the
 * workers' reclamation for longer than it takes to copy one buffer. (An
 * agent forgotten and linked anew during such a save may be written
 * twice, in its old slot and its new one; loading keeps the newer.)
 *
 * The file, all integers little-endian:
 *
 *   header, 32 bytes
 *     0   8  magic "RSFLEET\n"
 *     8   4  version, 1
 *     12  4  0
 *     16  8  records that follow
 *     24  4  CRC-32 (zlib's crc32) of bytes 0..23
 *     28  4  0
 *   then that many records, each
 *     0   4  n, bytes of the blob, at most FLEET_BLOB_MAX
 *     4   1  o, bytes of the organization id, 1..FLEET_ID_MAX
 *     5   1  a, bytes of the agent id, 1..FLEET_ID_MAX
 *     6   2  0
 *     8   8  received_ms (signed)
 *     16  o  the organization id
 *     ..  a  the agent id
 *     ..  n  the blob (the codec's compact form, as stored)
 *     ..  4  CRC-32 of the record's bytes before it
 *   and nothing after the last record.
 *
 * A record is at most 16 + 2 x 63 + 65 472 + 4 bytes; saving and loading
 * allocate one buffer of FLEET_PERSIST_BUF bytes, whatever the fleet.
 */
#ifndef RINGSIDE_FLEET_PERSIST_H
#define RINGSIDE_FLEET_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/fleet_store.h"

#define FLEET_PERSIST_VERSION 1u
#define FLEET_PERSIST_HEADER 32u
#define FLEET_PERSIST_RECORD_MAX (16u + 2u * FLEET_ID_MAX + FLEET_BLOB_MAX + 4u)
#define FLEET_PERSIST_BUF (256u * 1024u)

/*
 * Writes every agent's latest snapshot to `path`: to path.tmp (created
 * mode 0600: reports name hosts, processes and URLs), fsync'ed, then
 * renamed over path, and the directory fsync'ed; so path holds the
 * previous save or this one, whole, whatever fails or crashes meanwhile.
 * `reader` is a worker record no other thread uses during the call (the
 * workers stopped, or the extra record of the thread saving while they
 * run); the save brings it online and leaves it offline, however it
 * ends.
 *
 * Returns 0 and the agents written in *agents (if not NULL), or a negative
 * errno with a message in err (errcap bytes, always terminated; err may be
 * NULL if errcap is 0): -EINVAL (reader out of range), -ENAMETOOLONG,
 * -ENOMEM, or what open, write, fsync or rename failed with. On failure
 * path.tmp is removed and path is untouched; except that a failure to
 * sync the directory after the rename is reported (with the agents
 * written) though the new file is in place.
 */
int fleet_save(struct fleet_store *s, uint32_t reader, const char *path, uint64_t *agents,
	       char *err, size_t errcap);

/*
 * Publishes each record of `path` into s through fleet_publish with the
 * record's received_ms, as worker `worker`: a record no other thread uses
 * during the call, best the extra one of the thread that loads (the call
 * leaves it offline, however it ends; a worker's record left offline must
 * come online, fleet_online, before that worker uses the store). Skips the records with received_ms < forget_before_ms (agents
 * a sweep would forget at once) and a record whose agent already has a
 * snapshot at least as new (so a file never makes an agent older).
 *
 * Returns 0 and the agents published in *agents (if not NULL). A missing
 * file is no error: 0 agents. Otherwise a negative errno and a message in
 * err naming the file, the record and the byte offset:
 *   -EBADMSG  not a fleet file (magic), a header that fails its checksum
 *             or has reserved bytes set,
 *             a record that fails its checksum or whose lengths are out of
 *             range, a file that ends before its last record (truncated),
 *             or bytes after it;
 *   -EPROTONOSUPPORT  a version other than FLEET_PERSIST_VERSION;
 *   -ENOSPC   the store refused an agent (max_agents or memory full);
 *   -EINVAL (worker out of range), -ENOMEM, or what open or read failed
 *   with.
 * Nothing past the first bad record is loaded; the records before it,
 * each whole and checked, stay loaded (counted in *agents): a damaged
 * tail costs only the agents in it, which report again within their
 * interval anyway. The caller decides whether to serve with them.
 */
int fleet_load(struct fleet_store *s, uint32_t worker, const char *path,
	       int64_t forget_before_ms, uint64_t *agents, char *err, size_t errcap);

#endif
