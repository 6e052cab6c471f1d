"""Device models. Each file holds one device; each device registers itself on a bus."""
