"""Headrace runtime core: plan types, node specs, expressions.

This package never reads YAML and never imports `loader` or `adapters`; it only
accepts a compiled `GraphPlan`.
"""
