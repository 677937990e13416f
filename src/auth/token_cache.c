/* Per-worker cache of verified tokens; see include/ringside/token_cache.h. */
#include "ringside/token_cache.h"

#include "ringside/siphash.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

_Static_assert(sizeof(struct jwt_claims) == 288, "claims: 288 bytes");
_Static_assert(sizeof(struct token_cache_set) == 1280,
	       "a set is 20 cache lines: tags, times, four claims");

/* ---- the cache ----------------------------------------------------- */

int token_cache_init_keyed(struct token_cache *c, uint32_t entries,
			   const uint8_t key[16])
{
	size_t sets;

	memset(c, 0, sizeof *c);
	if (entries < TOKEN_CACHE_WAYS || entries > 1u << 24 ||
	    (entries & (entries - 1)))
		return -EINVAL;
	sets = entries / TOKEN_CACHE_WAYS;
	/* Zeroed pages, touched as tokens arrive: a cache sized for a fleet
	 * of 100 000 agents costs what the agents that came use (a page
	 * fault the first time a set is used). deadline 0 is empty, as now
	 * is always > 0. */
	void *m = mmap(NULL, sets * sizeof *c->sets, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	c->sets = m;
	c->set_mask = (uint32_t)(sets - 1);
	c->entries = entries;
	c->max_age = TOKEN_CACHE_MAX_AGE;
	memcpy(c->key, key, sizeof c->key);
	return 0;
}

int token_cache_init(struct token_cache *c, uint32_t entries)
{
	uint8_t key[16];
	size_t got = 0;
	int r;

	while (got < sizeof key) {
		ssize_t n = getrandom(key + got, sizeof key - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			memset(c, 0, sizeof *c);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	r = token_cache_init_keyed(c, entries, key);
	explicit_bzero(key, sizeof key);
	return r;
}

void token_cache_fini(struct token_cache *c)
{
	if (c->sets)
		munmap(c->sets, (size_t)c->entries / TOKEN_CACHE_WAYS * sizeof *c->sets);
	explicit_bzero(c, sizeof *c);
}

/* The set is chosen by the first word, the tag is both: 128 bits must
 * match for a hit. */
static struct token_cache_set *lookup(struct token_cache *c, const char *token,
				      size_t len, uint64_t tag[2])
{
	uint8_t h[16];

	siphash24_128(c->key, token, len, h);
	memcpy(tag, h, sizeof h); /* any fixed byte order makes a tag */
	return &c->sets[tag[0] & c->set_mask];
}

static int find(const struct token_cache_set *s, const uint64_t tag[2])
{
	for (int w = 0; w < TOKEN_CACHE_WAYS; w++)
		if (s->tag[w][0] == tag[0] && s->tag[w][1] == tag[1] &&
		    s->deadline[w] != 0)
			return w;
	return -1;
}

const struct jwt_claims *token_cache_get(struct token_cache *c,
					 const char *token, size_t len,
					 int64_t now)
{
	uint64_t tag[2];
	struct token_cache_set *s = lookup(c, token, len, tag);
	int w = find(s, tag);

	if (w < 0 || now >= s->deadline[w])
		return NULL;
	return &s->claims[w];
}

void token_cache_put(struct token_cache *c, const char *token, size_t len,
		     const struct jwt_claims *claims, int64_t now)
{
	uint64_t tag[2];
	struct token_cache_set *s;
	int w;

	if (claims->exp <= now)
		return;
	s = lookup(c, token, len, tag);
	w = find(s, tag);
	for (int i = 0; w < 0 && i < TOKEN_CACHE_WAYS; i++)
		if (now >= s->deadline[i]) /* empty or dead */
			w = i;
	if (w < 0) {
		w = 0;
		for (int i = 1; i < TOKEN_CACHE_WAYS; i++)
			if (s->inserted[i] < s->inserted[w])
				w = i;
	}
	s->tag[w][0] = tag[0];
	s->tag[w][1] = tag[1];
	s->deadline[w] = claims->exp < now + c->max_age ? claims->exp :
							  now + c->max_age;
	s->inserted[w] = now;
	s->claims[w] = *claims;
}

static void drop(struct token_cache_set *s, int w)
{
	s->tag[w][0] = s->tag[w][1] = 0;
	s->deadline[w] = 0;
	s->inserted[w] = 0;
	memset(&s->claims[w], 0, sizeof s->claims[w]);
}

static size_t forget(struct token_cache *c, size_t offset, const char *value)
{
	size_t dropped = 0;

	if (!value || !*value)
		return 0;
	for (size_t i = 0; i <= c->set_mask; i++) {
		struct token_cache_set *s = &c->sets[i];

		for (int w = 0; w < TOKEN_CACHE_WAYS; w++) {
			const char *f = (const char *)&s->claims[w] + offset;

			if (s->deadline[w] != 0 && strncmp(f, value, JWT_ID_CAP) == 0) {
				drop(s, w);
				dropped++;
			}
		}
	}
	return dropped;
}

size_t token_cache_forget_jti(struct token_cache *c, const char *jti)
{
	return forget(c, offsetof(struct jwt_claims, jti), jti);
}

size_t token_cache_forget_sub(struct token_cache *c, const char *sub)
{
	return forget(c, offsetof(struct jwt_claims, sub), sub);
}
