"""Nuki Smart Locks: the Nuki Bluetooth API."""
