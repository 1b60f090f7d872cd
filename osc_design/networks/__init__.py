"""Whole-network planning: architecture catalogue, extraction and conversion."""
