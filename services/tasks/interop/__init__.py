"""Interchange with other labeling tools (Label Studio's task format and labeling config)."""
