"""perpscope."""
