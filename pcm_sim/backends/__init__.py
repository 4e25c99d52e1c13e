"""Second backends: the same layers on aihwkit tiles."""
