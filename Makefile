# rvm_ros developer entry points. `make test` and `make demo` set up what they need.
SHELL := /bin/bash
ENV := scripts/ros-env
PYTEST_ARGS ?=

.PHONY: setup test lint typecheck unit demo clean

setup:
	@scripts/setup-env

lint: setup
	$(ENV) ruff check rvm_ros test examples launch
	$(ENV) ruff format --check rvm_ros test examples launch

typecheck: setup
	$(ENV) mypy rvm_ros

# Without PYTEST_ARGS the training tests run in a pytest process of their own: in one
# process after every other package's tests, the interpreter died with a segmentation
# fault inside test/training/test_trainer.py in 3 of 4 full runs (at different tests; not
# yet root-caused: see the closing note of 2026-12-07); test/training alone passes.
unit: setup
ifeq ($(strip $(PYTEST_ARGS)),)
	$(ENV) python -m pytest --ignore=test/training
	$(ENV) python -m pytest test/training
else
	$(ENV) python -m pytest $(PYTEST_ARGS)
endif

test: setup lint typecheck unit

demo: setup
	$(ENV) rvm-ros demo

clean:
	rm -rf build install log .stamps
