# copyforge: the two entry points are `make demo` and `make test`; both set up and build first.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= 2
# Another libtorch (2.x, CUDA or not): its CMake prefix, e.g. the one PyTorch reports with
# python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'. Empty: Debian's libtorch 1.13.
TORCH_DIR ?=
CACHE_DIR ?= $(or $(COPYFORGE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/copyforge)
export CCACHE_DIR ?= $(CACHE_DIR)/ccache
export COPYFORGE_CACHE := $(CACHE_DIR)

.PHONY: all setup configure build test test-sanitize fuzz demo demo-local bench format check-format clean

all: build

setup:
	@bash scripts/setup.sh

configure: setup
	@mkdir -p $(BUILD_DIR) && cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCOPYFORGE_CACHE_DIR=$(CACHE_DIR) $(if $(TORCH_DIR),-DCMAKE_PREFIX_PATH=$(TORCH_DIR)) \
	  > $(BUILD_DIR)/configure.log 2>&1 || \
	  (cat $(BUILD_DIR)/configure.log; exit 1)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The suite, then every fuzz target for a few seconds on its seed corpus.
test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900
	@bash scripts/fuzz.sh 4

# The torch-free unit tests under ASan + UBSan.
test-sanitize: setup
	@bash scripts/sanitize.sh

# Each fuzz target for FUZZ_SECONDS (default 60).
fuzz: setup
	@bash scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

# The cluster on loopback: coordinator, two workers, pretraining, fine-tuning, serving, eval-tasks.
demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

# The single-process walk-through: prepare, train, eval and generate in one process each.
demo-local: build
	@bash scripts/demo_local.sh $(BUILD_DIR)

bench: build
	@bash scripts/bench.sh $(BUILD_DIR)

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

check-format:
	@bash scripts/check_format.sh

clean:
	rm -rf $(BUILD_DIR) build-fuzz build-sanitize
