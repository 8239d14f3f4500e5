# The two set-up commands of the README: `make demo` and `make test`. Both install what is
# missing (Debian packages), configure, build what they run, then run it. `make check` adds what
# CI guards besides the tests: the engine-only build and the format.
BUILD_DIR ?= build
ENGINE_BUILD_DIR ?= build-engine
CMAKE_FLAGS ?=
# The binaries tools/demo.sh runs: `make demo` builds these and nothing else.
DEMO_TARGETS = selene-server selene

.PHONY: deps configure build build-demo test demo check check-engine-only check-format clean format

deps:
	./deploy/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD_DIR)

build-demo: configure
	cmake --build $(BUILD_DIR) --target $(DEMO_TARGETS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600

demo: build-demo
	./tools/demo.sh $(BUILD_DIR)

# The engine (models, training, augmentation, selene-bench) against LibTorch alone, as on a GPU
# machine with only pip's LibTorch: nothing in it may reach for gRPC, OpenCV or Abseil.
check-engine-only: deps
	@if [ ! -f $(ENGINE_BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(ENGINE_BUILD_DIR) -G Ninja -DSELENE_ENGINE_ONLY=ON $(CMAKE_FLAGS); fi
	cmake --build $(ENGINE_BUILD_DIR)

# Every C++ file as clang-format (.clang-format) writes it; `make format` fixes them.
check-format: deps
	git ls-files '*.h' '*.cc' | xargs clang-format --dry-run --Werror

check: test check-engine-only check-format

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ENGINE_BUILD_DIR)
