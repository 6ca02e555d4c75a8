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

unit: setup
	$(ENV) python -m pytest $(PYTEST_ARGS)

test: setup lint typecheck unit

demo: setup
	$(ENV) rvm-ros demo

clean:
	rm -rf build install log .stamps
