"""Simulated radios that stand in for real hardware in tests and `lockbridge demo`."""
