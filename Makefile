# Ringside: `make run`, `make test`, `make bench`, `make fuzz`.
# CFLAGS may be overridden (e.g. CFLAGS=-O0); the required flags stay.

CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wpointer-arith \
	-Werror -Iinclude -I/usr/include/postgresql -MMD -MP -pthread
LDLIBS  = -luring -ljwt -lcrypto -lz -lm -lpq -pthread

# `make SANITIZE=address,undefined test` builds a separate tree, so the
# plain build/ringside is never replaced by an instrumented one.
SANITIZE ?=
ifneq ($(SANITIZE),)
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZE)
BUILD := build/sanitize
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
BB_HARNESS := $(BUILD)/tests/blackbox/harness.o

.PHONY: all deps run test unit blackbox bench fuzz stress clean
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

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -ljansson

# Made by a pattern rule, so make would delete it as intermediate after
# each link and compile it again for the next.
.SECONDARY: $(BB_HARNESS)
$(BUILD)/tests/blackbox/%: $(BUILD)/tests/blackbox/%.o $(BB_HARNESS)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka -lcrypto -lz -pthread

# `make run` installs what is missing, builds, and serves on 127.0.0.1:3000.
# Agents need a token key: unless a key flag is given (in ARGS or the
# environment), `make run` makes an HS256 secret in var/ once and uses it;
# `build/ringside token --jwt-secret-file var/jwt-secret ...` mints tokens.
RUN_SECRET := var/jwt-secret
# Only a key flag counts as a key (--jwt-issuer, say, does not).
RUN_KEY := $(if $(filter --jwt-secret-file% --jwt-public-key-file%,$(ARGS))$(RINGSIDE_JWT_SECRET_FILE)$(RINGSIDE_JWT_PUBLIC_KEY_FILE),,--jwt-secret-file $(RUN_SECRET))
$(RUN_SECRET):
	@mkdir -p $(@D)
	@umask 077 && head -c 48 /dev/urandom > $@.tmp && mv $@.tmp $@
	@echo "made $@ (HS256 key for agent tokens)"

# The fleet survives a restart of `make run`: saved at shutdown, loaded at start.
RUN_STATE := $(if $(filter --fleet-state%,$(ARGS))$(RINGSIDE_FLEET_STATE),,--fleet-state var/fleet.state)
run: deps
	@$(MAKE) --no-print-directory all $(if $(RUN_KEY),$(RUN_SECRET))
	@mkdir -p var
	exec $(BIN) $(RUN_KEY) $(RUN_STATE) $(ARGS)

# Every test, each in its own process with a timeout; ends with the
# runner's "N passed, N failed" line.
test: deps
	@$(MAKE) --no-print-directory $(BIN) $(UNIT_BINS) $(BB_BINS)
	@scripts/check_symbols.sh $(BIN) $(BUILD)/src/main.o $(LIB_OBJS)
	@BUILD=$(BUILD) tests/run.sh $(UNIT_BINS) $(BB_BINS)

unit: $(UNIT_BINS)
	@BUILD=$(BUILD) tests/run.sh $(UNIT_BINS)

blackbox: $(BIN) $(BB_BINS)
	@BUILD=$(BUILD) tests/run.sh $(BB_BINS)

# Microbenchmarks beside a peer library, then Ringside beside nginx.
PERF_BINS := $(BUILD)/perf/bench_http_parser $(BUILD)/perf/bench_http_parser_nodejs \
	$(BUILD)/perf/bench_metrics_scrape $(BUILD)/perf/bench_ingest_validator \
	$(BUILD)/perf/bench_fleet_expo $(BUILD)/perf/mint_tokens $(BUILD)/perf/probe_latency
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

# The fleet benchmark's tools: tokens signed by our signer, a latency probe.
$(BUILD)/perf/mint_tokens: perf/mint_tokens.c src/auth/jwt.c src/auth/jwt_keys.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) -ljwt -lcrypto
$(BUILD)/perf/probe_latency: perf/probe_latency.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory $(BIN) $(PERF_BINS)
	@RINGSIDE_BIN=$(BIN) PERF_BIN_DIR=$(BUILD)/perf perf/bench.sh
	@RINGSIDE_BIN=$(BIN) PERF_BIN_DIR=$(BUILD)/perf perf/bench_fleet.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) build/gen/db_migrations.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -I/usr/include/postgresql -Isrc/db -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRCS) build/gen/db_migrations.c $(LDLIBS)
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
build/stress/db_queue_stress: tests/stress/db_queue_stress.c $(wildcard src/db/*.c) src/log.c \
		build/gen/db_migrations.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude -I/usr/include/postgresql \
		-Isrc/db -pthread -o $@ $(filter %.c,$^) -lpq
stress: deps $(STRESS_BINS)
	@for s in $(STRESS_BINS); do TSAN_OPTIONS=halt_on_error=1 $$s -s $(STRESS_SECONDS) || exit 1; done

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
