"""Shared fixtures. Importing zoo first sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads."""

import zoo  # noqa: F401  (must precede any TensorFlow import)
import pytest


@pytest.fixture(scope="session")
def measured_cards():
    """Every registered model built at its defaults and measured (params, trainable, MACs)."""
    from zoo._registry import compute_cards

    return compute_cards()
