"""The guest-visible platform: memory layout and firmware tables."""
