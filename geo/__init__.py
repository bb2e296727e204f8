"""Spatial truth: coordinate systems, boundaries, routing, hotspot maths, spatial SQL."""
