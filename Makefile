# Top-level entry points.  `make test` and `make demo` work on a fresh Debian 12 machine:
# they install what is missing (apt-get, as root), configure, build and run.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

# Debian packages the build and the tests need.
DEB_PKGS := build-essential cmake pkg-config libcmocka-dev libjansson-dev clang libclang-rt-14-dev \
	clang-format valgrind jq groff-base python3 qemu-system-x86 busybox-static cpio spin \
	abigail-tools debhelper dpkg-dev fakeroot lintian bash-completion $(QEMU_BUILD_PKGS)
# Building QEMU with vmce's patch series (qemu/build.sh, run by make test).
QEMU_BUILD_PKGS := ninja-build meson libglib2.0-dev libpixman-1-dev zlib1g-dev python3-venv \
	flex bison libslirp-dev libfdt-dev git seabios ipxe-qemu

.PHONY: all deps build qemu test test-normal test-asan test-tsan demo bench fuzz install format \
	check-format clean abi-baseline deb

all: build

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || \
			missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "vmce: installing missing packages:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then \
			echo "vmce: not root: install them yourself: apt-get install$$missing" >&2; exit 1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
		-DVMCE_SANITIZE=address,undefined -DVMCE_LINUX_TESTS=OFF -DVMCE_FUZZ=ON

$(TSAN_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
		-DVMCE_SANITIZE=thread -DVMCE_LINUX_TESTS=OFF

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# ThreadSanitizer: the unit suite (label unit), where the concurrency tests live.
test-tsan: deps $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure -j $(JOBS) -L unit $(CTEST_ARGS)

test: check-format test-normal test-asan test-tsan
	@echo "vmce: all test suites passed (normal, ASan+UBSan and TSan builds)"

# Boots the built-in test guest in vmce-vm and walks through the error scenarios.
demo: build
	BUILD=$(BUILD) bash scripts/demo.sh

# Benchmarks: ratios against KVM's in-kernel MCA, written to bench/results.json.
bench: build
	bash bench/run.sh $(BUILD)

# Every libFuzzer target for FUZZ_SECONDS each (make test: 30 s each in the ASan build, 60 s for the stream decoder).
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVMCE_FUZZ=ON \
		-DVMCE_FUZZ_SECONDS=$(FUZZ_SECONDS) -DVMCE_LINUX_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j $(JOBS) -L fuzz

# Debian 12's QEMU with vmce's patch series (cached outside the tree; see docs/qemu.md).
qemu: build
	sh qemu/build.sh --libvmce-build $(BUILD) --out $(BUILD)/qemu.env

install: build
	cmake --install $(BUILD)

# Rewrite the ABI baseline abi/libvmce.abi from this tree (after an intended ABI change or a
# merge that touched include/vmce/: see CHANGELOG.md, "ABI policy").  Commit the result.
abi-baseline: build
	cmake --build $(BUILD) --target abi-baseline

# The Debian packages libvmce1, libvmce-dev and vmce-tools, built from a clean copy of the
# committed tree and checked with lintian; the .deb files land in $(DEB_OUT).
DEB_OUT ?= $(BUILD)/deb
deb: deps
	bash scripts/build-deb.sh "$(DEB_OUT)"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
