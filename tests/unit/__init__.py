"""Unit tests, one folder per subpackage of include/aire/ (core modules at the top)."""
