# KnowledgeBeast: the two quick-start commands and the developer targets around them.
#   make serve   install dependencies, build, start the server on ./data (embedded default)
#   make test    install dependencies, build, run every test
#   make test-fast   the everyday run: every test not labelled `slow` (well under 2 minutes)
# Everything else is optional. Each target installs what it needs (scripts/install-deps.sh is
# idempotent and does nothing when all packages are present).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSA_BUILD  ?= build-tsa
JOBS       ?= $(shell nproc)
ARGS       ?=
FUZZ_SECONDS ?= 30

.PHONY: deps build serve test test-fast check-module-order test-asan asan check-thread-safety fuzz bench clean format

deps:
	@bash scripts/install-deps.sh

# Ninja (installed by deps) schedules a cold build better than make. Decided when a recipe runs,
# since deps may have just installed it; a build directory configured earlier keeps its generator.
CMAKE_CONFIGURE = CMAKE_GENERATOR="$$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" cmake

build: deps
	@$(CMAKE_CONFIGURE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_BENCH=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

serve: build
	$(BUILD)/knowledgebeast serve $(ARGS)

test: build check-module-order
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300

# The everyday run: the same suite without the tests labelled `slow` (process-heavy end-to-end
# suites, s3rver, long backup and crash tests; tests/*/CMakeLists.txt). `make test` stays the
# whole suite, and CI runs that.
test-fast: build check-module-order
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300 -LE slow

# A module may include only the modules before it in KB_MODULES (CMakeLists.txt). Cheap.
check-module-order:
	@python3 scripts/check_module_order.py

# The sanitizer build, with clang: the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
# (-O1, as ASan's documentation advises, and line tables only), compiled with the
# thread-safety analysis as errors and with libFuzzer's coverage, so that this one build also
# holds the fuzz targets: CI builds it once for the sanitizer run, the thread-safety check and
# `make fuzz FUZZ_BUILD=$(ASAN_BUILD)`.
test-asan asan: deps
	@CC=clang CXX=clang++ $(CMAKE_CONFIGURE) -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
	  -DKB_SANITIZE=ON -DKB_THREAD_SAFETY=ON -DKB_BUILD_FUZZ=ON -DKB_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -j$(JOBS) --output-on-failure --timeout 600

# clang's thread-safety analysis (GUARDED_BY, REQUIRES... in common/thread_annotations.h), its
# findings errors, on its own: the libraries and the program only (-O0: the analysis is in the
# front end; no tests, no benchmarks). `make test-asan` runs the same analysis over everything.
check-thread-safety: deps
	@CC=clang CXX=clang++ $(CMAKE_CONFIGURE) -S . -B $(TSA_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKB_THREAD_SAFETY=ON \
	  -DKB_BUILD_TESTS=OFF -DKB_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(TSA_BUILD) -j$(JOBS) --target knowledgebeast

# libFuzzer targets (clang), each run for FUZZ_SECONDS, built in FUZZ_BUILD (scripts/fuzz.sh; a
# build directory already configured with KB_BUILD_FUZZ=ON, such as $(ASAN_BUILD), is reused).
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD_DIR=$(abspath $(FUZZ_BUILD)) bash scripts/fuzz.sh

bench: build
	@echo "see docs/PERFORMANCE.md for how each benchmark is run"

format:
	@find src tests bench fuzz -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSA_BUILD)
