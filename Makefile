# netproc -- make-network-process as a dynamic module with a GLib engine.
#
#   make            build the module (module/netproc-module.so)
#   make check      install missing Debian packages, build, run every test
#   make demo       the same client scenario over the builtin and over netproc
#   make sanitize   engine tests under TSan and ASan, ERT against an ASan module
#   make bench      the builtin against netproc in one run: bench/results/
#                   (BENCH_QUICK=1 for a smoke run, BENCH_ROUNDS=N)
#   make bench-compat  what netproc-compat-mode costs builtin processes
#   make fuzz       each libFuzzer target of test/fuzz/ for FUZZ_SECONDS
#                   (default 60): build/fuzz/summary.md

EMACS   ?= emacs
CC      ?= gcc
PKGS     = gio-2.0 gio-unix-2.0
GLIB_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
GLIB_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     = -Wall -Wextra
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
             -Imodule -Imodule/engine $(GLIB_CFLAGS)

ENGINE_SRC = $(wildcard module/engine/*.c)
BINDING_SRC = $(wildcard module/binding/*.c)
ENGINE_HDR = $(wildcard module/engine/*.h)
BINDING_HDR = $(wildcard module/binding/*.h)
MODULE   = module/netproc-module.so

ENGINE_TESTS_SRC = $(wildcard test/engine/test-*.c)
TEST_HELPERS_SRC = $(filter-out $(ENGINE_TESTS_SRC),$(wildcard test/engine/*.c))

# nginx-light and elpa-websocket: real peers for netproc-compat-mode's tests.
# tmux: the terminal in which test/netproc-terminal-tests.el types C-g.
DEBIAN_PACKAGES = emacs-nox libglib2.0-dev pkg-config gcc make socat binutils \
                  nginx-light elpa-websocket tmux

# Fuzz targets, test/fuzz/fuzz-*.c: each built with libFuzzer for
# `make fuzz', and with gcc around test/fuzz/replay.c for `make check'.
FUZZ_CC      = /usr/bin/clang
FUZZ_SECONDS ?= 60
# clang is /usr/bin/clang; libclang-rt-14-dev has libFuzzer's runtime.
FUZZ_PACKAGES = clang libclang-rt-14-dev
FUZZ_NAMES   = $(patsubst test/fuzz/%.c,%,$(wildcard test/fuzz/fuzz-*.c))
FUZZ_HELPERS_SRC = test/fuzz/fake-env.c test/fuzz/fake-lisp.c test/fuzz/lisp-gen.c
FUZZ_DEPS    = $(ENGINE_SRC) $(BINDING_SRC) $(ENGINE_HDR) $(BINDING_HDR) \
               $(FUZZ_HELPERS_SRC) $(wildcard test/fuzz/*.h)
FUZZ_FLAGS   = -std=gnu11 $(WARN) -O1 -g -fno-omit-frame-pointer \
               -Imodule -Imodule/engine -Imodule/binding -Itest/fuzz \
               $(GLIB_CFLAGS)
FUZZ_LINK    = $(FUZZ_HELPERS_SRC) $(ENGINE_SRC) $(BINDING_SRC) \
               $(GLIB_LIBS) -lpthread
FUZZ_BINS    = $(patsubst %,build/fuzz/%,$(FUZZ_NAMES))
FUZZ_REPLAY_BINS = $(patsubst %,build/fuzz-replay/%,$(FUZZ_NAMES))

.PHONY: all deps fuzz-deps check check-engine check-fuzz-replay check-lisp \
        sanitize fuzz demo bench bench-compat clean

LISP_SRC = $(wildcard lisp/*.el)
LISP_ELC = $(patsubst %.el,%.elc,$(LISP_SRC))
LISP_NATIVE = build/native-lisp.stamp

all: $(MODULE) $(LISP_ELC) $(LISP_NATIVE)

$(MODULE): $(ENGINE_SRC) $(BINDING_SRC) $(ENGINE_HDR) $(BINDING_HDR)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(ENGINE_SRC) $(BINDING_SRC) $(GLIB_LIBS) -lpthread

# Every file is compiled against the current sources of the others.
lisp/%.elc: lisp/%.el $(wildcard lisp/*.el) $(MODULE)
	$(EMACS) -Q --batch -L lisp \
	  --eval '(setq byte-compile-error-on-warn t load-prefer-newer t)' \
	  -f batch-byte-compile $<

# Native code for the Lisp, where this Emacs can make it: the first
# time an interactive Emacs loads the package it compiles it so itself,
# into its cache (the first writable directory of
# `native-comp-eln-load-path'); this does it ahead, into the same cache,
# so that the tests, the demo and the benchmarks run what users run.
# Loading finds the code by the source's name and contents, and falls
# back on the .elc files when a source has changed since.
NATIVE_OR_QUIT = (unless (and (fboundp (quote native-comp-available-p)) \
                               (native-comp-available-p)) \
                    (message "No native compilation in this Emacs: byte code only") \
                    (kill-emacs 0))
# Byte code does the same work, slower: a failure here is reported, not
# fatal, and the next make tries again.
$(LISP_NATIVE): $(LISP_ELC)
	@mkdir -p $(dir $@)
	@echo "Compiling lisp/ to native code"
	@if $(EMACS) -Q --batch -L lisp --eval '$(NATIVE_OR_QUIT)' \
	     -f batch-native-compile $(LISP_SRC); then touch $@; \
	 else echo "Native compilation failed: netproc's Lisp runs as byte code" >&2; fi

# Installs what is missing of the packages $(1), nothing else; CI has no
# terminal.
define install-missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
endef

deps:
	$(call install-missing,$(DEBIAN_PACKAGES))

# Only `make fuzz' needs clang and libFuzzer's runtime.
fuzz-deps:
	$(call install-missing,$(FUZZ_PACKAGES))

# Engine tests: plain build, one binary per test file.
build/engine/%: test/engine/%.c $(ENGINE_SRC) $(ENGINE_HDR) $(TEST_HELPERS_SRC)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Imodule/engine -Itest/engine $(GLIB_CFLAGS) \
	  $(SAN) -Wl,--wrap=epoll_ctl -Wl,--wrap=poll -o $@ $< $(ENGINE_SRC) $(TEST_HELPERS_SRC) \
	  $(GLIB_LIBS) -lpthread

ENGINE_TEST_BINS = $(patsubst test/engine/%.c,build/engine/%,$(ENGINE_TESTS_SRC))

check: deps
	@$(MAKE) --no-print-directory all
	@test/run-tests.sh

check-engine: $(ENGINE_TEST_BINS)
	@test/run-engine-tests.sh $(ENGINE_TEST_BINS)

# The fuzz targets' kept inputs, replayed: see test/fuzz/replay.c.
check-fuzz-replay: $(FUZZ_REPLAY_BINS)
	@G_SLICE=always-malloc test/run-engine-tests.sh $(FUZZ_REPLAY_BINS)

check-lisp: all build/sockopt-peek build/dgram-peer build/echo-peer
	@test/run-lisp-tests.sh

# A plain datagram peer, for the ERT suite.
build/dgram-peer: test/dgram-peer.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

# A plain TCP echo peer, for the ERT suite.
build/echo-peer: test/echo-peer.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

# Reads the socket options of another process's socket, for the ERT suite.
build/sockopt-peek: test/sockopt-peek.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

sanitize: deps
	@test/run-sanitized.sh

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) test/run-fuzz.sh $(FUZZ_NAMES)

# With ASan and UBSan, as the fuzzers have them, so that a replayed
# input that once overflowed a buffer fails again if it does again.
build/fuzz-replay/%: test/fuzz/%.c test/fuzz/replay.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_FLAGS) -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined -DFUZZ_TARGET='"$*"' \
	  -o $@ $< test/fuzz/replay.c $(FUZZ_LINK)

build/fuzz/%: test/fuzz/%.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -o $@ $< $(FUZZ_LINK)

demo: deps
	@$(MAKE) --no-print-directory all
	@$(EMACS) -Q --batch -L lisp -l demo/demo.el

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

# What netproc-compat-mode costs builtin processes: bench/results/compat-overhead.md
bench-compat: all
	@$(EMACS) -Q --batch -L lisp -l bench/compat-overhead.el

# The native code of the sources as they are now, from Emacs's cache.
NATIVE_FORGET = (when (and (fboundp (quote native-comp-available-p)) \
                           (native-comp-available-p)) \
                  (require (quote comp)) \
                  (dolist (file command-line-args-left) \
                    (let ((eln (comp-el-to-eln-filename (expand-file-name file)))) \
                      (when (file-exists-p eln) (delete-file eln)))) \
                  (setq command-line-args-left nil))

clean:
	rm -rf build $(MODULE) lisp/*.elc
	-$(EMACS) -Q --batch --eval '$(NATIVE_FORGET)' $(LISP_SRC)

# The module with AddressSanitizer and UBSan, for the ERT suite.  Stack
# redzones are left out: Emacs's garbage collector scans the C stack
# conservatively, and ASan would take its reads of the module's frames
# for overflows.  Heap checks, the ones that matter here, stay.
build/asan/netproc-module.so: $(ENGINE_SRC) $(BINDING_SRC) $(ENGINE_HDR) $(BINDING_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	  --param asan-stack=0 \
	  -shared -o $@ $(ENGINE_SRC) $(BINDING_SRC) $(GLIB_LIBS) -lpthread

# Preloaded with the ASan runtime into Emacs; see the file's comment.
build/asan/no-textdomain.so: test/asan/no-textdomain.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -fPIC -shared -o $@ $<
