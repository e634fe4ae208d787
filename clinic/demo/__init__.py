"""Synthetic, deterministic demo data: for newcomers' demos and for benchmarks at scale."""
