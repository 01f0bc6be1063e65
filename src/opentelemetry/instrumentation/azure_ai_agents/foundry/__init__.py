"""New Foundry agents: versioned agents invoked through the OpenAI Responses API (azure-ai-projects >= 2)."""
