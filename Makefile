# mambaq build. Everything builds and runs on the CPU; the CUDA parts (*.cu) are added when nvcc
# is found (/usr/local/cuda or PATH). `make run` = main job on the default model, `make test` = tests.
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

.PHONY: all deps run test bench clean
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

build/tests/%: tests/%.c build/libmambaq.a tests/test.h
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
build/asan/%: tests/%.c $(filter-out %.cu,$(LIB_C)) tests/test.h
	@mkdir -p build/asan
	$(CC) $(ASAN_FLAGS) $(LDFLAGS) $< $(filter-out %.cu,$(LIB_C)) -o $@ $(filter-out -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++,$(LDLIBS))

test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN) $(patsubst tests/%.c,build/asan/%,$(ASAN_TESTS))
	@tests/run.sh tools/check_layers.sh $(TEST_BIN) $(patsubst tests/%.c,build/asan/%,$(ASAN_TESTS))

run: deps
	@$(MAKE) --no-print-directory all
	bin/mambaq run

bench: deps all
	@tools/bench.sh

clean:
	rm -rf build bin

-include $(shell find build/obj -name '*.d' 2>/dev/null)
