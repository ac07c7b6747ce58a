# The two set-up commands of README.md. Each creates and fills its own virtual
# environment on a fresh machine (Python 3.11 and the package registries only).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lab lint clean readme-figures

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The distribution is edgekit-inspection (imported as edgekit). A .venv made before the
# rename holds a distribution called edgekit with the same files: remove it first.
UNINSTALL_OLD := $(BIN)/pip uninstall --quiet --yes edgekit 2>/dev/null || true

# setuptools' editable build warns "Editable installation. ... Please be careful with folders
# in your working directory with the same name as your package" on every `pip install -e`,
# and pip shows it even with --quiet: here that folder is the package. Only that message is
# filtered; any other warning or error still shows.
EDITABLE := PYTHONWARNINGS="ignore:Editable installation:UserWarning"

# The notebook extra: JupyterLab (make lab) and pandas; dev includes it.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(UNINSTALL_OLD)
	$(EDITABLE) $(BIN)/pip install --quiet -e ".[notebook]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(UNINSTALL_OLD)
	$(EDITABLE) $(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/python -m edgekit.demo

# JupyterLab on the newest demo run (runs/latest), local backend up, until Ctrl-C.
lab: $(VENV)/.demo-installed
	$(BIN)/edgekit lab

# tests/reports drive the OS package's Chromium (Playwright's own browser download is not
# used); install it when it is missing and we may (root with apt-get), never fail over it.
CHROMIUM := command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || true

test: $(VENV)/.test-installed
	@$(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The README's figures come from the newest demo run.
FIGURES := detections defect_rate latency model_versions pr_curve_compiled model_latency evaluation_samples
readme-figures:
	@test -d runs/latest/figures || { echo "run 'make demo' first"; exit 1; }
	mkdir -p docs/figures
	for f in $(FIGURES); do cp runs/latest/figures/$$f.png docs/figures/; done

# Every benchmark in benchmarks/, each rewriting its table(s) in README.md between
# <!-- bench:NAME --> markers (CPU, cores and load average printed under every table).
# Offline, everything on loopback. QUICK=1: short settings (minutes, not a quarter hour).
BENCHMARKS := model_latency openvino_latency model_quality agent_overhead deploy_time ipc_throughput end_to_end_latency device_memory mqtt_broker rollout deploy_on_approval spool stream_manager_bench
.PHONY: bench
bench: $(VENV)/.test-installed
	@for b in $(BENCHMARKS); do \
		echo "== benchmarks/$$b.py"; \
		$(BIN)/python benchmarks/$$b.py $(if $(QUICK),--quick) --readme README.md || exit 1; \
	done
