# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when needed:
# the demo installs the plain package (what `pip install watchkeeper` gives), the tests add the
# dev extras (every flavor, Ray, MLflow, Playwright...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLAIN_STAMP := $(VENV)/.installed-plain

.PHONY: demo test test-slow lint bench clean grpc-stubs plotly-js

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(PLAIN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(PLAIN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(PLAIN_STAMP)
	$(BIN)/python examples/quickstart.py
	$(BIN)/watchkeeper demo

test: $(STAMP)
	# files in parallel (most wait on real servers); bounds stretched for the shared cores;
	# every test, the multi-process end-to-end proofs (marked slow) included; the linters run
	# beside the tests (the cores are not busy all the time) and must pass too; one OpenMP and
	# BLAS thread per process: four test processes each spinning a pool of two on two cores
	# spent their time waiting for each other (a 1.7 s drift check took 8 s in the suite); the
	# linters at the lowest priority: mypy without its cache (a fresh clone) took a core from
	# the latency-guarded rollout proofs, which start first, and a healthy canary was rolled back
	nice -n 19 $(MAKE) --no-print-directory lint > $(VENV)/lint.log 2>&1 & lint=$$!; \
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 WATCHKEEPER_TEST_TIME_SCALE=3 $(BIN)/pytest -n 4 --dist loadfile --durations=30; tests=$$?; \
	wait $$lint; linted=$$?; cat $(VENV)/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make lint failed" >&2; fi; \
	exit $$(( tests || linted ))

test-slow: $(STAMP)
	WATCHKEEPER_TEST_TIME_SCALE=3 $(BIN)/pytest -n 4 --dist loadfile -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of docs/layout.md, no import cycles

bench: $(STAMP)
	$(BIN)/python bench/registry.py

# The Open Inference Protocol's gRPC modules, from the .proto beside them (grpcio-tools is a dev
# dependency; the generated files are committed). Their descriptors go to a private pool rather
# than protobuf's default one, so they live in one process with tritonclient's and KServe's own
# copies of the `inference` package (the default pool refuses a second file defining its names).
GRPC_STUBS := src/watchkeeper/serving/protocols/v2_grpc
grpc-stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I src --python_out=src --pyi_out=src --grpc_python_out=src \
		$(GRPC_STUBS)/open_inference.proto
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' \
		$(GRPC_STUBS)/open_inference_pb2.py

# plotly.js's basic bundle, shipped in the package: fetched from npm at the version and sha256
# written in src/watchkeeper/_vendor/__init__.py (change both there to move to another release).
VENDOR := src/watchkeeper/_vendor
plotly-js:
	version=$$(sed -n 's/^PLOTLY_JS_VERSION = "\(.*\)"/\1/p' $(VENDOR)/__init__.py); \
	digest=$$(sed -n 's/^PLOTLY_JS_SHA256 = "\(.*\)"/\1/p' $(VENDOR)/__init__.py); \
	tmp=$$(mktemp -d) && cd $$tmp && \
	npm pack --silent "plotly.js-basic-dist-min@$$version" > /dev/null && tar -xzf *.tgz && \
	echo "$$digest  package/plotly-basic.min.js" | sha256sum --check --quiet - && \
	cp package/plotly-basic.min.js $(CURDIR)/$(VENDOR)/plotly-basic.min.js && \
	cp package/LICENSE $(CURDIR)/$(VENDOR)/plotly.js-LICENSE && rm -rf $$tmp

clean:
	rm -rf $(VENV) .watchkeeper .pytest_cache .mypy_cache .ruff_cache
