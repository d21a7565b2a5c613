"""Beam transforms of the analytics pipeline: decode, windowing, aggregate, sinks."""
