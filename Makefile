# beexgen: the two commands of the README.
#   make demo   set up, train the default model, build it, run it in QEMU, stream sentences
#   make test   set up, run the test suite
PYTHON ?= python3
export PYTHON

.PHONY: setup demo test bench
setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PYTHON) -m pytest -q tests

bench: setup
	$(PYTHON) -m beexgen.cli bench --readme README.md

# libFuzzer targets (tests/fuzz/): make fuzz [FUZZ_MINUTES=10] [FUZZ_TARGETS="tokenizer protocol"]
fuzz:
	@bash scripts/fuzz.sh $(or $(FUZZ_MINUTES),1) $(FUZZ_TARGETS)
