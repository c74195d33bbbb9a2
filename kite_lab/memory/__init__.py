"""Memory: vector memory, sessions, the response cache, document loading and chunking."""
