# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv on first use from
# the pinned requirement files and re-create it when those files change.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
REQUIREMENTS := requirements.txt $(wildcard requirements/*.txt)
PEER := patchnetvlad==0.1.8
# launch, launch_ros and the ros2 CLI are not on PyPI: pure-Python wheels beside the repository
# (../shared/ros2-launch-wheels, README there). A ROS install's own launch is used where present.
LAUNCH_WHEELS := $(wildcard ../shared/ros2-launch-wheels/*.whl)
# The venv is the ament prefix: get_package_share_directory finds share/ros2_netvlad there; its bin/
# holds the ros2 CLI and the console scripts.
RUN := AMENT_PREFIX_PATH=$(abspath $(VENV)) ROS_LOG_DIR=$(abspath $(VENV))/ros_log \
  PATH=$(abspath $(VENV))/bin:$$PATH

export CONSOLE_SCRIPTS := from importlib.metadata import distribution; \
  print(*sorted(e.name for e in distribution("ros2_netvlad").entry_points if e.group == "console_scripts"))

.PHONY: venv install lint test demo bench devset clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	# The peer implementation for parity tests and benchmarks; its own pins are years old.
	$(PY) -m pip install --quiet --no-deps $(PEER)
	touch $(STAMP)

# pip install (not editable) so data_files (package.xml, launch/, config/) land in .venv/share.
install: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	# ament layout: `ros2 launch` looks for executables in <prefix>/lib/<package>, pip puts them in bin/.
	mkdir -p $(VENV)/lib/ros2_netvlad
	for script in $$($(PY) -c "$$CONSOLE_SCRIPTS"); do ln -sfn ../../bin/$$script $(VENV)/lib/ros2_netvlad/$$script; done
	if ! $(PY) -c "import launch_ros, ros2cli" 2>/dev/null && [ -n "$(LAUNCH_WHEELS)" ]; then \
	  $(PY) -m pip install --quiet --no-deps --no-index $(LAUNCH_WHEELS); fi

# The lint gate first (ruff, pinned in requirements/test.txt; settings in ruff.toml), then the suite.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint install
	$(RUN) $(PY) -m pytest test

demo: install
	$(RUN) $(VENV)/bin/demo --out demo_output

bench: install
	$(RUN) $(PY) benchmarks/extract.py

# The real development set (photographs from PyPI and Debian packages) into ~/.cache/ros2_netvlad;
# the tests assemble it on first use too.
devset: install
	$(RUN) $(PY) -c "from ros2_netvlad.evaluation.realset import assemble; print(assemble())"

clean:
	rm -rf $(VENV) build *.egg-info demo_output
