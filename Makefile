# kefu — build, test and run. `make`, `make test`, `make run`, `make asan`.
PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS     = libpcre2-8 libmicrohttpd sqlite3 jansson libcrypto libpq libcurl
OPT     ?= -O2 -g
SAN     ?=
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   = -std=c11 $(OPT) $(SAN) $(WARN) -MMD -MP -D_DEFAULT_SOURCE -D_GNU_SOURCE \
           -Iinclude -I$(BUILD) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llinear -lpthread -lm
TESTLIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

ENGINE   = kefu arena text rules rules_compile rules_regex router decide eval store queue dialog dialog_agent cli cli_kb \
           cli_chat cli_report cli_test convtest \
           kb kb_tok kb_parse kb_import kb_ex log metrics rate webhook api http serve
# regexes JIT-compiled once they prove hot
ENGINE  += rules_jit
# personal-data redaction (logs, stored transcripts)
ENGINE  += redact dialog_erase cli_erase store_cache
# the store's backends (store_int.h): SQLite, PostgreSQL
ENGINE  += store_sqlite store_pg
# champion lists of the knowledge base's common terms (kb_champs)
ENGINE  += kb_champ
# the trained intent classifier (liblinear)
ENGINE  += classify classify_feat classify_train
# kefu store backup: an online copy of the store (SQLite's backup API)
ENGINE  += store_backup cli_backup store_copy
# red lines and VIP service levels (rules/redlines.conf)
ENGINE  += redline dialog_service
# A/B-tested replies: per-variant figures and the z-test
ENGINE  += abtest
# the KPI table per channel (kefu report --kpi, the console)
ENGINE  += kpi
# outgoing HTTP through libcurl's multi interface (webhooks, actions)
ENGINE  += httpc
# the rules' actions: the shop's endpoints, breakers, stubs (through httpc)
ENGINE  += action cli_action demo_orders
# the events dialog writes to the store's outbox for webhooks
ENGINE  += dialog_outbox cli_webhook
# the conversation's memory read and written without a tree for its intents
ENGINE  += dialog_mem jsonw
# agent accounts in the store
ENGINE  += agents cli_agent
OBJS     = $(ENGINE:%=$(BUILD)/engine/%.o)
TESTS    = text rules router kb decide store queue dialog http webhook
TESTS   += redact
# the conversation's memory codec
TESTS   += dialog_mem jsonw
# the lazy JIT of regexes
TESTS   += jit
# red lines (rules/redlines.conf)
TESTS   += redline
# A/B-tested replies: the z-test
TESTS   += abtest
# the libcurl client against a local libmicrohttpd server
TESTS   += httpc
# the rules' actions: configuration, stubs, the breaker, fields, choices
TESTS   += action
# the trained intent classifier
TESTS   += classify
TESTBINS = $(TESTS:%=$(BUILD)/tests/test_%)

.PHONY: all deps test unit asan tsan tsan-run valgrind run install format clean bench-router bench-store bench-dialog bench-scale \
        bench-http bench-kb bench-classify soak bench-durability bench bench-deps bench-memory \
        bench-callgrind bench-flame
all: kefu

deps:
	@scripts/deps.sh

kefu: $(BUILD)/kefu
	cp $< $@

$(BUILD)/kefu: $(BUILD)/engine/main.o $(BUILD)/libkefu.a
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/libkefu.a: $(OBJS)
	ar rcs $@ $^

$(BUILD)/engine/%.o: engine/%.c $(BUILD)/hans_table.h | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libkefu.a
	$(CC) $(SAN) -o $@ $^ $(TESTLIBS) $(LDLIBS)

# test_text.c includes the generated table: make it first, also under -j.
$(BUILD)/tests/test_text.o: $(BUILD)/hans_table.h

# docs/openapi.json, built into api.o and served at GET /openapi.json.
$(BUILD)/openapi_json.h: docs/openapi.json scripts/embed.sh
	@mkdir -p $(@D)
	scripts/embed.sh openapi_json docs/openapi.json > $@.tmp && mv $@.tmp $@
$(BUILD)/engine/api.o: $(BUILD)/openapi_json.h

# The HTTP protocol tests run against an in-memory fake of dialog.h.
$(BUILD)/tests/test_http: $(BUILD)/tests/%: $(BUILD)/tests/%.o \
    $(BUILD)/tests/fake_dialog.o $(BUILD)/libkefu.a
	$(CC) $(SAN) -o $@ $^ $(TESTLIBS) $(LDLIBS)

# The raw-socket client of tests/hostile.sh (slow clients, announced bodies never sent).
$(BUILD)/tests/hostile_client: tests/hostile_client.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $<

# Traditional → simplified character table, generated from OpenCC's dictionaries.
$(BUILD)/hans_table.h: scripts/gen-hans-table.sh | deps
	@mkdir -p $(@D)
	scripts/gen-hans-table.sh > $@.tmp && mv $@.tmp $@

unit: $(TESTBINS) $(BUILD)/kefu $(BUILD)/tests/hostile_client
	@BUILD=$(BUILD) tests/run.sh $(TESTBINS)

# make test: the unit, CLI and HTTP suites, plus (KEFU_TEST_FULL) the fuzz smoke
# and the unit tests under valgrind, all counted in one closing line.
test: fuzz-build
	@$(MAKE) --no-print-directory unit KEFU_TEST_FULL=1

# ASan + UBSan build of everything, then the whole suite under it.
asan:
	$(MAKE) BUILD=build-asan CC=clang OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" unit

valgrind: $(TESTBINS) $(BUILD)/kefu
	@for t in $(TESTBINS); do \
	    KEFU_SLOW=50 valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 $$t >/dev/null || exit 1; \
	    echo "valgrind: $$t clean"; done
	@KEFU_SLOW=50 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
	    --error-exitcode=9 $(BUILD)/kefu check rules >/dev/null && echo "valgrind: kefu check rules clean"
	@echo "where is my order KF12345678" | valgrind -q --leak-check=full --error-exitcode=9 \
	    $(BUILD)/kefu route >/dev/null && echo "valgrind: kefu route clean"
	@d=$$(mktemp -d) && KEFU_SLOW=50 valgrind -q --leak-check=full --error-exitcode=9 \
	    $(BUILD)/kefu kb import tests/corpus --db $$d/kb.db >/dev/null && \
	    valgrind -q --leak-check=full --error-exitcode=9 $(BUILD)/kefu kb search --db $$d/kb.db \
	    "退款什麼時候到賬 refund" >/dev/null && rm -rf $$d && echo "valgrind: kefu kb import, search clean"
	@d=$$(mktemp -d) && V="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9" && \
	    $$V $(BUILD)/kefu learn tests/eval/train.tsv -o $$d/small.rules 2>/dev/null && \
	    $$V $(BUILD)/kefu eval --sweep --rules $$d/small.rules tests/eval/test.tsv >/dev/null 2>&1 && \
	    $$V $(BUILD)/kefu eval --sweep --faq tests/eval/faq.tsv tests/eval/queries.tsv >/dev/null 2>&1 && \
	    $$V $(BUILD)/kefu ask --explain --json --rules $$d/small.rules "card missing, balance?" >/dev/null 2>&1 && \
	    rm -rf $$d && echo "valgrind: kefu learn, eval, eval --faq, ask --explain clean"
	@valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
	    $(BUILD)/kefu test >/dev/null && echo "valgrind: kefu test clean"
	@KEFU_SLOW=10 E2E_TRAFFIC=20 E2E_RELOADS=2 KEFU="valgrind -q --leak-check=full --error-exitcode=9 \
	    --errors-for-leak-kinds=definite,indirect,possible $(BUILD)/kefu" sh tests/e2e.sh >$(BUILD)/e2e-valgrind.txt 2>&1; \
	    if grep -q '^not ok' $(BUILD)/e2e-valgrind.txt; then cat $(BUILD)/e2e-valgrind.txt; exit 1; fi; \
	    echo "valgrind: kefu serve under tests/e2e.sh clean"

run: kefu
	@if [ -z "$$KEFU_AGENT_TOKENS" ]; then KEFU_AGENT_TOKENS="demo:$$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"; \
	    echo "kefu: agent token for the console (agent 'demo'): $${KEFU_AGENT_TOKENS#demo:}"; fi; \
	    export KEFU_AGENT_TOKENS; ./kefu demo-orders --listen 127.0.0.1:8089 & demo=$$!; \
	    trap 'kill $$demo 2>/dev/null' EXIT INT TERM; ./kefu serve --actions demo/actions.json

# Browser tests: the widget and the console in Debian's headless Chromium, driven by
# playwright-core from npm (tests/browser/; node_modules is installed once, from the lock).
BROWSER = tests/browser
$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: browser-deps browser screenshots
browser-deps: $(BROWSER)/node_modules/.package-lock.json
unit test: browser-deps
browser: $(BUILD)/kefu browser-deps
	BUILD=$(BUILD) node $(BROWSER)/run.js
# docs/widget.png, docs/widget-mobile.png and docs/console.png, from a real kefu serve
screenshots: $(BUILD)/kefu browser-deps
	BUILD=$(BUILD) node $(BROWSER)/screenshots.js

# The API journey checked against docs/openapi.json (tests/openapi/: ajv from npm, installed from the lock).
OPENAPI_T = tests/openapi
$(OPENAPI_T)/node_modules/.package-lock.json: $(OPENAPI_T)/package.json $(OPENAPI_T)/package-lock.json
	cd $(OPENAPI_T) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: openapi-deps openapi
openapi-deps: $(OPENAPI_T)/node_modules/.package-lock.json
unit test: openapi-deps
openapi: $(BUILD)/kefu openapi-deps
	BUILD=$(BUILD) node $(OPENAPI_T)/run.js

# Durable writes per second through the store, with and without group commit.
$(BUILD)/bench/store_bench: bench/store_bench.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

bench-store: $(BUILD)/bench/store_bench
	$(BUILD)/bench/store_bench $(BUILD)/bench 16 500

# Customer messages per second through the conversation pipeline, in process.
$(BUILD)/bench/dialog_bench: bench/dialog_bench.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

bench-dialog: $(BUILD)/bench/dialog_bench
	@d=$$(mktemp -d) && $(BUILD)/bench/dialog_bench rules $$d 1 1000 && \
	    $(BUILD)/bench/dialog_bench rules $$d 16 250 && $(BUILD)/bench/dialog_bench rules $$d 16 250 -1; \
	    rm -rf $$d

# HTTP end to end (bench/http.sh): kefu's message endpoint (rule, article, handoff; on SQLite and on a throwaway PostgreSQL) against
# bench/ceiling.c, pinned and unpinned, and the latency at half rate (bench/rate_client.c);
# bench-durability: group commit against one commit per message. Both write bench/out/P.{json,md}.
# the plain liblinear model scripts/quality.sh measures kefu against (docs/quality.md)
$(BUILD)/bench/peer_linear: bench/peer_linear.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< -llinear -lm

$(BUILD)/bench/ceiling $(BUILD)/bench/rate_client: $(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

bench-http: $(BUILD)/kefu $(BUILD)/bench/ceiling $(BUILD)/bench/rate_client
	BUILD=$(BUILD) bench/http.sh http

bench-durability: $(BUILD)/kefu
	BUILD=$(BUILD) bench/http.sh durability

# Messages answered by a rule's action (over HTTP to kefu demo-orders) against the plain rule
# answer on the same server, in the same run (bench/actions.sh).
bench-actions: $(BUILD)/kefu
	BUILD=$(BUILD) bench/actions.sh

# Instructions per message under callgrind (bench/callgrind.sh: stable on a shared machine, for
# before/after comparisons) and the rule message's flame graph, docs/perf-flame-rule.svg (bench/flame.js).
bench-callgrind: $(BUILD)/kefu
	@for t in rule article handoff; do BUILD=$(BUILD) bench/callgrind.sh $$t $(BUILD)/bench/callgrind.$$t.out || exit 1; done
bench-flame: $(BUILD)/kefu
	BUILD=$(BUILD) bench/callgrind.sh rule $(BUILD)/bench/callgrind.rule.out
	node bench/flame.js $(BUILD)/bench/callgrind.rule.out docs/perf-flame-rule.svg \
	    "POST /v1/conversations/{id}/messages answered by a rule: kefu serve's instructions (callgrind, SQLite store)"

# The store scaled out (bench/scale.sh): one node on SQLite against one on PostgreSQL and two
# nodes on one PostgreSQL, in the same pass, and what a message costs the database.
bench-scale: $(BUILD)/kefu $(BUILD)/tests/load_client
	BUILD=$(BUILD) bench/scale.sh
	bench/report.sh

# ---- benchmarks: make bench runs every part, then bench/report.sh ------------
# Each part bench-P writes bench/out/P.json and P.md, draws docs/perf-P*.png and
# regenerates docs/performance.md and bench/results.json (bench/report.sh).
BENCH_PARTS = router kb http durability memory scale classify actions
BENCH_BIN   = router_bench kb_bench gen_corpus classify_bench

bench-deps:
	@scripts/bench-deps.sh

$(BENCH_BIN:%=$(BUILD)/bench/%): $(BUILD)/bench/%: bench/%.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

# Router against RiveScript on the shared workload (N = 100, 1,000, 10,000), and the bundled rules.
bench-router: bench-deps $(BUILD)/bench/router_bench
	BUILD=$(BUILD) bench/router.sh
	bench/report.sh

# Knowledge base: generated corpora of 1k, 10k, 100k articles, English and Chinese.
bench-kb: bench-deps $(BUILD)/bench/kb_bench $(BUILD)/bench/gen_corpus
	BUILD=$(BUILD) bench/kb.sh
	bench/report.sh

# the trained classifier at 15 / 50 / 150 intents (bench/classify.sh)
bench-classify: $(BUILD)/bench/classify_bench
	BUILD=$(BUILD) bench/classify.sh
	bench/report.sh

# Memory and reload: RSS with 10k intents and 100k articles, reload time and failures under load.
bench-memory: bench-deps $(BUILD)/kefu $(BUILD)/bench/gen_corpus
	BUILD=$(BUILD) bench/memory.sh
	bench/report.sh

# Every part this checkout has (a part's target may not exist yet), then the report.
# Each part's wall-clock seconds go to bench/out/seconds (the report quotes the total).
bench: bench-deps
	@mkdir -p bench/out; t0=$$(date +%s); : > bench/out/seconds.tmp; \
	for p in $(BENCH_PARTS); do \
	    $(MAKE) -q bench-$$p >/dev/null 2>&1; [ $$? -eq 2 ] && { echo "bench: no bench-$$p here"; continue; }; \
	    t=$$(date +%s); $(MAKE) --no-print-directory bench-$$p || exit 1; \
	    echo "$$p $$(($$(date +%s) - t))" >> bench/out/seconds.tmp; done; \
	echo "total $$(($$(date +%s) - t0))" >> bench/out/seconds.tmp; mv bench/out/seconds.tmp bench/out/seconds; \
	cat bench/out/seconds
	bench/report.sh

# make install: the binary, the bundled rules, corpus and web files, a hardened systemd unit
# (packaging/kefu.service.in with PREFIX filled in), its system user (sysusers.d) and an example
# environment file. install-files does the same with an already built KEFU_BIN (tests/packaging.sh).
KEFU_BIN ?= kefu
install: kefu
	@$(MAKE) --no-print-directory install-files

.PHONY: install-files
install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/kefu/rules $(DESTDIR)$(PREFIX)/share/kefu/corpus \
	    $(DESTDIR)$(PREFIX)/share/kefu/web $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/sysusers.d
	install -m 755 $(KEFU_BIN) $(DESTDIR)$(PREFIX)/bin/kefu
	cp -r rules/. $(DESTDIR)$(PREFIX)/share/kefu/rules/
	cp -r corpus/. $(DESTDIR)$(PREFIX)/share/kefu/corpus/
	cp -r web/. $(DESTDIR)$(PREFIX)/share/kefu/web/
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/kefu.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/kefu.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/kefu.service
	install -m 644 packaging/kefu.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/kefu.conf
	install -m 644 packaging/kefu.env $(DESTDIR)$(PREFIX)/share/kefu/kefu.env.example

format:
	clang-format -i engine/*.c include/*.h tests/*.c tests/fuzz/*.c tests/fuzz/*.h bench/*.c

clean:
	rm -rf build build-asan build-tsan kefu

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Crash safety, I/O failures, privacy and soak (docs/reliability.md): a load
# client and a full-disk SQLite VFS that only tests load (LD_PRELOAD).
$(BUILD)/tests/load_client: tests/load_client.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/tests/vfs_full.so: tests/vfs_full.c | deps
	@mkdir -p $(@D)
	$(CC) $(filter-out $(SAN),$(CFLAGS)) -fPIC -shared -o $@ $< $(LDLIBS)

unit test: $(BUILD)/tests/load_client $(BUILD)/tests/vfs_full.so

# 10 minutes of mixed load (RSS and fds sampled), then 100 kill -9 cycles.
soak: $(BUILD)/kefu $(BUILD)/tests/load_client
	BUILD=$(BUILD) SOAK_SECONDS=$${SOAK_SECONDS:-600} sh tests/soak.sh
	BUILD=$(BUILD) CRASH_CYCLES=$${CRASH_CYCLES:-100} sh tests/crash.sh

# ThreadSanitizer build; the unit tests, the HTTP suite and the crash suite under it (tests/tsan.sh).
tsan:
	$(MAKE) --no-print-directory BUILD=build-tsan CC=clang OPT="-O1 -g" \
	    SAN="-fsanitize=thread -fno-omit-frame-pointer" tsan-run

tsan-run: $(TESTBINS) $(BUILD)/kefu $(BUILD)/tests/hostile_client $(BUILD)/tests/load_client
	@BUILD=$(BUILD) sh tests/tsan.sh $(TESTBINS)

# ---- fuzzing (docs/reliability.md) ----
# libFuzzer targets in tests/fuzz/, built with clang, ASan and UBSan in build-fuzz/.
# `make fuzz` runs each for FUZZ_TIME seconds on its seed corpus (tests/fuzz/<target>/);
# new inputs go to build-fuzz/corpus/<target>/, crashes to build-fuzz/crash-<target>-*.
FUZZ_TARGETS = text rules kb api mem
FUZZ_TIME   ?= 60
FUZZ_BUILD   = build-fuzz
FUZZ_SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZBINS     = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-bins fuzz-smoke
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g" \
	    SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-bins

fuzz-bins: $(FUZZBINS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iengine -DKEFU_SRC_DIR='"$(CURDIR)"' -fsanitize=fuzzer -o $@ $< $(BUILD)/libkefu.a $(LDLIBS)

fuzz: fuzz-build
	@FUZZ_TIME=$(FUZZ_TIME) FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz.sh run $(FUZZ_TARGETS)

# what make test runs: every committed input once, then FUZZ_SMOKE (10) seconds per target
fuzz-smoke: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz.sh smoke $(FUZZ_TARGETS)
