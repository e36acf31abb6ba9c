"""Unit tests of the moma PyTorch reference (run with unittest discover)."""
