"""PyTorch for the comparison tests when it is installed (it is not a dependency): ``torch`` and ``F``
(torch.nn.functional) or None, and ``needs_torch``, the mark that skips a comparison without it, so the
argument and lowering tests of the same file still run."""
import pytest

try:
    import torch
    F = torch.nn.functional
except ImportError:
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
