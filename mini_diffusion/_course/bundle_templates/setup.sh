#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (Ubuntu): Python, a CPU build
# of PyTorch and the course's dependencies, in a virtual environment that run_autograder uses.
set -euxo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -m venv @VENV@
PIP="@VENV@/bin/pip"
"$PIP" install --upgrade pip
# The versions the course was tested with when this Python can install them, else the newest.
"$PIP" install -c "$HERE/constraints.txt" torch --index-url https://download.pytorch.org/whl/cpu \
  || "$PIP" install torch --index-url https://download.pytorch.org/whl/cpu
"$PIP" install -c "$HERE/constraints.txt" -r "$HERE/requirements.txt" || "$PIP" install -r "$HERE/requirements.txt"
# Fail the image build here, where its log shows why, rather than at the first submission.
"@VENV@/bin/python" -c "import torch, numpy, safetensors, sklearn, matplotlib, tqdm, pytest, pytest_timeout"
