"""Runnable end-to-end programs on audiosr_core and audiosr_adapters (run from the repo root)."""
