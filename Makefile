# kefu — build, test and run. `make`, `make test`, `make run`, `make asan`.
PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS     = libpcre2-8 libmicrohttpd sqlite3 jansson libcrypto
OPT     ?= -O2 -g
SAN     ?=
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   = -std=c11 $(OPT) $(SAN) $(WARN) -MMD -MP -D_DEFAULT_SOURCE -D_GNU_SOURCE \
           -Iinclude -I$(BUILD) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
TESTLIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

ENGINE   = kefu arena text rules rules_compile rules_regex router decide eval store queue dialog dialog_agent cli cli_kb \
           cli_chat cli_report cli_test convtest \
           kb kb_tok kb_parse kb_import kb_ex log metrics rate webhook api http serve
OBJS     = $(ENGINE:%=$(BUILD)/engine/%.o)
TESTS    = text rules router kb decide store queue dialog http webhook
TESTBINS = $(TESTS:%=$(BUILD)/tests/test_%)

.PHONY: all deps test unit asan valgrind run install format clean bench-router bench-store bench-dialog \
        bench-http bench-kb bench-durability
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

# The HTTP protocol tests run against an in-memory fake of dialog.h.
$(BUILD)/tests/test_http $(BUILD)/tests/test_webhook: $(BUILD)/tests/%: $(BUILD)/tests/%.o \
    $(BUILD)/tests/fake_dialog.o $(BUILD)/libkefu.a
	$(CC) $(SAN) -o $@ $^ $(TESTLIBS) $(LDLIBS)

# Traditional → simplified character table, generated from OpenCC's dictionaries.
$(BUILD)/hans_table.h: scripts/gen-hans-table.sh | deps
	@mkdir -p $(@D)
	scripts/gen-hans-table.sh > $@.tmp && mv $@.tmp $@

unit: $(TESTBINS) $(BUILD)/kefu
	@BUILD=$(BUILD) tests/run.sh $(TESTBINS)

test: unit

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
	./kefu serve

# Router throughput on the bundled rules: example lines mixed with out-of-domain traffic.
$(BUILD)/bench/router_bench: bench/router_bench.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

bench-router: $(BUILD)/bench/router_bench
	@bench/messages.sh > $(BUILD)/bench/messages.txt
	$(BUILD)/bench/router_bench rules $(BUILD)/bench/messages.txt 7

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

# HTTP end to end (bench/http.sh): kefu's message endpoint (rule, article, handoff) against
# bench/ceiling.c, pinned and unpinned, and the latency at half rate (bench/rate_client.c);
# bench-durability: group commit against one commit per message. Both write bench/out/P.{json,md}.
$(BUILD)/bench/ceiling $(BUILD)/bench/rate_client: $(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

bench-http: $(BUILD)/kefu $(BUILD)/bench/ceiling $(BUILD)/bench/rate_client
	BUILD=$(BUILD) bench/http.sh http

bench-durability: $(BUILD)/kefu
	BUILD=$(BUILD) bench/http.sh durability

# Knowledge-base latency: the fixture corpus, the bundled rules' examples, the same messages.
$(BUILD)/bench/kb_bench: bench/kb_bench.c $(BUILD)/libkefu.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

bench-kb: $(BUILD)/bench/kb_bench
	@bench/messages.sh > $(BUILD)/bench/messages.txt
	$(BUILD)/bench/kb_bench $${CORPUS:-tests/corpus} rules $(BUILD)/bench/messages.txt

install: kefu
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/kefu/rules
	install -m 755 kefu $(DESTDIR)$(PREFIX)/bin/kefu
	cp -r rules/. $(DESTDIR)$(PREFIX)/share/kefu/rules/

format:
	clang-format -i engine/*.c include/*.h tests/*.c

clean:
	rm -rf build build-asan kefu

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
