"""A MONAI bundle as one object: its files, its configs, its network and its backends."""
