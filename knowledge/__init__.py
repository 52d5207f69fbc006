"""Knowledge bases for the rag action: offline embedders, loaders, chunking, FAISS indexes and search.

    switchboard knowledge index SOURCE PATH...   build (cli.py -> build.py)
    KnowledgeBase.open(spec).search(question)     serve (search.py)

Importing the package is cheap: models, FAISS and parsers load only in the modules that use them. The
defaults below live here so the CLI can show them without importing those modules.
"""

DEFAULT_CHUNK_TOKENS = 128  # tokens per chunk, special tokens included (never above the model's window)
DEFAULT_OVERLAP_TOKENS = 32  # tokens of trailing sentences repeated at the start of the next chunk
DEFAULT_HNSW_THRESHOLD = 20_000  # above this many chunks the index is HNSW, exact (flat) up to it
