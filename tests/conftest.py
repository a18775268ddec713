"""Suite-wide collection rules.

``tests/vllm`` runs inside the vLLM environment that ``tests/vllm/setup_venv.sh`` builds (vLLM
pins its own torch and transformers); ``make test`` runs it there with ``TASC_VLLM_TESTS=1``.
Everywhere else it is left out of collection rather than skipped test by test.
"""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("TASC_VLLM_TESTS") == "1" else ["vllm"]
