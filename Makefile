# lossd - build, test, check, bench, install.
#
#   make            build/libloss.a, build/libloss.so, build/loss.pc, build/lossd
#   make test       build and run every test (installs Debian dependencies when missing)
#   make check      format check + -Werror build + the suite under ASan+UBSan
#   make run        build and serve on 127.0.0.1:8080
#   make bench      kernel benchmarks beside the reference implementations
#   make install PREFIX=/usr/local

PREFIX ?= /usr/local
CC ?= cc
BUILD ?= build
OPT ?= -O2 -g
SANITIZE ?=
WERROR ?=
PYTHON ?= /usr/bin/python3

WARN := -std=c11 -ffp-contract=fast -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-psabi
CFLAGS_ALL = $(WARN) $(OPT) -D_GNU_SOURCE -fPIC -Ilib/include $(CFLAGS)
LDFLAGS_ALL = $(LDFLAGS)
ifneq ($(SANITIZE),)
CFLAGS_ALL += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif
ifneq ($(WERROR),)
CFLAGS_ALL += -Werror
endif

# Resolved when a recipe runs, i.e. after the dependency step below.
PKGS := libmicrohttpd libuv jansson
SERVER_CFLAGS = $(shell pkg-config --cflags $(PKGS))
SERVER_LIBS = $(shell pkg-config --libs $(PKGS)) -lm
TEST_LIBS = $(shell pkg-config --libs cmocka jansson) -lm

LIB_SRC := $(wildcard lib/src/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
SRV_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
SRV_OBJ := $(SRV_SRC:%.c=$(BUILD)/%.o)
LIBTEST_SRC := $(wildcard tests/lib/test_*.c)
LIBTEST_BIN := $(LIBTEST_SRC:tests/lib/%.c=$(BUILD)/tests/lib/%)
SRVTEST_SRC := $(wildcard tests/server/test_*.c)
SRVTEST_BIN := $(SRVTEST_SRC:tests/server/%.c=$(BUILD)/tests/server/%)
TESTCOMMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/common/*.c))
DEPS_STAMP := $(BUILD)/.deps-ok

.SECONDARY:

.PHONY: all lib server test test-lib test-server test-python check format format-check run \
        bench bench-http install deps deps-bench clean golden test-image test-deploy fuzz

all: lib server

lib: $(BUILD)/libloss.a $(BUILD)/libloss.so $(BUILD)/loss.pc
server: $(BUILD)/lossd

# ---- dependencies ---------------------------------------------------------------------------
# Installs the Debian packages the build and the tests need when any is missing (as root).
$(DEPS_STAMP): tests/deps.sh
	@sh tests/deps.sh build
	@mkdir -p $(BUILD) && touch $@

deps:
	sh tests/deps.sh build
deps-bench:
	sh tests/deps.sh bench

# ---- library --------------------------------------------------------------------------------
$(BUILD)/lib/src/%.o: lib/src/%.c lib/include/loss.h lib/src/internal.h lib/src/vecmath.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libloss.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/libloss.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libloss.so.0 -Wl,--version-script=lib/libloss.map $(LDFLAGS_ALL) -o $@ $^ -lm

PC_TEXT = 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: loss\nDescription: loss functions with exact gradients (lossd core)\nVersion: 0.1.0\nLibs: -L$${libdir} -lloss\nLibs.private: -lm\nCflags: -I$${includedir}\n'

$(BUILD)/loss.pc: Makefile
	@mkdir -p $(BUILD)
	printf $(PC_TEXT) '$(PREFIX)' > $@

# ---- server ---------------------------------------------------------------------------------
$(BUILD)/server/openapi_blob.h: proto/openapi.yaml server/embed.sh
	@mkdir -p $(dir $@)
	sh server/embed.sh lossd_openapi_yaml < $< > $@

$(BUILD)/server/%.o: server/%.c $(wildcard server/*.h) lib/include/loss.h $(BUILD)/server/openapi_blob.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SERVER_CFLAGS) -I$(BUILD)/server -c $< -o $@

$(BUILD)/lossd: $(BUILD)/server/main.o $(SRV_OBJ) $(BUILD)/libloss.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(SERVER_LIBS) -lpthread

# ---- tests ----------------------------------------------------------------------------------
$(BUILD)/tests/%.o: tests/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SERVER_CFLAGS) -Ilib/src -Iserver -Itests/common -c $< -o $@

$(BUILD)/tests/lib/%: $(BUILD)/tests/lib/%.o $(TESTCOMMON_OBJ) $(SRV_OBJ) $(BUILD)/libloss.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(TEST_LIBS) $(SERVER_LIBS)

# Allocation-failure test: the library's allocations go through wrappers that fail on demand.
$(BUILD)/tests/lib/test_oom: $(BUILD)/tests/lib/test_oom.o $(TESTCOMMON_OBJ) $(SRV_OBJ) $(BUILD)/libloss.a
	$(CC) $(LDFLAGS_ALL) -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc -o $@ $^ $(TEST_LIBS) $(SERVER_LIBS)

$(BUILD)/tests/server/%: $(BUILD)/tests/server/%.o $(TESTCOMMON_OBJ) $(SRV_OBJ) $(BUILD)/libloss.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(TEST_LIBS) $(SERVER_LIBS)

test: all $(LIBTEST_BIN) $(SRVTEST_BIN)
	@sh tests/run.sh $(BUILD) $(PYTHON)

test-lib: $(LIBTEST_BIN)
	@sh tests/run.sh $(BUILD) none lib

# ---- quality --------------------------------------------------------------------------------
FORMAT_SRC = $(wildcard lib/include/*.h lib/src/*.[ch] server/*.[ch] tests/lib/*.c tests/server/*.c tests/common/*.[ch] bench/*.c)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format: ok"

check: format-check
	$(MAKE) BUILD=build/werror WERROR=1 all
	$(MAKE) BUILD=build/san WERROR=1 SANITIZE=address,undefined OPT="-O1 -g" test

# ---- run, bench, install --------------------------------------------------------------------
run: all
	$(BUILD)/lossd --listen 127.0.0.1:8080

$(BUILD)/bench/bench_kernels: bench/bench_kernels.c $(BUILD)/libloss.a | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O3 -Ilib/src -o $@ $< $(BUILD)/libloss.a -lm

bench: $(BUILD)/bench/bench_kernels
	@sh tests/deps.sh bench
	$(PYTHON) bench/bench.py --bin $(BUILD)/bench/bench_kernels

bench-http: all $(BUILD)/bench/bench_kernels
	@sh tests/deps.sh bench
	LOSSD_BIN=$(BUILD)/lossd $(PYTHON) bench/bench_http.py

test-image:
	sh tests/image.sh

test-deploy: all
	cd tests/integration && LOSSD_BIN=../../$(BUILD)/lossd $(PYTHON) -m unittest -v test_deploy

# Fuzz the request path (codec, jansson, every loss) with libFuzzer under ASan+UBSan:
#   make fuzz FUZZ_SECONDS=300      (clang and libclang-rt-14-dev)
FUZZ_SECONDS ?= 120
FUZZ_SRC = tests/fuzz/fuzz_request.c server/catalog.c server/codec.c server/lift.c server/b64.c \
  server/dtoa.c $(LIB_SRC)
$(BUILD)/fuzz/fuzz_request: $(FUZZ_SRC) | $(DEPS_STAMP)
	@command -v clang >/dev/null || apt-get install -y -qq clang >/dev/null
	@dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || apt-get install -y -qq libclang-rt-14-dev >/dev/null
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -DLOSS_NO_CLONES \
	  -Ilib/include -Ilib/src -Iserver $(SERVER_CFLAGS) -o $@ $(FUZZ_SRC) $(shell pkg-config --libs jansson) -lm

fuzz: $(BUILD)/fuzz/fuzz_request
	@mkdir -p $(BUILD)/fuzz/corpus
	cp -n tests/fuzz/corpus/* $(BUILD)/fuzz/corpus/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	  -rss_limit_mb=2048 $(BUILD)/fuzz/corpus

golden:
	@sh tests/deps.sh golden
	$(PYTHON) tests/golden/gen.py tests/golden
	$(PYTHON) tests/golden/gen_multitask.py tests/golden
	$(PYTHON) proto/make_examples.py
	$(PYTHON) tests/data/http/make_invalid.py

install: lib server
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(BUILD)/libloss.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libloss.so $(DESTDIR)$(PREFIX)/lib/libloss.so.0
	ln -sf libloss.so.0 $(DESTDIR)$(PREFIX)/lib/libloss.so
	install -m 644 lib/include/loss.h $(DESTDIR)$(PREFIX)/include/
	printf $(PC_TEXT) '$(PREFIX)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/loss.pc
	install -m 755 $(BUILD)/lossd $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build
