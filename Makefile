# Set-up, tests and the demo. `make demo` and `make test` create .venv when it is missing.
# Re-running `make setup` with unchanged requirements is a no-op (a stamp file).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.legion-setup-stamp
REQS   := requirements/base.txt requirements/workstation.txt requirements/constraints.txt setup.py package.xml
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Nothing may download model weights at run time.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export MUJOCO_GL ?= egl

# The upstream ROS 2 workstation tools (launch, launch_ros, ros2cli, colcon, rosdep) for the tests of
# what a ROS 2 user runs (test/test_workstation.py). They come from ../shared/tools where it exists
# (the development workspace and CI); elsewhere those tests are skipped and listed as skipped.
ROS2_TOOLS       ?= ../shared/tools
ROS2_TOOLS_STAMP := $(VENV)/.legion-ros2-tools-stamp

.PHONY: setup ros2-tools test test-fast demo bench lint-imports clean

setup: $(STAMP)

ros2-tools: setup
	@if [ -x "$(ROS2_TOOLS)/install-ros2-tools.sh" ]; then \
	  if [ ! -f $(ROS2_TOOLS_STAMP) ] || [ $(STAMP) -nt $(ROS2_TOOLS_STAMP) ]; then \
	    PIP_CONSTRAINT=$(CURDIR)/requirements/constraints.txt "$(ROS2_TOOLS)/install-ros2-tools.sh" $(VENV) \
	      && touch $(ROS2_TOOLS_STAMP); \
	  fi; \
	else \
	  echo "ros2-tools: $(ROS2_TOOLS)/install-ros2-tools.sh not found: the workstation tests (colcon, rosdep, ros2 launch) will be SKIPPED"; \
	fi

$(STAMP): $(REQS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" -c requirements/constraints.txt setuptools wheel
	# torch first, from the pinned CPU build (an unpinned torch pulls GBs of CUDA)
	$(BIN)/python -m pip install -q -c requirements/constraints.txt torch
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -r requirements/base.txt
	# bnpy 0.1.7 pins an impossible joblib: install it without its declared deps
	# (its real deps are in base.txt); legion_training/dpmm.py holds the shim.
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -c requirements/constraints.txt bnpy
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "setup: $(VENV) ready ($$($(BIN)/python --version))"

test: setup ros2-tools
	$(BIN)/lint-imports --no-cache
	LEGION_ROS2_TOOLS=$(abspath $(ROS2_TOOLS)) $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The shipped agent's three skills (docs/default_agent/) chained on the workbench scene. Another sequence:
# make demo DEMO_SEQUENCE=config/sequences/tabletop_reach.yaml
# (legion-demo without --sequence runs legion_bridge.graph.DEFAULT_SIM_SEQUENCE, as `ros2 launch
# legion_bridge sim_robot.launch.py` does without arguments)
DEMO_SEQUENCE ?=
demo: setup
	$(BIN)/legion-demo $(if $(DEMO_SEQUENCE),--sequence $(DEMO_SEQUENCE))

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint-imports: setup
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) build install log *.egg-info .pytest_cache
