"""A generation's life: single-flight, admission, the upstream stream assembled into events."""
