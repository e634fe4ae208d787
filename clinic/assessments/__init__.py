"""Validated clinical instruments, scored exactly as published, and the assessments made with them."""
