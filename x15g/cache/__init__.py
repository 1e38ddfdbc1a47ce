"""Cache policy shared by the caches of every layer (the parsed-head cache in `http/`, the ready
answers in `server/`): pure, importing nothing of x15g, so the lowest layers may use it."""
