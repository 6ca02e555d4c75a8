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

# The Ray tests run in a pytest process of their own: a Ray driver leaves gRPC's threads
# and fork handlers behind, and a later fork in the same process (the training tests'
# DataLoader workers) crashed it with a segmentation fault in 2 of 3 full runs.
RAY_TESTS := test/replay/test_replay_ray.py

unit: setup
ifeq ($(strip $(PYTEST_ARGS)),)
	$(ENV) python -m pytest --ignore=$(RAY_TESTS)
	$(ENV) python -m pytest $(RAY_TESTS)
else
	$(ENV) python -m pytest $(PYTEST_ARGS)
endif

test: setup lint typecheck unit

demo: setup
	$(ENV) rvm-ros demo

clean:
	rm -rf build install log .stamps
