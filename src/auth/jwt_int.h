/* Between jwt.c and jwt_keys.c only. */
#ifndef RINGSIDE_JWT_INT_H
#define RINGSIDE_JWT_INT_H

#include <stddef.h>

/* base64url without padding of in[0, n) into out, which has room for
 * (n + 2) / 3 * 4 bytes and a NUL; returns the length written. */
size_t jwt_b64url_encode_(const unsigned char *in, size_t n, char *out);

#endif
