# descent: the two commands a user needs are `make demo` and `make test`.
BUILD   ?= build
SANBUILD ?= build-sanitize
CMAKE_FLAGS = -G Ninja -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm

.PHONY: setup build test test-sanitize demo bench fuzz clean

setup:
	@scripts/setup.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/build.ninja
	cmake --build $(BUILD)

test: setup build
	cd $(BUILD) && ctest --output-on-failure -j2

$(SANBUILD)/build.ninja:
	cmake -S . -B $(SANBUILD) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DDESCENT_SANITIZE=ON

test-sanitize: setup $(SANBUILD)/build.ninja
	cmake --build $(SANBUILD)
	cd $(SANBUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2

demo: setup build
	$(BUILD)/descent train models/mnist_mlp.nn --save $(BUILD)/mnist_mlp.safetensors
	$(BUILD)/descent predict models/mnist_mlp.nn --weights $(BUILD)/mnist_mlp.safetensors --index 0

bench: setup build
	@scripts/setup.sh --bench
	$(BUILD)/descent bench models/mnist_mlp.nn
	/usr/bin/python3 bench/compare_pytorch.py --descent $(BUILD)/descent

fuzz: setup
	cmake -S . -B build-fuzz $(CMAKE_FLAGS) -DCMAKE_CXX_COMPILER=clang++-19 -DDESCENT_FUZZ=ON
	cmake --build build-fuzz --target fuzz_parser

clean:
	rm -rf $(BUILD) $(SANBUILD) build-fuzz
