# Ringside: `make run`, `make test`, `make bench`, `make fuzz`.
# CFLAGS may be overridden (e.g. CFLAGS=-O0); the required flags stay.

CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wpointer-arith \
	-Werror -Iinclude -MMD -MP -pthread
# libpq's header (Debian: /usr/include/postgresql).
PQ_CFLAGS := $(or $(shell pkg-config --cflags libpq 2>/dev/null),-I/usr/include/postgresql)
override CFLAGS += $(PQ_CFLAGS)
LDLIBS  = -luring -lbearssl -lcrypto -lz -lpq -lm -pthread

# `make SANITIZE=address,undefined test` builds a separate tree, so the
# plain build/ringside is never replaced by an instrumented one.
SANITIZE ?=
ifneq ($(SANITIZE),)
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZE)
ifeq ($(SANITIZE),thread)
# `make SANITIZE=thread ...` (the parked-exchange and database tests in
# .ci/run): gcc cannot instrument fences, which TSan then does not see.
override CFLAGS  += -Wno-tsan
BUILD := build/sanitize-thread
else
BUILD := build/sanitize
endif
else
BUILD := build
endif

LIB_SRCS  := $(sort $(wildcard src/*/*.c) $(filter-out src/main.c,$(wildcard src/*.c)))
# The SQL migrations, embedded as a C table (src/db/db_int.h). The
# directory is a prerequisite too, so adding or removing a file remakes it.
MIGRATIONS := $(sort $(wildcard src/db/migrations/*.sql))
GEN_SRCS  := $(BUILD)/gen/db_migrations.c
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(GEN_SRCS:%.c=%.o)
BIN       := $(BUILD)/ringside

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
BB_SRCS   := $(sort $(wildcard tests/blackbox/test_*.c))
BB_BINS   := $(BB_SRCS:tests/blackbox/%.c=$(BUILD)/tests/blackbox/%)
# The harness is a library, one idea per file in tests/blackbox/lib/,
# archived so each test links only the members it uses.
BB_LIB_SRCS := $(sort $(wildcard tests/blackbox/lib/*.c))
BB_LIB_OBJS := $(BB_LIB_SRCS:%.c=$(BUILD)/%.o)
BB_HARNESS := $(BUILD)/tests/blackbox/libharness.a
# Helpers both kinds of test link (tests/common/test_db: a database per test).
TEST_COMMON := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/common/*.c)))

.PHONY: all deps run test test-tls unit blackbox bench fuzz stress clean
all: $(BIN)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Made by a pattern rule (for any build tree), so kept as the harness is.
.SECONDARY: $(GEN_SRCS)
%/gen/db_migrations.c: scripts/embed_sql.sh $(MIGRATIONS) src/db/migrations
	@mkdir -p $(@D)
	scripts/embed_sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -Isrc/db -c -o $@ $<

$(BIN): $(BUILD)/src/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIB_OBJS) $(TEST_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -ljansson

# The harness library, the tests' common helpers and the tests' objects
# stay between links (.SECONDARY: never deleted as intermediate, so never
# compiled again for the next link or the next make). The archive is
# rebuilt whole, so an object whose source is gone leaves it.
.SECONDARY: $(BB_LIB_OBJS) $(BB_BINS:%=%.o) $(TEST_COMMON)
$(BB_HARNESS): $(BB_LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^
$(BUILD)/tests/blackbox/%: $(BUILD)/tests/blackbox/%.o $(BB_HARNESS) $(TEST_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka -lssl -lcrypto -lz -lpq -pthread

# `make run` installs what is missing, builds, and serves on 127.0.0.1:3000.
# Tokens are RS256 as the platform issues them: unless a key flag is given
# (in ARGS or the environment), `make run` makes an RSA-2048 key pair in
# var/ once and signs with it; `build/ringside token --jwt-public-key-file
# var/jwt-public.pem --jwt-private-key-file var/jwt-private.pem ...` mints
# an operator's token (README "Identity: the first token"). Client
# secrets are stored under an HMAC key made in var/ once likewise.
RUN_PRIVATE := var/jwt-private.pem
RUN_PUBLIC := var/jwt-public.pem
RUN_CLIENT_KEY := var/client-secret.key
# Only a key flag counts as a key (--jwt-issuer, say, does not).
RUN_KEY := $(if $(filter --jwt-secret-file% --jwt-public-key-file%,$(ARGS))$(RINGSIDE_JWT_SECRET_FILE)$(RINGSIDE_JWT_PUBLIC_KEY_FILE),,--jwt-public-key-file $(RUN_PUBLIC) --jwt-private-key-file $(RUN_PRIVATE))
RUN_CLIENT := $(if $(filter --client-secret-key-file%,$(ARGS))$(RINGSIDE_CLIENT_SECRET_KEY_FILE),,--client-secret-key-file $(RUN_CLIENT_KEY))
$(RUN_PRIVATE):
	@mkdir -p $(@D)
	@umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $@.tmp 2>/dev/null && mv $@.tmp $@
	@echo "made $@ (RS256 signing key for agent tokens)"
$(RUN_PUBLIC): $(RUN_PRIVATE)
	@openssl pkey -in $< -pubout -out $@.tmp 2>/dev/null && mv $@.tmp $@
$(RUN_CLIENT_KEY):
	@mkdir -p $(@D)
	@umask 077 && head -c 48 /dev/urandom > $@.tmp && mv $@.tmp $@
	@echo "made $@ (HMAC key client secrets are stored under)"

# The fleet survives a restart of `make run`: saved at shutdown, loaded at start.
RUN_STATE := $(if $(filter --fleet-state%,$(ARGS))$(RINGSIDE_FLEET_STATE),,--fleet-state var/fleet.state)
# `make run ARGS=--tls` serves HTTPS with a self-signed certificate for
# localhost made in var/tls once (scripts/tls_cert.sh, EC P-256); --tls
# is make's word, not the server's, and is taken out of ARGS. A
# certificate of your own: ARGS="--tls-cert FILE --tls-key FILE".
RUN_TLS_DIR := var/tls
RUN_TLS := $(if $(filter --tls,$(ARGS)),$(if $(filter --tls-cert% --tls-key%,$(ARGS)),,--tls-cert $(RUN_TLS_DIR)/cert.pem --tls-key $(RUN_TLS_DIR)/key.pem))
RUN_ARGS := $(filter-out --tls,$(ARGS))
# scripts/run.sh starts the private PostgreSQL cluster in var/pg (unless a
# database is given: --database-url in ARGS, RINGSIDE_DATABASE_URL or
# DATABASE_URL), serves with it and stops it when the server exits.
run: deps
	@$(MAKE) --no-print-directory all $(if $(RUN_KEY),$(RUN_PUBLIC)) $(if $(RUN_CLIENT),$(RUN_CLIENT_KEY))
	@mkdir -p var
	$(if $(RUN_TLS),@scripts/tls_cert.sh $(RUN_TLS_DIR))
	exec scripts/run.sh $(BIN) $(RUN_KEY) $(RUN_CLIENT) $(RUN_STATE) $(RUN_TLS) $(RUN_ARGS)

# Every test, each in its own process with a timeout, then the black-box
# tests again over HTTPS (test-tls below: about a minute on 2 cores); ends
# with the runner's "N passed, N failed" line. One throwaway PostgreSQL cluster
# serves the whole run (scripts/with_test_pg.sh: RINGSIDE_TEST_DATABASE_URL,
# RINGSIDE_TEST_PG_DIR); each database test makes its own database in it.
test: deps
	@$(MAKE) --no-print-directory $(BIN) $(UNIT_BINS) $(BB_BINS)
	@scripts/check_symbols.sh $(BIN) $(BUILD)/src/main.o $(LIB_OBJS)
	@BUILD=$(BUILD) exec scripts/with_test_pg.sh tests/run.sh $(UNIT_BINS) $(BB_BINS) --tls $(BB_BINS)

# The black-box tests over HTTPS: the harness's TLS mode (RINGSIDE_BB_TLS=1,
# tests/blackbox/lib/tls_client.h) serves every server it starts with a
# certificate of its own and wraps every client connection in OpenSSL; a
# test that makes sense over plain HTTP only says why and is skipped.
test-tls: deps
	@$(MAKE) --no-print-directory $(BIN) $(BB_BINS)
	@BUILD=$(BUILD) exec scripts/with_test_pg.sh tests/run.sh --tls $(BB_BINS)

unit: $(UNIT_BINS)
	@BUILD=$(BUILD) exec scripts/with_test_pg.sh tests/run.sh $(UNIT_BINS)

blackbox: $(BIN) $(BB_BINS)
	@BUILD=$(BUILD) exec scripts/with_test_pg.sh tests/run.sh $(BB_BINS)

# Microbenchmarks beside a peer library, then Ringside beside nginx (last:
# HTTPS, perf/bench_tls.sh; BENCH_TLS=0 skips it).
PERF_BINS := $(BUILD)/perf/bench_http_parser $(BUILD)/perf/bench_http_parser_nodejs \
	$(BUILD)/perf/bench_metrics_scrape $(BUILD)/perf/bench_ingest_validator \
	$(BUILD)/perf/bench_fleet_expo $(BUILD)/perf/bench_json $(BUILD)/perf/mint_tokens \
	$(BUILD)/perf/bench_jwt \
	$(BUILD)/perf/probe_latency $(BUILD)/perf/paced_post $(BUILD)/perf/tls_handshakes
$(BUILD)/perf/bench_http_parser: perf/bench_http_parser.c src/http/parser.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^)
$(BUILD)/perf/bench_http_parser_nodejs: perf/bench_http_parser.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DPEER_NODEJS -o $@ $< -lhttp_parser

$(BUILD)/perf/bench_metrics_scrape: $(BUILD)/perf/bench_metrics_scrape.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The validator beside jansson's json_loads on the same bytes (one program).
$(BUILD)/perf/bench_ingest_validator: perf/bench_ingest_validator.c $(wildcard src/ingest/*.c) src/common/siphash.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -ljansson -lm

# One GET /metrics/fleet body over 10 000 agents holding the full sample
# (no peer: only the pieces it runs, no liburing or libjwt).
$(BUILD)/perf/bench_fleet_expo: perf/bench_fleet_expo.c src/fleet/expo.c src/fleet/report.c \
		src/fleet/store.c $(wildcard src/ingest/*.c) src/common/siphash.c src/metrics/expo.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -lm

# The JSON writer's bodies: /latest of the full sample, an error response.
$(BUILD)/perf/bench_json: perf/bench_json.c src/fleet/report_json.c src/fleet/report.c \
		src/common/json_writer.c src/common/rfc3339.c src/metrics/expo.c \
		src/http/response.c src/http/status.c src/http/api_errors.c \
		$(wildcard src/ingest/*.c) src/common/siphash.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -lm

# The fleet benchmark's tools: tokens signed by our signer, a latency probe.
JWT_SRCS := src/auth/jwt.c src/auth/json_syntax.c src/auth/jwt_keys.c src/common/json_writer.c src/common/rfc3339.c src/common/thread_object.c \
	src/metrics/expo.c
$(BUILD)/perf/mint_tokens: perf/mint_tokens.c $(JWT_SRCS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -lcrypto -lm -pthread
# Sign and verify, ns/op, per algorithm (over the test-only keys).
$(BUILD)/perf/bench_jwt: perf/bench_jwt.c $(JWT_SRCS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -lcrypto -lm -pthread
$(BUILD)/perf/probe_latency: perf/probe_latency.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<
$(BUILD)/perf/paced_post: perf/paced_post.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<
# New connections a second, each with a TLS handshake (OpenSSL's client).
$(BUILD)/perf/tls_handshakes: perf/tls_handshakes.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< -lssl -lcrypto

bench: deps
	@$(MAKE) --no-print-directory $(BIN) $(PERF_BINS)
	@RINGSIDE_BIN=$(BIN) PERF_BIN_DIR=$(BUILD)/perf perf/bench.sh
	@RINGSIDE_BIN=$(BIN) PERF_BIN_DIR=$(BUILD)/perf perf/bench_fleet.sh
	@RINGSIDE_BIN=$(BIN) perf/bench_db.sh
	@RINGSIDE_BIN=$(BIN) perf/bench_token.sh
	@RINGSIDE_BIN=$(BIN) perf/bench_analytics.sh
	@RINGSIDE_BIN=$(BIN) PERF_BIN_DIR=$(BUILD)/perf perf/bench_tls.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
# The engine's targets take their host from tests/common/fake_host.c.
FUZZ_COMMON := tests/common/fake_host.c
build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(FUZZ_COMMON) build/gen/db_migrations.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -I/usr/include/postgresql -Isrc/db -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRCS) $(FUZZ_COMMON) build/gen/db_migrations.c $(LDLIBS)
fuzz: deps $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$${f##*/fuzz_}; mkdir -p build/fuzz/corpus-$$n; \
	  echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; done

# Threaded stress programs under ThreadSanitizer (clang), STRESS_SECONDS
# each: lock-free code is proven by running it, not only by reading it.
STRESS_SECONDS ?= 5
STRESS_SRCS := $(sort $(wildcard tests/stress/*_stress.c))
STRESS_BINS := $(STRESS_SRCS:tests/stress/%.c=build/stress/%)
build/stress/fleet_store_stress: tests/stress/fleet_store_stress.c src/fleet/store.c src/common/siphash.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude -pthread -o $@ $^
# The db thread's queues, wake-ups and publication (a server if
# RINGSIDE_TEST_DATABASE_URL is set, else the no-connection path).
build/stress/db_queue_stress: tests/stress/db_queue_stress.c $(wildcard src/db/*.c) src/log.c src/common/rfc3339.c \
		build/gen/db_migrations.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude -I/usr/include/postgresql \
		-Isrc/db -pthread -o $@ $(filter %.c,$^) -lpq
# Parked exchanges posted from another thread, the database thread and
# the revocation sync against the run's PostgreSQL, and the revocation
# table's readers racing its writers, the count journal tailed while it
# is written and its flusher, under ThreadSanitizer too.
TSAN_UNITS := $(addprefix build/sanitize-thread/tests/unit/,test_ring_park test_db test_revocations \
	test_identity_sync test_analytics_journal test_analytics_flusher)
stress: deps $(STRESS_BINS)
	@$(MAKE) --no-print-directory SANITIZE=thread $(TSAN_UNITS)
	@exec scripts/with_test_pg.sh sh -c 'for s in $(STRESS_BINS); do \
	  TSAN_OPTIONS=halt_on_error=1 $$s -s $(STRESS_SECONDS) || exit 1; done; \
	  TSAN_OPTIONS=halt_on_error=1 BUILD=build/sanitize-thread tests/run.sh $(TSAN_UNITS)' 

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
