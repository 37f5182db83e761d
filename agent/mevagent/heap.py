"""The process's heap once it has started: what startup built is kept out of the cyclic collector's full passes."""

from __future__ import annotations

import gc


def freeze_startup() -> int:
    """Collect startup's garbage once, then move every object alive now into the permanent generation (gc.freeze);
    the number of objects frozen.

    Startup builds the long-lived part of the heap (the libraries' modules and schemas, pydantic models, web3 and
    eth-account, clients, configs: about 200,000 objects in the legs bench's process). A full (generation 2)
    collection traverses every tracked object, so each one paused the event loop for 116-370 ms there (load 6-8),
    about once every 40 s, and one landed inside a trial in each of two 100-trial runs: the whole p99 of block →
    both legs. Frozen objects are never traversed again; what is created later is collected as before. The cost:
    a cycle of startup objects that becomes garbage later is never freed (refcounting still frees the rest)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
