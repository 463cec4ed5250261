"""The HTTP server: the app and its runner, middlewares, auth, guards, connections, logs, metrics."""
