"""Grouping a closure of store paths into image layers."""
