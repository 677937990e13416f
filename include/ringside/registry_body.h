/*
 * Request bodies of the agent registry (identity issue): POST
 * /api/v1/agents (register) and PATCH /api/v1/agents/{id} (change). The
 * server buffers these small bodies whole (at most REGISTRY_BODY_MAX
 * bytes), so the parser takes the whole body; it allocates nothing and
 * writes only into the caller's struct registry_body and error.
 *
 * JSON (RFC 8259), strictly: one object, whitespace around it only; no
 * comments, no trailing commas, no BOM; strings valid UTF-8 (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF), escapes as section 7
 * lists them, a \uD800-\uDBFF escape only followed by a \uDC00-\uDFFF one.
 * Member names are decoded before they are matched, so "\u0065mail" is
 * email and cannot hide a duplicate.
 *
 * Decisions (the schema is ours; the choices and the reasons):
 *   - Unknown members are refused (UNKNOWN_FIELD, field = the name): a
 *     registry write that ignored "deploymentEnvs" would store a default
 *     the client did not mean. status is a PATCH field only: in a POST
 *     it is UNKNOWN_FIELD (what status a new agent starts with is the
 *     handler's to decide, not the client's).
 *   - A member twice is DUPLICATE_FIELD: first-wins against last-wins
 *     differs between proxies and parsers.
 *   - null is never a value (NULL_VALUE): no field can be unset.
 *   - A value's type is decided by its first byte ('"' string, '['
 *     array, '{' object, 't' 'f' boolean, '-' or a digit number, "null");
 *     a value of the wrong type is WRONG_TYPE at that byte and its own
 *     syntax is not read. So nothing nests deeper than the schema
 *     (an object holding one array of strings).
 *   - The first problem in body order is the one reported (a string's
 *     syntax is checked to its closing quote before its content); then,
 *     for POST, the first missing field in the order below; for PATCH,
 *     an object with no field is NO_CHANGE.
 *   - email: HTML's "valid e-mail address" (WHATWG, input type=email):
 *     local part 1*(atext / "."), '@', dot-separated labels of letters,
 *     digits and '-' (1..63, no '-' at either end); ASCII only (an IDN
 *     domain comes as punycode), at most 254 bytes. Kept as given: the
 *     domain is not lower-cased.
 *   - version: SemVer 2.0.0 exactly (semver.org's grammar: no leading
 *     zeros in numeric identifiers, no empty identifiers), at most 64
 *     bytes. Numeric parts are not range-limited (the spec sets no limit;
 *     the string is stored).
 *   - capabilities: 1..32 strings "resource:action", each part 1..64 of
 *     [a-z0-9_-], no item twice. Lower case only, not folded: "Fleet:Read"
 *     and "fleet:read" would otherwise be two distinct grants that a
 *     byte-wise duplicate check lets through, and a case-insensitive
 *     match in one checker and not another is how scopes get escalated.
 *   - owner: 1..128 code points (not bytes), no control character (Unicode
 *     Cc: U+0000-U+001F, U+007F-U+009F, escaped or not). Kept as given
 *     (no trimming or normalization).
 *   - agentType, deploymentEnv, status: exact, case-sensitive names.
 *
 * Every error is a VALIDATION_ERROR (400) in seed 003's envelope:
 * {code, message, field?}, field being err->field when it is not empty
 * (a member name, or "capabilities[2]"), message err->message. A body
 * over REGISTRY_BODY_MAX is TOO_LARGE: answer 413 (PAYLOAD_TOO_LARGE).
 */
#ifndef RINGSIDE_REGISTRY_BODY_H
#define RINGSIDE_REGISTRY_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/json_writer.h"

/* X(NAME, value, message): message completes "Field \"<field>\" ..." or
 * "The body ...": the class's text when a site has nothing more precise. */
#define REGISTRY_BODY_ERRORS(X)                                                        \
	X(TOO_LARGE, -1, "is larger than 16 KiB")                                      \
	X(SYNTAX, -2, "is not valid JSON")                                             \
	X(NOT_OBJECT, -3, "is not a JSON object")                                      \
	X(TRAILING, -4, "has bytes after the JSON object")                             \
	X(UNKNOWN_FIELD, -5, "is not a field of this request")                         \
	X(DUPLICATE_FIELD, -6, "appears more than once")                               \
	X(NULL_VALUE, -7, "cannot be null: a field cannot be unset")                   \
	X(WRONG_TYPE, -8, "has the wrong type")                                        \
	X(MISSING, -9, "is required")                                                  \
	X(NO_CHANGE, -10, "has no field to change")                                    \
	X(TOO_LONG, -11, "is too long")                                                \
	X(EMPTY, -12, "is empty")                                                      \
	X(BAD_FORMAT, -13, "is not in the required format")                            \
	X(NOT_ALLOWED, -14, "is not one of the allowed values")                        \
	X(TOO_MANY, -15, "has too many items")                                         \
	X(DUPLICATE_ITEM, -16, "repeats an item")

enum registry_body_status {
	REGISTRY_BODY_OK = 0,
#define REGISTRY_BODY_ENUM(name, value, message) REGISTRY_BODY_##name = value,
	REGISTRY_BODY_ERRORS(REGISTRY_BODY_ENUM)
#undef REGISTRY_BODY_ENUM
};

/* The server buffers no more (Content-Length above it: 413 unread). */
#define REGISTRY_BODY_MAX (16u * 1024u)

/* X(NAME, json name): the fields in the order MISSING reports them. Bit
 * REGISTRY_FIELD_<NAME> of struct registry_body.present. */
#define REGISTRY_BODY_FIELDS(X)                                                        \
	X(EMAIL, "email")                                                              \
	X(AGENT_TYPE, "agentType")                                                     \
	X(VERSION, "version")                                                          \
	X(CAPABILITIES, "capabilities")                                                \
	X(OWNER, "owner")                                                              \
	X(DEPLOYMENT_ENV, "deploymentEnv")                                             \
	X(STATUS, "status")

enum registry_field {
#define REGISTRY_FIELD_ENUM(name, json) REGISTRY_FIELD_##name,
	REGISTRY_BODY_FIELDS(REGISTRY_FIELD_ENUM)
#undef REGISTRY_FIELD_ENUM
	REGISTRY_FIELD_COUNT
};
#define REGISTRY_HAS(name) (1u << REGISTRY_FIELD_##name)
/* What POST requires: every field but status. */
#define REGISTRY_CREATE_FIELDS ((1u << REGISTRY_FIELD_STATUS) - 1)

/* X(NAME, json value). The enums start at 1: 0 is "not present". */
#define REGISTRY_AGENT_TYPES(X)                                                        \
	X(SCREENER, "screener")                                                        \
	X(CLASSIFIER, "classifier")                                                    \
	X(ORCHESTRATOR, "orchestrator")                                                \
	X(EXTRACTOR, "extractor")                                                      \
	X(SUMMARIZER, "summarizer")                                                    \
	X(ROUTER, "router")                                                            \
	X(MONITOR, "monitor")                                                          \
	X(CUSTOM, "custom")
#define REGISTRY_DEPLOYMENT_ENVS(X)                                                    \
	X(DEVELOPMENT, "development")                                                  \
	X(STAGING, "staging")                                                          \
	X(PRODUCTION, "production")
#define REGISTRY_STATUSES(X)                                                           \
	X(ACTIVE, "active")                                                            \
	X(SUSPENDED, "suspended")

enum registry_agent_type {
	REGISTRY_AGENT_TYPE_NONE = 0,
#define REGISTRY_AT_ENUM(name, json) REGISTRY_AGENT_TYPE_##name,
	REGISTRY_AGENT_TYPES(REGISTRY_AT_ENUM)
#undef REGISTRY_AT_ENUM
	REGISTRY_AGENT_TYPE_COUNT
};
enum registry_deployment_env {
	REGISTRY_DEPLOYMENT_ENV_NONE = 0,
#define REGISTRY_DE_ENUM(name, json) REGISTRY_DEPLOYMENT_ENV_##name,
	REGISTRY_DEPLOYMENT_ENVS(REGISTRY_DE_ENUM)
#undef REGISTRY_DE_ENUM
	REGISTRY_DEPLOYMENT_ENV_COUNT
};
enum registry_status {
	REGISTRY_STATUS_NONE = 0,
#define REGISTRY_ST_ENUM(name, json) REGISTRY_STATUS_##name,
	REGISTRY_STATUSES(REGISTRY_ST_ENUM)
#undef REGISTRY_ST_ENUM
	REGISTRY_STATUS_COUNT
};

#define REGISTRY_EMAIL_MAX 254         /* bytes */
#define REGISTRY_VERSION_MAX 64        /* bytes */
#define REGISTRY_CAPS_MAX 32           /* items */
#define REGISTRY_CAP_PART_MAX 64       /* bytes of resource, of action */
#define REGISTRY_CAP_MAX (2 * REGISTRY_CAP_PART_MAX + 1)
#define REGISTRY_OWNER_MAX_CHARS 128   /* code points */
#define REGISTRY_OWNER_MAX (4 * REGISTRY_OWNER_MAX_CHARS) /* bytes */

struct registry_capability {
	char s[REGISTRY_CAP_MAX + 1];
	uint8_t len;
};

/*
 * A parsed body. Strings are NUL-terminated with their length (no
 * interior NUL: no field admits U+0000); a field not present is "" or
 * _NONE. 5088 bytes on x86-64 (4192 of them the capabilities): the
 * caller owns it (on its stack or per request).
 */
struct registry_body {
	uint32_t present; /* REGISTRY_HAS() bits */
	enum registry_agent_type agent_type;
	enum registry_deployment_env deployment_env;
	enum registry_status status;
	size_t email_len, version_len, owner_len;
	size_t owner_chars; /* code points of owner */
	size_t ncapabilities;
	char email[REGISTRY_EMAIL_MAX + 1];
	char version[REGISTRY_VERSION_MAX + 1];
	char owner[REGISTRY_OWNER_MAX + 1];
	struct registry_capability capabilities[REGISTRY_CAPS_MAX];
};

/* An unknown member's name is cut to this many bytes (at a code point)
 * and "..." appended; control bytes in it become '?'. */
#define REGISTRY_FIELD_PATH_NAME_MAX 64

struct registry_body_error {
	int status;      /* enum registry_body_status */
	/* "" (the body as a whole), a member name, or "capabilities[i]" */
	char field[REGISTRY_FIELD_PATH_NAME_MAX + 4];
	/* "Field \"email\" must be ...", "The body is not valid JSON: ..." */
	char message[320];
	size_t offset;   /* byte of the body where the problem is (len at the end) */
};

/*
 * Parses body[0, len) as a POST /api/v1/agents body: every field but
 * status required. Returns REGISTRY_BODY_OK, or a negative enum
 * registry_body_status; then err (if not NULL) says where and why, and
 * *out is reset (present 0, strings "") so nothing half-parsed is used.
 * Reads no byte outside body[0, len); body needs no terminator, may hold
 * any bytes, and may be NULL if len is 0.
 */
int registry_body_parse_create(const char *body, size_t len, struct registry_body *out,
			       struct registry_body_error *err);

/*
 * The same for PATCH /api/v1/agents/{id}: every field optional (present
 * says which were sent), status allowed, at least one field.
 */
int registry_body_parse_patch(const char *body, size_t len, struct registry_body *out,
			      struct registry_body_error *err);

/* The message of a status from REGISTRY_BODY_ERRORS; "" for OK,
 * "is not valid" for anything else. A static string. */
const char *registry_body_strerror(int status);

/* The JSON names ("screener", "staging", "active"), or NULL for _NONE and
 * anything out of range. Static strings. */
const char *registry_body_agent_type_name(enum registry_agent_type t);
const char *registry_body_deployment_env_name(enum registry_deployment_env e);
const char *registry_body_status_name(enum registry_status s);

/*
 * Writes the present fields of b as one JSON object, in the order of
 * REGISTRY_BODY_FIELDS (the parsers read it back to the same struct).
 * The writer's overflow is sticky, as always: check jsonw_done().
 */
void registry_body_write_json(const struct registry_body *b, struct json_writer *w);

#endif
