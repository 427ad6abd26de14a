"""Simulated Nuki locks on Bumble's in-process link, reached through a bleak backend."""
