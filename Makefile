# mambaq build. Everything builds and runs on the CPU; the CUDA parts (*.cu) are added when nvcc
# is found (/usr/local/cuda or PATH). `make run` = main job on the default model, `make test` = tests,
# `make install PREFIX=/usr/local` installs bin/mambaq and the docs.
# NOCUDA=1: a CPU-only build even where nvcc is (much faster to compile). CUDA_ARCH: the GPU code
# built, sm_90 (H100/H200) by default; e.g. CUDA_ARCH="-gencode=arch=compute_80,code=sm_80" for an
# A100, compute_86/sm_86 for RTX 30xx / A10, compute_89/sm_89 for RTX 40xx / L4 (README.md).
CC      ?= cc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode=arch=compute_90,code=sm_90
OPT     ?= -O3 -march=native
CFLAGS  += -std=gnu11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -D_GNU_SOURCE -I.
LDLIBS  += -lcjson -lz -lm -fopenmp
# OpenMP threads that wait at a barrier sleep instead of spinning: on cores shared with other jobs a
# spinning thread burns the time its descheduled partner needs (test_forward ran 5x slower).
OMP_WAIT_POLICY ?= passive
export OMP_WAIT_POLICY

# cJSON unpacked from .deb files (the GPU machine has none installed): see tools/device-setup.sh
DEPS_ROOT := $(wildcard .deps/root/usr)
ifneq ($(DEPS_ROOT),)
CFLAGS  += -I$(DEPS_ROOT)/include
LDFLAGS += -L$(DEPS_ROOT)/lib/x86_64-linux-gnu -Wl,-rpath,$(abspath $(DEPS_ROOT))/lib/x86_64-linux-gnu
endif

MODULES := core datasets ssm calib hadamard quantize export
LIB_C   := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_CU  := $(foreach m,$(MODULES),$(wildcard $(m)/*.cu))
CLI_C   := $(wildcard cli/*.c)
TEST_C  := $(wildcard tests/test_*.c)

ifneq ($(NVCC),)
ifneq ($(NOCUDA),1)
CFLAGS  += -DMQ_CUDA -I$(CUDA_HOME)/include
NVFLAGS ?= -O3 $(CUDA_ARCH) -std=c++17 -lineinfo -DMQ_CUDA -I. -Xcompiler -fopenmp,-Wall
LIB_OBJ_CU := $(patsubst %.cu,build/obj/%.cu.o,$(LIB_CU))
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
endif
endif

LIB_OBJ := $(patsubst %.c,build/obj/%.o,$(LIB_C)) $(LIB_OBJ_CU)
TEST_BIN := $(patsubst tests/%.c,build/tests/%,$(TEST_C))

.PHONY: all deps run test bench clean install uninstall fuzz fuzz-smoke
all: bin/mambaq

deps:
	@tools/deps.sh

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

build/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

build/libmambaq.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

bin/mambaq: $(patsubst %.c,build/obj/%.o,$(CLI_C)) build/libmambaq.a
	@mkdir -p bin
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

build/tests/%: tests/%.c build/libmambaq.a $(wildcard tests/*.h)
	@mkdir -p build/tests
	$(CC) $(CFLAGS) $(LDFLAGS) $< build/libmambaq.a -o $@ $(LDLIBS)

# tests/test_task.c unit-tests cli/task.c: it links the CLI's objects (all but main).
CLI_OBJ_NOMAIN := $(filter-out build/obj/cli/main.o,$(patsubst %.c,build/obj/%.o,$(CLI_C)))
build/tests/test_task: tests/test_task.c $(CLI_OBJ_NOMAIN) build/libmambaq.a tests/test.h
	@mkdir -p build/tests
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(CLI_OBJ_NOMAIN) build/libmambaq.a -o $@ $(LDLIBS)

# Benchmarks (tests/bench_*.c): built with `all`, run by hand on the GPU machine, not tests.
BENCH_BIN := $(patsubst tests/%.c,build/bench/%,$(wildcard tests/bench_*.c))
all: $(BENCH_BIN)
build/bench/%: tests/%.c build/libmambaq.a
	@mkdir -p build/bench
	$(CC) $(CFLAGS) $(LDFLAGS) $< build/libmambaq.a -o $@ $(LDLIBS)

# Loader/tokenizer tests again under AddressSanitizer + UBSan (separate objects, no CUDA).
ASAN_TEST_NAMES ?= test_st test_cfg test_load test_tok test_reader
ASAN_TESTS := $(filter $(patsubst %,tests/%.c,$(ASAN_TEST_NAMES)),$(TEST_C))
ASAN_FLAGS := -std=gnu11 -O1 -g -Wno-psabi -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fopenmp -D_GNU_SOURCE -I. $(filter -I%,$(CFLAGS))
build/asan/%: tests/%.c $(filter-out %.cu,$(LIB_C)) $(wildcard tests/*.h)
	@mkdir -p build/asan
	$(CC) $(ASAN_FLAGS) $(LDFLAGS) $< $(filter-out %.cu,$(LIB_C)) -o $@ $(filter-out -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++,$(LDLIBS))

# The fuzz smoke runs count as tests when clang with libFuzzer is installed (else they are SKIP lines).
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN) $(patsubst tests/%.c,build/asan/%,$(ASAN_TESTS))
	@if fuzz/smoke.sh --available; then $(MAKE) --no-print-directory fuzz || true; fi
	@tests/run.sh tools/check_layers.sh $(TEST_BIN) $(patsubst tests/%.c,build/asan/%,$(ASAN_TESTS)) fuzz/smoke.sh

# ---- fuzzing: libFuzzer + ASan + UBSan harnesses (fuzz/fuzz_*.c), seeds made from ../shared at
# build time (fuzz/seeds.sh), `make fuzz-smoke` runs each for 10 s. See docs/reliability.md.
FUZZ_CC   ?= clang
FUZZ_BIN  := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_FLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
              -Wno-unknown-pragmas -D_GNU_SOURCE -I. $(filter -I%,$(CFLAGS)) -DFUZZ_DATA='"$(abspath build/fuzz/data)"'
FUZZ_OBJ  := $(patsubst %.c,build/fuzz/obj/%.o,$(filter-out %.cu,$(LIB_C)) $(filter-out cli/main.c,$(CLI_C)))
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build/fuzz/libmambaq_fuzz.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h build/fuzz/libmambaq_fuzz.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $(LDFLAGS) $< build/fuzz/libmambaq_fuzz.a -o $@ -lcjson -lz -lm
build/fuzz/seedgen: fuzz/seeds.c build/libmambaq.a
	$(CC) $(CFLAGS) $(LDFLAGS) $< build/libmambaq.a -o $@ $(LDLIBS)
build/fuzz/seeds.stamp: build/fuzz/seedgen bin/mambaq fuzz/seeds.sh
	fuzz/seeds.sh build/fuzz && touch $@
fuzz: $(FUZZ_BIN) build/fuzz/seeds.stamp
fuzz-smoke: fuzz
	@fuzz/smoke.sh

run: deps
	@$(MAKE) --no-print-directory all
	bin/mambaq run --force

bench: deps all
	@tools/bench.sh

clean:
	rm -rf build bin

PREFIX ?= /usr/local
install: bin/mambaq
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/mambaq
	install -m 755 bin/mambaq $(DESTDIR)$(PREFIX)/bin/mambaq
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/mambaq/
	@echo "installed $(DESTDIR)$(PREFIX)/bin/mambaq; set MQ_SHARED to the folder with models/ and datasets/ for its default paths"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mambaq
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/mambaq

-include $(shell find build/obj build/fuzz/obj -name '*.d' 2>/dev/null)
