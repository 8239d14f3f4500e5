# The two set-up commands of the README: `make demo` and `make test`. Both install what is
# missing (Debian packages), configure, build, then run.
BUILD_DIR ?= build
CMAKE_FLAGS ?=

.PHONY: deps configure build test demo clean format

deps:
	./deploy/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600

demo: build
	./tools/demo.sh $(BUILD_DIR)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
