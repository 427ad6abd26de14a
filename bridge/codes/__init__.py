"""Access codes and the code-slot manager (SPEC §4)."""
