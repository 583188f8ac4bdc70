"""Data: datasets and their cards, the on-disk window database, its FAISS indexes, the cache and safe file writes."""
