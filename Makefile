# netproc -- make-network-process as a dynamic module with a GLib engine.
#
#   make            build the module (module/netproc-module.so)
#   make check      install missing Debian packages, build, run every test
#   make demo       the same client scenario over the builtin and over netproc
#   make sanitize   engine tests under TSan and ASan, ERT against an ASan module
#   make bench      the builtin against netproc in one run: bench/results/
#                   (BENCH_QUICK=1 for a smoke run, BENCH_ROUNDS=N)
#   make bench-compat  what netproc-compat-mode costs builtin processes

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

.PHONY: all deps check check-engine check-lisp sanitize demo bench bench-compat clean

LISP_ELC = $(patsubst %.el,%.elc,$(wildcard lisp/*.el))

all: $(MODULE) $(LISP_ELC)

$(MODULE): $(ENGINE_SRC) $(BINDING_SRC) $(ENGINE_HDR) $(BINDING_HDR)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(ENGINE_SRC) $(BINDING_SRC) $(GLIB_LIBS) -lpthread

# Every file is compiled against the current sources of the others.
lisp/%.elc: lisp/%.el $(wildcard lisp/*.el) $(MODULE)
	$(EMACS) -Q --batch -L lisp \
	  --eval '(setq byte-compile-error-on-warn t load-prefer-newer t)' \
	  -f batch-byte-compile $<

# Installs what is missing, nothing else; CI has no terminal.
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# Engine tests: plain build, one binary per test file.
build/engine/%: test/engine/%.c $(ENGINE_SRC) $(ENGINE_HDR) $(TEST_HELPERS_SRC)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Imodule/engine -Itest/engine $(GLIB_CFLAGS) \
	  $(SAN) -o $@ $< $(ENGINE_SRC) $(TEST_HELPERS_SRC) $(GLIB_LIBS) -lpthread

ENGINE_TEST_BINS = $(patsubst test/engine/%.c,build/engine/%,$(ENGINE_TESTS_SRC))

check: deps
	@$(MAKE) --no-print-directory all
	@test/run-tests.sh

check-engine: $(ENGINE_TEST_BINS)
	@test/run-engine-tests.sh $(ENGINE_TEST_BINS)

check-lisp: all build/sockopt-peek build/dgram-peer
	@test/run-lisp-tests.sh

# A plain datagram peer, for the ERT suite.
build/dgram-peer: test/dgram-peer.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

# Reads the socket options of another process's socket, for the ERT suite.
build/sockopt-peek: test/sockopt-peek.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -o $@ $<

sanitize: deps
	@test/run-sanitized.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@$(EMACS) -Q --batch -L lisp -l demo/demo.el

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

# What netproc-compat-mode costs builtin processes: bench/results/compat-overhead.md
bench-compat: all
	@$(EMACS) -Q --batch -L lisp -l bench/compat-overhead.el

clean:
	rm -rf build $(MODULE) lisp/*.elc

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
