"""Built-in model family plugins, registered through the `vlm_router` entry-point group."""
