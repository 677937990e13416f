/*
 * Agent registry bodies (src/identity/registry_body.c), parsed as a POST
 * and as a PATCH from an exact-size heap copy, so ASan flags a read one
 * byte past the body. Invariants: every output string NUL-terminated, its
 * length its strlen and within its cap; the error's status, field and
 * message terminated, everything reset on an error; a body POST accepts
 * PATCH accepts to the same struct; and on success the struct written
 * back with the JSON writer parses again to the same struct.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ringside/json_writer.h"
#include "ringside/registry_body.h"

static void check_str(const char *s, size_t len, size_t max)
{
	CHECK(len <= max);
	CHECK(s[len] == '\0');
	CHECK(memchr(s, '\0', len) == NULL);
}

static void check(int r, const struct registry_body *b, const struct registry_body_error *e,
		  size_t size)
{
	CHECK(r <= 0 && r >= REGISTRY_BODY_DUPLICATE_ITEM);
	CHECK(e->status == r);
	CHECK(memchr(e->field, '\0', sizeof e->field));
	CHECK(memchr(e->message, '\0', sizeof e->message));
	CHECK(e->offset <= size);
	check_str(b->email, b->email_len, REGISTRY_EMAIL_MAX);
	check_str(b->version, b->version_len, REGISTRY_VERSION_MAX);
	check_str(b->owner, b->owner_len, REGISTRY_OWNER_MAX);
	CHECK(b->owner_chars <= REGISTRY_OWNER_MAX_CHARS && b->owner_chars <= b->owner_len);
	CHECK(b->ncapabilities <= REGISTRY_CAPS_MAX);
	for (size_t k = 0; k < b->ncapabilities; k++)
		check_str(b->capabilities[k].s, b->capabilities[k].len, REGISTRY_CAP_MAX);
	CHECK((unsigned)b->agent_type < REGISTRY_AGENT_TYPE_COUNT);
	CHECK((unsigned)b->deployment_env < REGISTRY_DEPLOYMENT_ENV_COUNT);
	CHECK((unsigned)b->status < REGISTRY_STATUS_COUNT);
	if (r != REGISTRY_BODY_OK) {
		CHECK(b->present == 0 && b->ncapabilities == 0 && b->email_len == 0 &&
		      b->owner_len == 0 && b->version_len == 0);
		CHECK(e->message[0] != '\0');
	} else {
		CHECK(e->field[0] == '\0');
		CHECK(b->present != 0);
		CHECK(!!(b->present & REGISTRY_HAS(CAPABILITIES)) == (b->ncapabilities > 0));
		CHECK(!!(b->present & REGISTRY_HAS(STATUS)) == (b->status != 0));
	}
}

/* Written back and parsed again: the same struct. */
static void round_trip(bool patch, const struct registry_body *b)
{
	static char buf[REGISTRY_BODY_MAX];
	static struct registry_body again;
	struct registry_body_error e;
	struct json_writer w;
	jsonw_init(&w, buf, sizeof buf);
	registry_body_write_json(b, &w);
	size_t n = jsonw_done(&w);
	CHECK(n > 0);
	char *copy = fuzz_copy((const uint8_t *)buf, n);
	int r = patch ? registry_body_parse_patch(copy, n, &again, &e)
		      : registry_body_parse_create(copy, n, &again, &e);
	free(copy);
	CHECK(r == REGISTRY_BODY_OK);
	CHECK(memcmp(&again, b, sizeof again) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct registry_body create, patch;
	struct registry_body_error ec, ep;
	char *body = fuzz_copy(data, size);
	memset(&create, 0x5A, sizeof create);
	memset(&patch, 0xA5, sizeof patch);
	int rc = registry_body_parse_create(body, size, &create, &ec);
	int rp = registry_body_parse_patch(body, size, &patch, &ep);
	free(body);
	check(rc, &create, &ec, size);
	check(rp, &patch, &ep, size);
	if (rc == REGISTRY_BODY_OK) {
		CHECK(create.present == REGISTRY_CREATE_FIELDS);
		CHECK(rp == REGISTRY_BODY_OK && memcmp(&create, &patch, sizeof create) == 0);
		round_trip(false, &create);
	}
	if (rp == REGISTRY_BODY_OK)
		round_trip(true, &patch);
	return 0;
}
