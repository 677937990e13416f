/* The routes Ringside serves: one static table, built at compile time. */
#ifndef RINGSIDE_API_H
#define RINGSIDE_API_H

#include "ringside/router.h"

extern const struct router api_router;

#endif
