# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
# Extracted from vllm-0.34.0-cp38-abi3-manylinux_2_28_x86_64.whl by tests/vllm_v034/extract.py.
