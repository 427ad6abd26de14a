"""Web passes (SPEC §7): shareable links that lock and unlock chosen locks for a bounded time."""
