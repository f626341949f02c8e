# Sluice: the two commands that matter are `make run` (the demo) and `make test` (everything).
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
SANITIZE ?=
JOBS ?= $(shell nproc)
# ON: compile sources in batches (half the CPU of a fresh build); OFF for edit-compile loops.
# Read when a build directory is first configured.
UNITY ?= ON
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSLUICE_SANITIZE=$(SANITIZE) \
  -DCMAKE_UNITY_BUILD=$(UNITY)

comma := ,
ifneq ($(SANITIZE),)
  BUILD_DIR := $(BUILD_DIR)-$(subst $(comma),-,$(SANITIZE))
endif

.PHONY: deps build test unit run bench fuzz format clean

deps:
	@scripts/deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

# TARGETS: build only these (default: everything).
TARGETS ?=
build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) $(if $(TARGETS),--target $(TARGETS))

# Every test: unit, integration (real sockets) and end-to-end (the real binary + curl).
test: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target e2e_programs
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

run: build
	@scripts/run-demo.sh $(BUILD_DIR)

bench: build
	@bench/run.sh $(BUILD_DIR)

# libFuzzer targets (tests/fuzz/): a separate clang build with ASan+UBSan, then FUZZ_SECONDS per
# target on a scratch copy of each seed corpus; fails if any target crashes, leaks or hangs.
FUZZ_SECONDS ?= 60
FUZZ_BUILD_DIR = $(BUILD_DIR)-fuzz
FUZZ_TARGETS = http1_request_fuzz http1_response_fuzz config_fuzz wasm_module_fuzz http2_server_fuzz \
  grpc_codec_fuzz oci_fuzz hub_fuzz json_object_fuzz telemetry_fuzz

$(FUZZ_BUILD_DIR)/build.ninja:
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=address,undefined \
	  -DCMAKE_UNITY_BUILD=$(UNITY)

fuzz: deps $(FUZZ_BUILD_DIR)/build.ninja
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(FUZZ_TARGETS)
	@tests/fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR)
