"""Collectors: what feeds the pipeline with heads and pool updates."""
