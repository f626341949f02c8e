# Sluice: the two commands that matter are `make run` (the demo) and `make test` (everything).
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
SANITIZE ?=
JOBS ?= $(shell nproc)
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSLUICE_SANITIZE=$(SANITIZE)

comma := ,
ifneq ($(SANITIZE),)
  BUILD_DIR := $(BUILD_DIR)-$(subst $(comma),-,$(SANITIZE))
endif

.PHONY: deps build test unit run bench fuzz format clean

deps:
	@scripts/deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test: unit, integration (real sockets) and end-to-end (the real binary + curl).
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

run: build
	@scripts/run-demo.sh $(BUILD_DIR)

bench: build
	@bench/run.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR)
