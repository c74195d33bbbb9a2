"""What the deployment guide (../shared/reference/deployment-guide.md) fixes as a contract.

Shared by the settings tests and the deployment-file tests, so the list exists once.
"""

#: every environment variable the guide names, in its order
GUIDE_VARIABLES = [
    "LLM_PROVIDER",
    "LLM_MODEL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "EMBEDDING_PROVIDER",
    "EMBEDDING_MODEL",
    "CIRCUIT_BREAKER_THRESHOLD",
    "CIRCUIT_BREAKER_TIMEOUT",
    "IDEMPOTENCY_TTL",
    "VECTOR_BACKEND",
    "VECTOR_DIMENSION",
    "REDIS_URL",
    "POSTGRES_URL",
    "PROMETHEUS_PORT",
    "GRAFANA_PORT",
]
