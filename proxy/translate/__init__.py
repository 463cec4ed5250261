"""Pure translators between client protocols and the canonical chat pipeline (no I/O).

Each client protocol has one module with the same three parts:
  * `to_chat(body) -> dict`          client request -> chat completions request (raises ProxyError)
  * `render_json(completion, ctx)`  canonical Completion -> the client's response object
  * `StreamRenderer(ctx)`           canonical Events -> the client's SSE bytes
`ResponseContext` carries what every rendering needs (ids, model, creation time, options).
"""
